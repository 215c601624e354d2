"""VGG-16 on CIFAR-10, the OpenLTH recipe used by Frankle et al. (2020) (its appendix of hyperparameters).

SGD with momentum 0.9, lr 0.1, batch 128, weight decay 1e-4, 62,400 iterations (160 epochs of
390 steps), learning rate x0.1 at iterations 31,200 and 46,800 (epochs 80 and 120); CIFAR-10
augmentation (4-pixel pad, random 32x32 crop, horizontal flip); the output layer is never
pruned. Lottery: 20 levels of global magnitude pruning of 20% of the remaining weights, weight
rewinding to iteration 1,000, random pruning and random reinitialisation as controls. Dense
VGG-16 becomes stable around iteration 1,000 in Frankle et al. (2020); that
their VGG-16 IMP experiments rewind to exactly this step is unverified.

    python -m jaxlth.main --config configs/vgg16_cifar10.py --workdir runs/vgg16
    python -m jaxlth.main --config configs/vgg16_cifar10.py:lottery --workdir runs/vgg16_lottery

Instability (``:instability``, Frankle et al. 2020: dense VGG-16 becomes stable around
iteration 1,000): 2 copies spawned at iterations 0, 100, 500, 2,000 and 5,000, errors on the
test set and 10,000 training examples at 30 alphas. With ``instability.source_workdir`` set to a
finished lottery workdir, ``between_levels`` measures the barrier between successive IMP levels
(Paul et al. 2023); ``instability.bn_recompute_batches`` recomputes BatchNorm statistics at every
alpha from that many training batches.

    python -m jaxlth.main --config configs/vgg16_cifar10.py:instability --workdir runs/vgg16_cifar10_instability \
        --config.replicates=2

The mechanism of IMP (Paul et al. 2023): a prune-fraction sweep in one vmapped program, then
(``:landscape``) the Hessian spectra of every level's trained network (BatchNorm with its running
statistics, ``landscape.bn_mode="eval"``; ``"batch"`` uses each chunk's own statistics) and the
error along each further projection. CIFAR-10 is not at hand offline; the conv/BatchNorm path of
both is tested on Fashion-MNIST padded to 32x32.

    python -m jaxlth.main --config configs/vgg16_cifar10.py:lottery --workdir runs/vgg16_sweep \
        --config.lottery.prune_fraction=0.2,0.4,0.6 --config.replicates=2
    python -m jaxlth.main --config configs/vgg16_cifar10.py:landscape --workdir runs/vgg16_landscape \
        --config.replicates=2 --config.landscape.source_workdir=runs/vgg16_sweep

Pruning at initialisation (``:prune_at_init``, Frankle et al. 2021, CIFAR-10 with this training):
random, magnitude, SNIP, GraSP (10 examples per class, BatchNorm in train mode as in the authors'
code) and SynFlow (100 rounds) at densities 2^-1 .. 2^-6, and random uniform and ERK masks, each
with its mask shuffled per layer, reinitialised and inverted; the lottery run above and one with
``--config.lottery.retrain=lr_rewind`` as reference lines. Frankle et al. (2021)'s code prunes the
output layer too (``--config.pruning.layers_to_ignore="()"`` here; IMP's runs must then do the same
for the densities to mean the same weights).

    python -m jaxlth.main --config configs/vgg16_cifar10.py:prune_at_init --workdir runs/vgg16_pai \
        --config.replicates=2 --config.prune_at_init.source_workdir=runs/vgg16_lottery

Permutation alignment and averaging inside IMP (accelerator runs): the barrier between networks of
different seeds before and after aligning their units (BatchNorm statistics recomputed along the
path, the reset of Jordan et al. 2023; ``+repair``: REPAIR, every unit's statistics reset to the
interpolation of the endpoints'), and IMP continuing from the average of 4 particles per level, each
particle first averaging its own iterates at every epoch end of the last quarter of training at a
constant learning rate of 0.05 (SWAMP, Choi et al. 2024: the SWA-phase rate of 0.05 is the paper's;
its SWA start was not in the sources read here, so the last 25% of training, as in SWA's usual
CIFAR recipe):

    python -m jaxlth.main --config configs/vgg16_cifar10.py:instability --workdir runs/vgg16_align \
        --config.replicates=2 --config.instability.spawn_steps="" --config.instability.seed_pairs=true \
        --config.instability.align="('none','weights','activations','activations+repair')" \
        --config.instability.bn_recompute_batches=10
    python -m jaxlth.main --config configs/vgg16_cifar10.py:lottery --workdir runs/vgg16_swamp \
        --config.lottery.average_copies=4 --config.lottery.branches="()" \
        --config.lottery.average_swa_start=46800it --config.lottery.average_swa_lr=0.05
"""

from jaxlth.config import base_config, choose


def get_config(arg: str | None = None):
    c = base_config()
    c.data.name = "cifar10"
    c.model.name = "vgg16"
    c.train.optimizer = "sgd"
    c.train.lr = 0.1
    c.train.momentum = 0.9
    c.train.weight_decay = 1e-4
    c.train.batch_size = 128
    c.train.steps = "62400it"
    c.train.schedule = "step"
    c.train.milestones = "31200it,46800it"
    c.train.gamma = 0.1
    c.pruning.layers_to_ignore = ("output",)
    c.eval_every = "1ep"
    c.checkpoint_every = "1ep"
    c.lottery.levels = 20
    c.lottery.rewind = "1000it"
    c.lottery.prune_fraction = 0.2
    c.lottery.scope = "global"
    c.lottery.branches = ("random_prune", "random_reinit")
    c.instability.spawn_steps = "0it,100it,500it,1000it,2000it"
    c.instability.copies = 2
    c.instability.alphas = 30
    c.landscape.source_workdir = "runs/vgg16_lottery"
    c.landscape.examples = 4096  # as many Hessian examples as LeNet's: 4 chunks of 1,024 images
    c.prune_at_init.methods = ("random", "uniform", "erk", "magnitude", "snip", "grasp", "synflow")
    c.prune_at_init.densities = (0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625)
    c.prune_at_init.ablations = ("shuffle", "reinit", "invert")
    return choose(c, arg)
