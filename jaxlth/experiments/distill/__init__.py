"""``experiment = "distill"``: dataset distillation, a few synthetic images per class learned from the training set.

``distill.method = "mtt"`` (matching training trajectories; Cazenavette et al., CVPR 2022): the
experts are ``distill.experts`` replicates of the run's own training on the real data, saved at every
epoch (``experts/epoch_EE``, or read from ``distill.experts_workdir``); each outer iteration trains a
student from an expert's epoch ``t`` for ``distill.inner_steps`` SGD steps on the synthetic set and
moves the images, the learned learning rate (and, with ``learn_labels``, soft labels) so that it lands
near the expert's epoch ``t + expert_epochs``. ``"dm"`` (distribution matching; Zhao & Bilen, WACV
2023) is the cheaper option: the mean penultimate features of real and synthetic images of each class
under randomly initialised networks are matched; no experts, no unrolled training.

``R`` (``replicates``) independent synthetic sets learn in one vmapped program per chunk of
iterations (:mod:`jaxlth.distillation`), resumably. The result is the artifact ``distilled``
(``images`` ``(R, N, ...)`` float32 in the real data's stored units, ``labels`` ``(R, N)`` int32 or
``(R, N, K)`` float32 logits, ``lr`` ``(R,)``), read with ``jaxlth.results.load(workdir).distilled()``
and trained on by any run with ``data.name = "distilled"``; figures ``plots/distilled_rR.png`` (one row
per class) and ``plots/distill_loss.png``.
"""

from jaxlth.distillation import keys
from jaxlth.experiments.distill import block
from jaxlth.experiments.distill.arms import ARMS
from jaxlth.experiments.protocol import Experiment, lazy

EXPERIMENT = Experiment(
    name="distill",
    summary="learn a synthetic training set of a few images per class (MTT, or the cheaper DM)",
    run=lazy("jaxlth.experiments.distill.run:run"),
    defaults=block.defaults,
    validate=block.validate,
    check=lazy("jaxlth.experiments.distill.run:check"),
    arms=ARMS,
    streams=keys.STREAMS,
    reader=lazy("jaxlth.experiments.distill.reader:DistillRun"),
    report=lazy("jaxlth.experiments.distill.figures:report"),
    figures=lazy("jaxlth.experiments.distill.figures"),
    order=10,
)
