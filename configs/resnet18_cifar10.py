"""ResNet-18 (CIFAR variant) on CIFAR-10, the setting of Paul, Ganguli & Dziugaite (2021), "Deep Learning
on a Data Diet" (their experimental setup and the authors' code, github.com/mansheej/data_diet).

ResNet-18 with a 3x3/1 stem and no max-pool (``model.options.small_images``); SGD with Nesterov
momentum 0.9, lr 0.1, batch 128, weight decay 5e-4, 200 epochs (78,000 iterations), learning rate
x0.2 at epochs 60, 120 and 160; CIFAR-10 augmentation. Scores (``:scores``): GraNd at initialisation
and EL2N at epoch 20, averaged over 10 independent runs (one vmapped program; ``scores.chunk`` of 16
per-example gradients keeps GraNd's memory near 0.7 GB per replicate at 11 M parameters), forgetting
events over the whole training. Data diet (``:data_diet``): 10-70% of the training set pruned, the
easiest first, with the full number of iterations (the authors' code keeps it when it prunes data).

    python -m jaxlth.main --config configs/resnet18_cifar10.py:scores --workdir runs/resnet18_scores \
        --config.replicates=10
    python -m jaxlth.main --config configs/resnet18_cifar10.py:data_diet --workdir runs/resnet18_data_diet \
        --config.replicates=2

IMP (``:lottery``) with this network follows Paul et al. (2022, whose EL2N of ResNet-18 at epoch 20
chose pretraining subsets): 20% global magnitude pruning per level, rewinding to iteration 200; set
``lottery.pretrain_data`` to pretrain the rewind point on a subset chosen by these scores:

    python -m jaxlth.main --config configs/resnet18_cifar10.py:lottery --workdir runs/resnet18_lottery \
        --config.replicates=2 --config.lottery.pretrain_data.keep=easiest --config.lottery.pretrain_data.size=3200 \
        --config.lottery.pretrain_data.scores_workdir=runs/resnet18_scores

CIFAR-10 is not at hand offline: the recipe is checked by tests without the data, and the
conv/BatchNorm path of both experiments runs in the tests on 32x32 synthetic images.
"""

from jaxlth.config import base_config, choose


def get_config(arg: str | None = None):
    c = base_config()
    c.data.name = "cifar10"
    c.model.name = "resnet18"
    c.model.options.small_images = True
    c.train.optimizer = "sgd"
    c.train.lr = 0.1
    c.train.momentum = 0.9
    c.train.nesterov = True
    c.train.weight_decay = 5e-4
    c.train.batch_size = 128
    c.train.steps = "200ep"
    c.train.schedule = "step"
    c.train.milestones = "60ep,120ep,160ep"
    c.train.gamma = 0.2
    c.eval_every = "1ep"
    c.checkpoint_every = "1ep"
    c.lottery.levels = 15
    c.lottery.rewind = "200it"
    c.lottery.prune_fraction = 0.2
    c.lottery.scope = "global"
    c.lottery.branches = ("random_prune", "random_reinit")
    c.scores.at = "0it,20ep"
    c.scores.kinds = ("el2n", "grand", "forgetting")
    c.scores.chunk = 16
    c.data_diet.scores_workdir = "runs/resnet18_scores"
    c.data_diet.score_step = "20ep"
    c.data_diet.pruned_fractions = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
    c.data_diet.budget = "steps"
    return choose(c, arg)
