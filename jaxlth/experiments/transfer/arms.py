"""The arms of a transfer run: one per source run's mask (named by the source), and the baselines."""

from jaxlth.experiments.networks import INIT, PRETRAIN, REWIND
from jaxlth.legend import Arms

DENSE = "dense"  # the full network, trained from the run's start
MAGNITUDE = "magnitude_at_rewind"  # theta_0 pruned once by magnitude to transfer.density (global): the paper's OMP
RANDOM = "random"  # a uniformly random mask of transfer.density (global)
BASELINES = (DENSE, MAGNITUDE, RANDOM)
RESERVED = (INIT, REWIND, PRETRAIN)  # artifact and arm names of every run: no source may be named so

ARMS = Arms(
    {DENSE: "dense", MAGNITUDE: "one-shot magnitude pruning of θ0", RANDOM: "random pruning"},
    main=DENSE,
)


def level(arm: str) -> int:
    """The level an arm's artifacts and rows carry: 0 for the dense network, 1 for every mask."""
    return 0 if arm == DENSE else 1
