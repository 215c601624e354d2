"""Instability and rewinding on real data: LeNet-300-100 on Fashion-MNIST at the papers' SGD with momentum.

The setting where Frankle, Dziugaite, Roy & Carbin (2020, "Linear Mode Connectivity and the Lottery
Ticket Hypothesis") locate the rewinding phenomenon is a network that is unstable to SGD noise at
initialisation: copies spawned at step 0 and trained on different data orders end in minima separated
by an error barrier, and become stable only after k steps of training. Their conv nets (ResNet-20,
VGG-16 on CIFAR-10) cannot be trained on this project's CPU within its budget, and the OpenLTH LeNet
recipe (``configs/lenet_fashion_mnist.py``: plain SGD, lr 0.1) is stable from initialisation (barrier
0.3%, README). This recipe keeps LeNet-300-100 and Fashion-MNIST and takes the optimizer of the
papers' conv recipes: SGD with momentum 0.9, lr 0.1, batch 128, no warm-up, no weight decay, a
cosine decay to 0, 10 epochs (4,680 iterations) per training.

How it was found (2026-12-03, this 2-core CPU, 2 replicates, test-error barriers in the Frankle et al.
definition): the OpenLTH LeNet recipe (momentum 0) is stable at k = 0 (0.3 points). With momentum 0.9
at lr 0.1 and a constant rate, the barrier between two copies spawned at k = 0 is 3.5 +- 0.1 points
and 0.2 at k = 100; with the cosine decay kept here it is 3.8 +- 0.3 at k = 0 and falls steadily:
1.0 at 100, 0.3 at 500, 0.04 at 2,000 iterations. lr 0.2 with momentum 0.9 diverges (10% accuracy,
found with ``--config.train.lr=0.1,0.2``, both rates in one program). IMP is then run rewinding to 0
and to k = 500 (about one epoch, where the barrier is 0.3) with the random-reinitialisation control.
What it found (README, "The rewinding phenomenon on real data"): part (a) of the phenomenon, the
instability at initialisation that falls with k, holds; part (b) does not on this network: IMP
rewound to 0 stays matching down to 2.8% of the weights, like IMP rewound to 500 iterations, while
random reinitialisation falls 1.3 points below both.

    python -m jaxlth.main --config configs/rewinding_fashion_mnist.py:instability --workdir runs/rewinding_instability \
        --config.replicates=2
    python -m jaxlth.main --config configs/rewinding_fashion_mnist.py:lottery --workdir runs/rewinding_k500 \
        --config.replicates=2
    python -m jaxlth.main --config configs/rewinding_fashion_mnist.py:lottery --workdir runs/rewinding_k0 \
        --config.replicates=2 --config.lottery.rewind=0it

The instability figure is the instability run's ``plots/barrier_vs_spawn_step.png``; IMP from both
rewind points with their random-reinitialisation controls and the dense band, side by side:

    python -m jaxlth.compare --out runs/rewinding_compare --arms imp,random_reinit \
        "rewind to 0=runs/rewinding_k0" "rewind to 500 it=runs/rewinding_k500"
"""

import os

from jaxlth.config import choose, load_file

HERE = os.path.dirname(os.path.abspath(__file__))


def get_config(arg: str | None = None):
    # the OpenLTH LeNet recipe (data, model, batch, evaluation, 20% global pruning, the spawn steps of
    # its instability), with the conv recipes' momentum, a cosine decay and shorter training
    c = load_file(os.path.join(HERE, "lenet_fashion_mnist.py"))
    c.train.momentum = 0.9
    c.train.schedule = "cosine"
    c.train.steps = "10ep"
    c.lottery.levels = 16
    c.lottery.rewind = "500it"
    c.lottery.branches = ("random_reinit",)
    return choose(c, arg)
