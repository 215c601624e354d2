"""ImageNet-pretrained ResNet-50 fine-tuned on CIFAR-10, and its tickets: the supervised setting of
Chen et al. 2021, *The Lottery Tickets Hypothesis for Supervised and Self-supervised Pre-training
in Computer Vision Models* (CVPR), with the torchvision ImageNet weights.

The settings are the paper's Table 1 for CIFAR-10 and its code (github.com/VITA-Group/CV_LTH_Pre-training):
SGD with momentum 0.9, lr 0.1 after a 1-epoch warmup, x0.1 at epochs 91 and 136, 182 epochs,
batch 256, weight decay 2e-4, the standard CIFAR augmentation (4-pixel pad, random crop, flip).
Images stay 32x32: the stem is a 3x3/1 convolution without max-pool (``small_images``), initialised
fresh and never pruned, as the paper's code replaces ``conv1``; every other convolution is loaded from
the checkpoint and pruned, the new 10-way head is fresh and dense. Lottery: 18 levels of global
magnitude pruning of 20% of the remaining weights (sparsities 20% ... 98.2%, the paper's grid),
rewinding to the pretrained weights (theta_p), random pruning, random reinitialisation and one-shot
magnitude pruning of the pretrained weights as controls. The paper keeps 5,000 training images as a
validation set; this recipe reports the test set.

The checkpoint (torchvision's ImageNet weights as timm re-hosts them; docs/pretrained.md):

    huggingface-cli download timm/resnet50.tv_in1k model.safetensors --local-dir pretrained/resnet50.tv_in1k

then fine-tune the dense network, or run IMP from it:

    python -m jaxlth.main --config configs/resnet50_pretrained_cifar10.py --workdir runs/resnet50_pretrained
    python -m jaxlth.main --config configs/resnet50_pretrained_cifar10.py:lottery \
        --workdir runs/resnet50_pretrained_lottery --config.replicates=2

IMP from a random initialisation (the paper's theta_0 baseline) is the same run without the checkpoint:

    python -m jaxlth.main --config configs/resnet50_pretrained_cifar10.py:lottery \
        --workdir runs/resnet50_random_lottery --config.model.pretrained="" --config.lottery.rewind=0it
"""

from jaxlth.config import base_config, choose

CHECKPOINT = "pretrained/resnet50.tv_in1k/model.safetensors"


def get_config(arg: str | None = None):
    c = base_config()
    c.data.name = "cifar10"
    c.model.name = "resnet50"
    c.model.options.small_images = True  # 32x32 inputs: a 3x3/1 stem, no max-pool
    c.model.pretrained = CHECKPOINT
    c.model.pretrained_format = "torchvision_resnet"
    c.model.pretrained_head = "fresh"  # 10 classes: a new head
    c.model.pretrained_fresh = ("^stem_conv/",)  # the 3x3 stem is new (the checkpoint's is 7x7)
    c.pruning.layers_to_ignore = ("^stem_conv/",)  # "the first convolution layer ... never pruned"
    c.train.optimizer = "sgd"
    c.train.lr = 0.1
    c.train.momentum = 0.9
    c.train.weight_decay = 2e-4
    c.train.batch_size = 256
    c.train.steps = "182ep"
    c.train.warmup = "1ep"
    c.train.schedule = "step"
    c.train.milestones = "91ep,136ep"
    c.train.gamma = 0.1
    c.eval_every = "1ep"
    c.checkpoint_every = "1ep"
    c.lottery.levels = 18
    c.lottery.rewind = "pretrained"
    c.lottery.prune_fraction = 0.2
    c.lottery.scope = "global"
    c.lottery.branches = ("random_prune", "random_reinit", "magnitude_at_rewind")
    return choose(c, arg)
