"""The random streams of an instability run beyond the core ones (:mod:`jaxlth.rng`)."""

from jaxlth import rng

COPY = rng.Stream("instability copy c of replicate r: its data key", rng.DATA_KEY, 1000, 1000, "c")
PERTURBATION = rng.Stream(
    "perturbation group g of replicate r: its noise key (g = 0 is unperturbed)", rng.DATA_KEY, 2000, 1000, "g"
)
ALIGN_RESTART = rng.Stream(
    "weight matching restart i >= 1 of the pair in row r (instability.align_restarts): its order of the groups",
    rng.SEED,
    6000,
    1000,
    "i",
)
STREAMS = (COPY, PERTURBATION, ALIGN_RESTART)
