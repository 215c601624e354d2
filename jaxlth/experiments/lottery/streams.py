"""The random streams of a lottery run beyond the core ones (:mod:`jaxlth.rng`); the branches' and
scorers' streams are hashed from their names (:func:`jaxlth.rng.branch_stream`)."""

from jaxlth import rng
from jaxlth.experiments.scoring import SCORING_EXAMPLES

PARTICLE = rng.Stream("IMP particle p (lottery.average_copies): its data key", rng.DATA_KEY, 5000, 1000, "p")
STREAMS = (PARTICLE, SCORING_EXAMPLES)
