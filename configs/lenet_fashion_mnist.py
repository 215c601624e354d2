"""LeNet-300-100 on Fashion-MNIST, the OpenLTH LeNet recipe (Frankle et al. 2020, PAPERS.md).

SGD without momentum, lr 0.1, batch 128, 40 epochs, constant schedule, no weight decay;
the output layer is never pruned.

    python -m jaxlth.main --config configs/lenet_fashion_mnist.py --workdir runs/lenet

Four seeds in one compiled program:

    python -m jaxlth.main --config configs/lenet_fashion_mnist.py --workdir runs/lenet4 \
        --config.replicates=4
"""

from jaxlth.config import base_config


def get_config(arg: str | None = None):
    c = base_config()
    c.experiment = "train"
    c.data.name = "fashion_mnist"
    c.model.name = "lenet_300_100"
    c.train.optimizer = "sgd"
    c.train.lr = 0.1
    c.train.batch_size = 128
    c.train.steps = "40ep"
    c.train.schedule = "constant"
    c.lottery.layers_to_ignore = ("output",)
    c.eval_every = "1ep"
    c.checkpoint_every = "1ep"
    return c
