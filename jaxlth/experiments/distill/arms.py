"""The arms of a distill run: the synthetic sets and the experts they match."""

from jaxlth.legend import Arms

SYNTHETIC = "synthetic"  # the synthetic sets: the outer loop's rows, and a fresh network trained on each
EXPERTS = "experts"  # MTT's expert trajectories: replicates of the run's training on the real data
ARMS = Arms({SYNTHETIC: "synthetic set", EXPERTS: "experts (real data)"}, main=SYNTHETIC)
