"""The random streams of a transfer run beyond the core ones (:mod:`jaxlth.rng`)."""

from jaxlth import rng

RANDOM_MASK = rng.Stream("transfer: the random mask of replicate r (transfer.baselines random)", rng.SEED, 8000)
STREAMS = (RANDOM_MASK,)
