"""``experiment = "one_shot"``: one-shot magnitude pruning, the baseline IMP is compared against.

Frankle & Carbin (2019, Fig. 4 and Sec. 2: "one-shot" pruning) and Renda et al. (2020) compare
iterative pruning with pruning the trained dense network once, straight to the target density,
then retraining from the same rewind point. With rewind step ``k`` and ``T`` training steps::

    dense:     train k -> T from the rewind network on the dense mask        (arm "dense", level 0)
    density d: mask_d = keep the largest-|w| fraction d of the trained dense network's prunable
               weights (``one_shot.scope``: global, layerwise or ERK ranking)
               weight_rewind: rewind params on mask_d; lr_rewind: dense final params on mask_d,
               schedule replayed from k; finetune: dense final params, T - k steps at the final lr
    all densities x replicates train k -> T together, in one vmapped program  (arm "one_shot")

Density ``d_i`` (``one_shot.densities[i]``) is level ``i + 1`` of arm ``one_shot``: the results API
(``run.mask(level, arm="one_shot")``, ``run.params(...)``) and the figures work as for a lottery
run; rows also carry ``target_density``. Removed per mask: ``ceil((1 - d) * N)`` of the ``N``
prunable weights (OpenLTH's rounding), so the density reached is ``floor(d * N) / N``.
"""

from jaxlth.experiments.one_shot import block
from jaxlth.experiments.one_shot.arms import ARMS
from jaxlth.experiments.protocol import Experiment, lazy

EXPERIMENT = Experiment(
    name="one_shot",
    summary="one-shot magnitude pruning to several densities, retrained from the rewind point",
    run=lazy("jaxlth.experiments.one_shot.run:run"),
    defaults=block.defaults,
    validate=block.validate,
    columns=("target_density", "layer"),
    arms=ARMS,
    report=lazy("jaxlth.experiments.one_shot.figures:report"),
    figures=lazy("jaxlth.experiments.one_shot.figures"),
    order=3,
    widths=block.widths,
)
