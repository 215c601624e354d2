"""Tickets from distilled data on Fashion-MNIST: IMP whose levels train on a distilled set, its masks judged on
the real data (McDermott & Cummings 2023; McDermott & Parhi 2025, "distilled pruning"), beside real-data IMP.

LeNet-300-100 as in ``configs/lenet_fashion_mnist.py`` (same model and seed, so every stage starts from the
same initialisation θ₀), 5 levels of global magnitude pruning of 20% (0.8^5 = 33% left), rewinding to θ₀, the
output layer dense, 2 replicates. Sized for a 2-core CPU: the real-data trainings are 3 epochs (the recipe's
40); the distilled-data trainings are 300 full-batch SGD steps on the 100 synthetic images at lr 0.01 (the
distill run's experts' rate and its own check). Only the abstracts of the two papers were readable here: their
CIFAR-10 / ResNet-18 settings are not reproduced. Stages (``STAGE``):

* ``:imp_distilled``: IMP on the distilled set (``data.name = "distilled"``; the real test set).
* ``:transfer``: each level's distilled mask trained on the real training set from θ₀
  (``lottery.mask_source``), with random pruning at the same densities as the control.
* ``:real``: ordinary IMP on the real training set, rewinding to θ₀, with random pruning.

    python -m jaxlth.main --config configs/distill_fashion_mnist.py:distill --workdir runs/distill_lenet \
        --config.replicates=2
    python -m jaxlth.main --config configs/distilled/fashion_mnist.py:imp_distilled \
        --workdir runs/imp_distilled --config.data.distilled_workdir=runs/distill_lenet
    python -m jaxlth.main --config configs/distilled/fashion_mnist.py:transfer \
        --workdir runs/distilled_masks_real --config.lottery.mask_source=runs/imp_distilled
    python -m jaxlth.main --config configs/distilled/fashion_mnist.py:real --workdir runs/imp_real

Then the stability of a level's mask to SGD noise on the real data (two copies trained from θ₀ with the mask,
their barrier), and its curvature (trace, top eigenvalues, the Hessian's diagonal):

    python -m jaxlth.main --config configs/lenet_fashion_mnist.py:instability --workdir runs/stability_distilled_5 \
        --config.replicates=2 --config.train.steps=3ep --config.instability.spawn_steps=0it \
        --config.instability.source_workdir=runs/distilled_masks_real --config.instability.level=5
    python -m jaxlth.main --config configs/lenet_fashion_mnist.py:landscape --workdir runs/landscape_distilled \
        --config.replicates=2 --config.landscape.source_workdir=runs/distilled_masks_real \
        --config.landscape.diagonal_probes=20

(the same with ``runs/imp_real``). The loss plane through θ₀ and the two copies:
``jaxlth.analysis.plane.through`` on ``results.load("runs/stability_distilled_5")`` (docs/results.md).
"""

import os

from jaxlth.config import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
STAGES = ("imp_distilled", "transfer", "real")


def get_config(arg: str | None = None):
    if arg not in STAGES:
        raise ValueError(f"unknown config argument {arg!r}; use {', '.join(repr(a) for a in STAGES)}")
    c = load_file(os.path.join(HERE, "..", "lenet_fashion_mnist.py"), "lottery")
    c.replicates = 2
    c.lottery.levels = 5
    c.lottery.prune_fraction = 0.2
    c.lottery.rewind = "0it"
    c.lottery.branches = ("random_prune",)
    c.train.steps = "3ep"
    if arg == "imp_distilled":
        c.data.name = "distilled"
        c.lottery.branches = ()
        c.train.lr = 0.01
        c.train.batch_size = 100  # every synthetic image, each step (10 per class x 10 classes)
        c.train.steps = "300ep"
        c.eval_every = "100ep"
        c.checkpoint_every = "100ep"  # (a checkpoint per synthetic epoch would cost 0.75 s per step)
    return c
