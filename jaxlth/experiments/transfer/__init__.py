"""``experiment = "transfer"``: the masks other lottery runs found, trained on this run's task.

The folder: ``block`` (the ``transfer`` config block), ``source_masks`` (a source's level nearest the
target density, the baselines' masks), ``run`` (every arm in one vmapped program), ``arms``, ``reader``
(``run.arms``, ``run.final()``), ``figures`` (one run) and ``matrix`` (several: sources x targets). See
:mod:`jaxlth.experiments.transfer.run` for what is trained.
"""

from jaxlth.experiments.protocol import Experiment
from jaxlth.experiments.transfer import block, figures, reader, run, source_masks
from jaxlth.experiments.transfer.arms import ARMS

EXPERIMENT = Experiment(
    name="transfer",
    summary="the masks other lottery runs found (and dense, one-shot magnitude, random baselines) trained on this task",
    run=run.run,
    defaults=block.defaults,
    validate=block.validate,
    check=source_masks.check,
    columns=("source_level", "source_density", "layer"),
    arms=ARMS,
    streams=(source_masks.RANDOM_MASK,),
    reader=reader.TransferRun,
    report=figures.report,
    figures=figures,
    order=9,
    widths=block.widths,
)
