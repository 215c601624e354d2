"""The arms of a lottery run: IMP, its control branches, the particles of an averaged level and the
dense pretraining to the rewind point, with their legend labels."""

from jaxlth.experiments.networks import PRETRAIN
from jaxlth.legend import Arms
from jaxlth.pruning.branches import BRANCHES

IMP = "imp"
PARTICLES = "particles"  # lottery.average_copies: the particles whose average is the level's network
SWA = "swa"  # lottery.average_swa_start: each particle's own average of its iterates (SWAMP)

ARMS = Arms(
    labels={
        IMP: "IMP",
        PARTICLES: "single particles (before averaging)",
        SWA: "single particles' SWA averages",
        **{name: branch.label for name, branch in BRANCHES.items()},
        PRETRAIN: "pretraining",
    },
    main=IMP,
    hidden=(PRETRAIN,),
)
