"""The random streams of a landscape run beyond the core ones (:mod:`jaxlth.rng`)."""

from jaxlth import rng

LEVEL = rng.Stream("landscape of level L, replicate r: Lanczos start and Hutchinson probes", rng.SEED, 3000, 1000, "L")
SUBSET = rng.Stream("the training examples the landscape's Hessian is taken on (a fixed order)", rng.CONSTANT, 2)
DIAGONAL = rng.Stream(
    "landscape of level L, replicate r: Hutchinson probes of the Hessian's diagonal", rng.SEED, 4000, 1000, "L"
)
STREAMS = (LEVEL, SUBSET, DIAGONAL)
