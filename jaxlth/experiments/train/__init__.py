"""``experiment = "train"``: train R replicates of a dense network, evaluate, checkpoint, resume.

Workdir (see ``jaxlth.layout``)::

    checkpoints/<step>/               Orbax training states (all replicates stacked), the latest few
    artifacts/init/                   params and batch_stats at initialisation
    artifacts/main/level_00/mask/     the (all-True) mask over the prunable kernels
    artifacts/main/level_00/final/    params and batch_stats at the end of training
"""

from jaxlth.experiments.protocol import MAIN, Arms, Experiment, lazy

ARMS = Arms({MAIN: "dense"})

EXPERIMENT = Experiment(
    name="train",
    summary="train R replicates of a dense network",
    run=lazy("jaxlth.experiments.train.run:run"),
    arms=ARMS,
    streamable=True,
    sweeps=True,
    order=0,
)
