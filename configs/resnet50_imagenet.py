"""ResNet-50 on ImageNet (ILSVRC 2012), the OpenLTH recipe used by Frankle et al. (2020)
(its appendix of hyperparameters).

SGD with momentum 0.9, lr 0.4, batch 1024, weight decay 1e-4, 90 epochs: a linear warmup over
the first 5 epochs, then x0.1 at epochs 30, 60 and 80. Augmentation (the standard ImageNet pipeline of that
recipe): random-resized
crop to 224 (scale 0.1-1) and horizontal flip for training; resize to 256 and centre crop 224 for
testing. Lottery: 5 levels of global magnitude pruning of 20% of the remaining weights
(0.8^5 = 33% left, near the 30% Frankle et al. 2020 study; unverified), weight rewinding to
epoch 6 (unverified: Frankle et al. 2020 only report that the dense network becomes stable around epoch
18), random pruning and random reinitialisation as controls.

ImageNet is streamed from ArrayRecord files while training (docs/experiments.md, "Streamed
datasets"): ``data.dir`` (or ``$JAXLTH_DATA_DIR/imagenet2012``) holds ``dataset.json`` and the
train and test (validation) records, written once by ``jaxlth.data.records_io.write_dataset``.
Devices the replicates leave split each batch (data parallelism): one replicate on a TPU pod slice
or GPU cluster (``--distributed``, docs/multi_device.md) uses every device.

    python -m jaxlth.main --config configs/resnet50_imagenet.py --workdir runs/resnet50 \
        --config.data.dir=/data/imagenet2012
    python -m jaxlth.main --config configs/resnet50_imagenet.py:lottery --workdir runs/resnet50_lottery \
        --config.data.dir=/data/imagenet2012
"""

from jaxlth.config import base_config, choose


def get_config(arg: str | None = None):
    c = base_config()
    c.data.name = "imagenet2012"
    c.model.name = "resnet50"
    c.model.options.width = 64  # channels of the first stage (override: --config.model.options.width=...)
    c.train.optimizer = "sgd"
    c.train.lr = 0.4
    c.train.momentum = 0.9
    c.train.weight_decay = 1e-4
    c.train.batch_size = 1024
    c.train.steps = "90ep"
    c.train.warmup = "5ep"
    c.train.schedule = "step"
    c.train.milestones = "30ep,60ep,80ep"
    c.train.gamma = 0.1
    c.eval_every = "2000it"
    c.eval_batch_size = 500  # 224x224 images: keep evaluation activations small
    c.checkpoint_every = "2000it"
    c.lottery.levels = 5
    c.lottery.rewind = "6ep"
    c.lottery.prune_fraction = 0.2
    c.lottery.scope = "global"
    c.lottery.branches = ("random_prune", "random_reinit")
    return choose(c, arg)
