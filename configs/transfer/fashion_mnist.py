"""Pretrained tickets on Fashion-MNIST: pretrain on classes 0-4, find and train tickets on classes 5-9.

The transfer experiments of Chen et al. 2020 (BERT tickets) and 2021 (CV pretrained tickets), at a
size this repository's CPU affords: task A is Fashion-MNIST's classes 0-4 (T-shirt, trouser,
pullover, dress, coat), task B its classes 5-9 (sandal, shirt, sneaker, bag, ankle boot), each
relabelled 0-4 (``data.classes``). The model and its training are those of
``configs/lenet_fashion_mnist.py`` (LeNet-300-100, SGD lr 0.1, batch 128) with 10 epochs per level (a
quarter of its 40), 12 levels of global magnitude pruning of 20% (0.8^12 = 6.9% left), the output
layer dense. ``STAGE,vit`` runs a stage with ``configs/vit_fashion_mnist.py``'s ViT and training
(patch 7, width 64, depth 3, 4 heads, AdamW) on half of each task's training images (15,000), 4
epochs per level and 3 levels of 40% (21.6% left), what this CPU affords. Stages (``STAGE``):

* ``:pretrain``: IMP on task A from a random init (its level 0 is the dense pretrained network;
  its masks are task A's tickets).
* ``:rotation``: self-supervised pretraining (the CV paper's case; here RotNet's pretext task,
  Gidaris et al. 2018): task A's images, each at 0/90/180/270 degrees, labelled by the rotation.
* ``:transfer``: IMP on task B from the pretrained weights (``lottery.rewind = pretrained``; the
  head fresh, dense), with random pruning, random reinitialisation and one-shot magnitude pruning
  of the pretrained weights as controls.
* ``:scratch``: IMP on task B from a random init, rewinding to it (the usual lottery ticket).
* ``:carried``: task A's masks trained on task B from the pretrained weights (``lottery.mask_source``),
  with random masks of the same per-layer density as the control.

    python -m jaxlth.main --config configs/transfer/fashion_mnist.py:pretrain --workdir runs/task_a
    python -m jaxlth.main --config configs/transfer/fashion_mnist.py:transfer --workdir runs/b_from_a \
        --config.model.pretrained=runs/task_a:level=0
    python -m jaxlth.main --config configs/transfer/fashion_mnist.py:scratch --workdir runs/b_scratch
    python -m jaxlth.main --config configs/transfer/fashion_mnist.py:carried --workdir runs/b_masks_of_a \
        --config.model.pretrained=runs/task_a:level=0 --config.lottery.mask_source=runs/task_a
    python -m jaxlth.main --config configs/transfer/fashion_mnist.py:rotation --workdir runs/task_a_rotation
    python -m jaxlth.main --config configs/transfer/fashion_mnist.py:transfer --workdir runs/b_from_rotation \
        --config.model.pretrained=runs/task_a_rotation

The ViT's, e.g. ``--config configs/transfer/fashion_mnist.py:pretrain,vit --workdir runs/vit_task_a``.
Two replicates each (``--config.replicates``); a workdir's replicate ``r`` starts replicate ``r`` of
the run that names it. The results and their reading are in README.md ("Pretrained tickets").
"""

import os

from jaxlth.config import choose, load_file

HERE = os.path.dirname(os.path.abspath(__file__))
TASK_A, TASK_B = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
STAGES = ("pretrain", "rotation", "transfer", "scratch", "carried")
ARGS = (*STAGES, *(f"{s},vit" for s in STAGES))


def get_config(arg: str | None = None):
    if arg not in ARGS:
        raise ValueError(f"unknown config argument {arg!r}; use {', '.join(repr(a) for a in ARGS)}")
    stage, _, model = arg.partition(",")
    # the model and its training are those of the Fashion-MNIST recipe of the model, shortened
    c = load_file(os.path.join(HERE, "..", "vit_fashion_mnist.py" if model else "lenet_fashion_mnist.py"))
    c.data.classes = TASK_A if stage in ("pretrain", "rotation") else TASK_B
    c.pruning.layers_to_ignore = ("output",)
    c.replicates = 2
    if model == "vit":
        c.train.steps = "4ep"
        c.data.subsample_fraction = 0.5
        levels, fraction = 3, 0.4
    else:
        c.train.steps = "10ep"
        levels, fraction = 12, 0.2
    if stage == "rotation":
        c.data.task = "rotation"
        return choose(c, "train")
    c = choose(c, "lottery")
    c.lottery.levels = levels
    c.lottery.prune_fraction = fraction
    c.lottery.rewind = "0it"
    c.lottery.branches = ()
    if stage in ("transfer", "carried"):
        c.lottery.rewind = "pretrained"
        c.model.pretrained_head = "fresh"  # a new task's classes: a head of its own
    if stage == "transfer":
        c.lottery.branches = ("random_prune", "random_reinit", "magnitude_at_rewind")
    if stage in ("scratch", "carried"):
        c.lottery.branches = ("random_prune",)
    return c
