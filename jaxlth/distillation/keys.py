"""The random streams of dataset distillation (listed by ``experiment = "distill"``; :mod:`jaxlth.rng`).

Synthetic set ``r`` draws from the key of ``seed + r`` (:data:`jaxlth.rng.SEED`): its start, and one key
per outer iteration from which every draw of that iteration is folded (the expert and its start epoch, the student's
minibatches and augmentation for MTT; the random network and the real batches for DM).
"""

from jaxlth import rng

ITERATION_KEY = "distill iteration key"  # ITERATION of set r, folded with the iteration i

START = rng.Stream("distill: the real images (or noise) synthetic set r starts from", rng.SEED, 9100)
ITERATION = rng.Stream("distill: outer iteration i of synthetic set r: folded with i", rng.SEED, 9101)
EVALUATION = rng.Stream("distill: the fresh network synthetic set r is evaluated on", rng.SEED, 9102)
EVALUATION_ORDER = rng.Stream(
    "distill: the minibatches (and augmentation) of that evaluation's training", rng.SEED, 9103
)
EXPERT = rng.Stream("distill (MTT): the expert of an outer iteration", ITERATION_KEY, 0)
START_EPOCH = rng.Stream("distill (MTT): the expert epoch t the student starts from", ITERATION_KEY, 1)
BATCHES = rng.Stream("distill (MTT): the student's minibatches of synthetic images", ITERATION_KEY, 2)
AUGMENT = rng.Stream("distill: augmentation of the images an iteration trains or embeds on", ITERATION_KEY, 3)
NETWORK = rng.Stream("distill (DM): the randomly initialised network of an iteration", ITERATION_KEY, 4)
REAL = rng.Stream("distill (DM): the real images of each class an iteration embeds", ITERATION_KEY, 5)
STREAMS = (START, ITERATION, EVALUATION, EVALUATION_ORDER, EXPERT, START_EPOCH, BATCHES, AUGMENT, NETWORK, REAL)
