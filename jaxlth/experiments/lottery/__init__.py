"""``experiment = "lottery"``: iterative magnitude pruning with rewinding, and control branches.

The folder: ``block`` (the ``lottery`` config block), ``run`` (the levels, their masks and branches),
``averaging`` (particles averaged inside IMP), ``pretrain`` (the rewind point on a data diet),
``arms``, ``streams``, ``reader`` (``run.fractions``, ``prune_fraction=``), ``figures`` and
``sweep_figures``. See :mod:`jaxlth.experiments.lottery.run` for what is trained.
"""

from jaxlth.experiments.lottery import block, streams
from jaxlth.experiments.lottery.arms import ARMS
from jaxlth.experiments.protocol import Experiment, lazy

EXPERIMENT = Experiment(
    name="lottery",
    summary="iterative magnitude pruning with rewinding, and control branches",
    run=lazy("jaxlth.experiments.lottery.run:run"),
    defaults=block.defaults,
    validate=block.validate,
    check=lazy("jaxlth.experiments.lottery.transfer:check"),
    columns=("prune_fraction", "layer", "particle"),
    arms=ARMS,
    streams=streams.STREAMS,
    streamable=True,
    sweeps=True,
    tuple_fields=("lottery.prune_fraction",),
    may_change=("lottery.levels", "lottery.branches"),
    reader=lazy("jaxlth.experiments.lottery.reader:LotteryRun"),
    report=lazy("jaxlth.experiments.lottery.figures:report"),
    figures=lazy("jaxlth.experiments.lottery.figures"),
    order=1,
    widths=block.widths,
)
