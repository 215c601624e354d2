"""Conv-2 on CIFAR-10, as in Frankle & Carbin (2019), "The Lottery Ticket Hypothesis" (Figure 2).

3x3 conv layers 64, 64 with 2x2 max-pooling after each pair, then dense
256, 256, 10 (Frankle & Carbin 2019, Figure 2; ``jaxlth/models/conv.py``).
Adam, lr 2e-4, batch 60, 20,000 iterations, constant learning rate, no weight decay. The
iteration count, learning rate and batch size agree with the project's notes on the paper and with a public
reproduction that cites the paper's Figure 2; they were not read from the paper itself here.

Lottery: 15 levels rewinding to initialisation ("0it"), random pruning and random
reinitialisation as controls. The paper prunes the conv layers 10%, the dense layers 20%
and the output layer 10% of their remaining weights per level; per-layer-kind rates cannot be
expressed yet, so this recipe prunes every layer, output included, 20% per level
(``scope="layerwise"``, ``prune_fraction=0.2``). jaxlth applies its CIFAR-10 augmentation (4-pixel
pad, random crop, horizontal flip) to every CIFAR run; whether the paper augmented is unverified.

    python -m jaxlth.main --config configs/conv2_cifar10.py --workdir runs/conv2
    python -m jaxlth.main --config configs/conv2_cifar10.py:lottery --workdir runs/conv2_lottery
"""

from jaxlth.config import base_config, choose


def get_config(arg: str | None = None):
    c = base_config()
    c.data.name = "cifar10"
    c.model.name = "conv2"
    c.train.optimizer = "adam"
    c.train.lr = 2e-4
    c.train.batch_size = 60
    c.train.steps = "20000it"
    c.train.schedule = "constant"
    c.eval_every = "1ep"
    c.checkpoint_every = "1ep"
    c.lottery.levels = 15
    c.lottery.rewind = "0it"
    c.lottery.prune_fraction = 0.2
    c.lottery.scope = "layerwise"
    c.lottery.branches = ("random_prune", "random_reinit")
    return choose(c, arg)
