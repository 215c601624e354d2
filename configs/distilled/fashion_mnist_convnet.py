"""Tickets from distilled data on Fashion-MNIST with a small ConvNet: the chain of ``fashion_mnist.py`` (LeNet)
for ConvNet-3 of the distillation papers at width 32 (``model = "convnet"``: three blocks of 3x3 conv +
instance norm + ReLU + 2x2 average pool; 28 -> 14 -> 7 -> 3, then Dense 288 -> 10; 21,898 parameters).

The papers distil and prune ConvNet-3 at width 128 on CIFAR-10; width 32 on Fashion-MNIST is what this
project's 2-core CPU affords (an MTT iteration of 10 student steps costs ~3 s here, a real-data epoch ~1 min
per replicate), and so are 3 levels of 36% (64%, 41%, 26% of the weights left) and 1-epoch real trainings.
Stages (``STAGE``):

* ``:distill``: MTT, 10 images per class, 2 experts of 5 epochs (SGD at lr 0.01, batch 256, as MTT's
  buffers), max start epoch 3, 2 expert epochs, 10 student steps on all 100 images, 100 iterations,
  lr of images 100, lr of ``log(lr)`` 0.01 (as ``configs/distill_fashion_mnist.py``, sized down);
* ``:imp_distilled``: IMP on set 0 of that run, rewinding to θ₀, 300 full-batch
  steps at the learned learning rate's start, 0.01;
* ``:transfer``: each level's mask trained on the real training set from θ₀ for 1 epoch (the LeNet recipe's
  SGD: lr 0.1, batch 128, no momentum), random pruning at the same densities as the control;
* ``:real``: real-data IMP with the same training, rewinding to θ₀, and random pruning.

Every stage has the same model and seed, so all start from the same θ₀; 2 replicates.

    python -m jaxlth.main --config configs/distilled/fashion_mnist_convnet.py:distill --workdir runs/distill_convnet
    python -m jaxlth.main --config configs/distilled/fashion_mnist_convnet.py:imp_distilled \
        --workdir runs/imp_distilled_convnet --config.data.distilled_workdir=runs/distill_convnet
    python -m jaxlth.main --config configs/distilled/fashion_mnist_convnet.py:transfer \
        --workdir runs/distilled_masks_real_convnet --config.lottery.mask_source=runs/imp_distilled_convnet
    python -m jaxlth.main --config configs/distilled/fashion_mnist_convnet.py:real --workdir runs/imp_real_convnet

Stability and curvature of a level's masks: the commands of ``fashion_mnist.py`` with this file's ``:real``
stage as the config (``--config configs/distilled/fashion_mnist_convnet.py:real`` and
``--config.experiment=instability`` or ``landscape``).
"""

import os

from jaxlth.config import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
STAGES = ("distill", "imp_distilled", "transfer", "real")


def get_config(arg: str | None = None):
    if arg not in STAGES:
        raise ValueError(f"unknown config argument {arg!r}; use {', '.join(repr(a) for a in STAGES)}")
    if arg == "distill":
        c = load_file(os.path.join(HERE, "..", "distill_fashion_mnist.py"), "distill")
        d = c.distill
        d.experts, d.expert_steps, d.max_start_epoch, d.expert_epochs = 2, "5ep", 3, 2
        d.inner_steps, d.iterations, d.chunk, d.log_every = 10, 100, 25, 5
    else:
        c = load_file(os.path.join(HERE, "fashion_mnist.py"), arg)
        c.lottery.levels, c.lottery.prune_fraction = 3, 0.36
        if arg != "imp_distilled":
            c.train.steps = "1ep"
    c.model.name = "convnet"
    c.model.options.width = 32
    c.replicates = 2
    return c
