"""``experiment = "data_diet"``: train on the training set pruned by a score (Paul et al. 2021, Fig. 1).

For every fraction ``f`` of ``data_diet.pruned_fractions`` and every score of ``data_diet.scores``
(scores from the finished scores run ``data_diet.scores_workdir``; ``random`` prunes at random), the
``round(f * N)`` examples the rule drops are removed (``keep="hardest"``: the easiest go, as in the
paper) and a network trains from initialisation on the ``n = N - round(f * N)`` that stay. At one
fraction every score keeps ``n`` examples, so the ``R x S`` networks (replicate ``r``, score ``s`` at
``r * S + s``; each replicate's own initialisation and data key, shared by its scores) train
together in one vmapped program, each on its own examples
(:class:`~jaxlth.training.state.ExampleState`); random subsets differ per replicate (seed
``data.subset.seed + r``). The full training set (``pruned_fraction = 0``, ``score = "none"``)
trains once as the reference.

``budget="steps"`` keeps the number of iterations and the learning-rate schedule of ``train.steps``
on the full data (the paper); ``"epochs"`` counts ``train.steps`` and the schedule in epochs of the subset.
Artifacts ``data_diet/pruned_<f>/{examples,final}`` (``examples``: ``(R * S, n)`` indices); rows
carry ``score`` and ``pruned_fraction``. Figure: ``plots/data_diet.png``.
"""

from jaxlth.experiments.data_diet import block
from jaxlth.experiments.protocol import Experiment, lazy

EXPERIMENT = Experiment(
    name="data_diet",
    summary="train on the training set pruned by EL2N, GraNd, forgetting or at random",
    run=lazy("jaxlth.experiments.data_diet.run:run"),
    defaults=block.defaults,
    validate=block.validate,
    columns=("score", "pruned_fraction"),
    may_change=("data_diet.pruned_fractions", "data_diet.scores"),
    report=lazy("jaxlth.experiments.data_diet.figures:report"),
    figures=lazy("jaxlth.experiments.data_diet.figures"),
    order=7,
    widths=block.widths,
)
