"""``experiment = "transfer"``: the masks other lottery runs found, trained on this run's task.

The folder: ``block`` (the ``transfer`` config block), ``source_masks`` (a source's level nearest the
target density, the baselines' masks), ``run`` (every arm in one vmapped program), ``arms``, ``streams``, ``reader``
(``run.arms``, ``run.final()``), ``figures`` (one run) and ``matrix`` (several: sources x targets). See
:mod:`jaxlth.experiments.transfer.run` for what is trained.
"""

from jaxlth.experiments.protocol import Experiment, lazy
from jaxlth.experiments.transfer import block, streams
from jaxlth.experiments.transfer.arms import ARMS

EXPERIMENT = Experiment(
    name="transfer",
    summary="the masks other lottery runs found (and dense, one-shot magnitude, random baselines) trained on this task",
    run=lazy("jaxlth.experiments.transfer.run:run"),
    defaults=block.defaults,
    validate=block.validate,
    check=lazy("jaxlth.experiments.transfer.source_masks:check"),
    columns=("source_level", "source_density", "layer"),
    arms=ARMS,
    streams=streams.STREAMS,
    reader=lazy("jaxlth.experiments.transfer.reader:TransferRun"),
    report=lazy("jaxlth.experiments.transfer.figures:report"),
    figures=lazy("jaxlth.experiments.transfer.figures"),
    order=9,
    widths=block.widths,
)
