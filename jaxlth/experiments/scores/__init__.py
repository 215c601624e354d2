"""``experiment = "scores"``: which training examples matter (Paul et al. 2021; Toneva et al. 2019).

``R`` replicates (each its own initialisation and data order) train densely in one vmapped program
from step 0. At every step of ``scores.at`` the EL2N and GraNd scores of every training example
are computed for every replicate (eval mode, unaugmented training data, one jitted call) and saved
as the artifact ``scores/step_SSSSSSS``; with ``forgetting`` in ``scores.kinds`` the training tracks
each example's forgetting events at every presentation (inside the compiled chunk) and runs to
``train.steps``, then saves ``scores/forgetting``. Without it, training stops at the last ``at`` step.

Load them with ``jaxlth.results.load(workdir).scores("el2n", step="20ep")`` (averaged over
replicates; ``replicates=True`` for ``(R, N)``); choose training subsets from them with
``data.subset`` or ``lottery.pretrain_data`` in another run. Rows: the training curve
(``arm=main``) and per replicate and step a summary of each score (``split=scores``,
``metric=<kind>_mean``). Artifacts: ``init`` and the scores. Figures: ``plots/score_histogram_<score>.png``.
"""

from jaxlth.experiments.protocol import Experiment, lazy
from jaxlth.experiments.scores import block

EXPERIMENT = Experiment(
    name="scores",
    summary="per-example EL2N, GraNd and forgetting scores (data diet)",
    run=lazy("jaxlth.experiments.scores.run:run"),
    defaults=block.defaults,
    validate=block.validate,
    reader=lazy("jaxlth.experiments.scores.reader:ScoresRun"),
    report=lazy("jaxlth.experiments.scores.figures:report"),
    figures=lazy("jaxlth.experiments.scores.figures"),
    order=6,
)
