"""LeNet-300-100 on Fashion-MNIST, the OpenLTH LeNet recipe (Frankle et al. 2020, Appendix: hyperparameters).

SGD without momentum, lr 0.1, batch 128, 40 epochs, constant schedule, no weight decay;
the output layer is never pruned. Lottery (``:lottery``): 15 levels of global magnitude pruning
of 20% of the remaining weights (0.8^15 = 3.5% left), rewinding to initialisation ("0it"),
random pruning and random reinitialisation as controls.

    python -m jaxlth.main --config configs/lenet_fashion_mnist.py --workdir runs/lenet
    python -m jaxlth.main --config configs/lenet_fashion_mnist.py:lottery --workdir runs/lenet_lottery

Four seeds in one compiled program:

    python -m jaxlth.main --config configs/lenet_fashion_mnist.py --workdir runs/lenet4 \
        --config.replicates=4

Instability (``:instability``, Frankle et al. 2020): 2 copies of the dense network spawned at
iterations 0, 100, 500 and 2,000, each pair's test and train error barrier along 30 alphas. Add
``--config.instability.source_workdir=runs/lenet_lottery --config.instability.between_levels=true``
for the barrier between successive IMP levels (Paul et al. 2023), and
``--config.instability.perturb_scales="(0.1, 0.5, 1.0)"`` for the perturbation experiment.

    python -m jaxlth.main --config configs/lenet_fashion_mnist.py:instability \
        --workdir runs/lenet_fashion_mnist_instability --config.replicates=2

One-shot magnitude pruning (``:one_shot``), the baseline IMP is compared against (Frankle & Carbin 2019):
the trained dense network pruned once to each density and retrained from initialisation:

    python -m jaxlth.main --config configs/lenet_fashion_mnist.py:one_shot --workdir runs/lenet_one_shot \
        --config.one_shot.densities="(0.512, 0.262, 0.107, 0.035)" --config.replicates=2

The mechanism of IMP (Paul et al. 2023, Sec. 3.3). A prune-fraction sweep: four level sequences
in one vmapped program, which levels of each stay matching:

    python -m jaxlth.main --config configs/lenet_fashion_mnist.py:lottery --workdir runs/lenet_sweep \
        --config.lottery.prune_fraction=0.2,0.4,0.6,0.8 --config.lottery.levels=8 --config.replicates=2

then (``:landscape``) the top Hessian eigenvalues and trace of every level's trained network on
4,096 training examples, and the error along the segment to each further projection:

    python -m jaxlth.main --config configs/lenet_fashion_mnist.py:landscape --workdir runs/lenet_sweep_landscape \
        --config.replicates=2 --config.landscape.source_workdir=runs/lenet_sweep

What retraining is for (``:retraining``): of the weights each level prunes, how many were already
the smallest before retraining, and the control that prunes the trained dense network again and
again without retraining:

    python -m jaxlth.main --config configs/lenet_fashion_mnist.py:retraining --workdir runs/lenet_retraining

Data diet (Paul et al. 2021). Per-example scores (``:scores``) of 4 replicates in one program:
GraNd and EL2N at initialisation and at epoch 4 (10% of training), forgetting events over all 40
epochs; then (``:data_diet``) training on the training set with 10-90% of it pruned, the easiest
first by each score, and at random:

    python -m jaxlth.main --config configs/lenet_fashion_mnist.py:scores --workdir runs/lenet_scores \
        --config.replicates=4
    python -m jaxlth.main --config configs/lenet_fashion_mnist.py:data_diet --workdir runs/lenet_data_diet \
        --config.replicates=2

Any run can train on a subset chosen by those scores, e.g. the hardest 50% by EL2N at epoch 4:

    python -m jaxlth.main --config configs/lenet_fashion_mnist.py --workdir runs/lenet_hardest_half \
        --config.data.subset.keep=hardest --config.data.subset.fraction=0.5 \
        --config.data.subset.scores_workdir=runs/lenet_scores --config.data.subset.score_step=4ep

Lottery tickets on a data diet (Paul et al. 2022): the rewind point (step 200) pretrained on the 512
easiest examples by EL2N instead of the full data; compare with ``keep=random`` and with no
``pretrain_data``, and measure each rewind point's instability:

    python -m jaxlth.main --config configs/lenet_fashion_mnist.py:lottery --workdir runs/lenet_diet_el2n \
        --config.lottery.rewind=200it --config.lottery.levels=8 --config.replicates=2 \
        --config.lottery.pretrain_data.keep=easiest --config.lottery.pretrain_data.size=512 \
        --config.lottery.pretrain_data.scores_workdir=runs/lenet_scores
    python -m jaxlth.main --config configs/lenet_fashion_mnist.py:instability --workdir runs/lenet_diet_el2n_lmc \
        --config.replicates=2 --config.instability.source_workdir=runs/lenet_diet_el2n \
        --config.instability.spawn_from=source_rewind

Pruning at initialisation (``:prune_at_init``, Frankle et al. 2021; Liu et al. 2022): random,
magnitude, SNIP, GraSP and SynFlow masks at initialisation, and random uniform and ERK masks, at
the densities of IMP levels 5, 10, 15 and 20 (0.8^L), each with its mask shuffled per layer, its
weights reinitialised and its scores inverted; with an IMP run and a learning-rate rewinding run
of the same training as reference lines:

    python -m jaxlth.main --config configs/lenet_fashion_mnist.py:lottery --workdir runs/lenet_imp20 \
        --config.lottery.levels=20 --config.lottery.branches="()" --config.replicates=2
    python -m jaxlth.main --config configs/lenet_fashion_mnist.py:lottery --workdir runs/lenet_lrr20 \
        --config.lottery.levels=20 --config.lottery.branches="()" --config.replicates=2 \
        --config.lottery.retrain=lr_rewind
    python -m jaxlth.main --config configs/lenet_fashion_mnist.py:prune_at_init --workdir runs/lenet_pai \
        --config.replicates=2 --config.prune_at_init.source_workdir="('runs/lenet_imp20', 'runs/lenet_lrr20')"

Permutation alignment (Ainsworth et al. 2023): the barrier between copies and between networks of
different seeds, before and after aligning their hidden units by weights and by activations, each
also with REPAIR (Jordan et al. 2023):

    python -m jaxlth.main --config configs/lenet_fashion_mnist.py:instability --workdir runs/lenet_align \
        --config.replicates=2 --config.instability.spawn_steps=0it,500it --config.instability.seed_pairs=true \
        --config.instability.align="('none','none+repair','weights','weights+repair','activations','activations+repair')"

Averaging inside IMP (Choi et al. 2024; Zimmer et al. 2024): every level trained as 3 particles and
continued from their average; then also each particle's own average over the epochs of the
second half of training (SWAMP's SWA):

    python -m jaxlth.main --config configs/lenet_fashion_mnist.py:lottery --workdir runs/lenet_swamp \
        --config.replicates=2 --config.lottery.levels=10 --config.lottery.branches="()" \
        --config.lottery.average_copies=3
    python -m jaxlth.main --config configs/lenet_fashion_mnist.py:lottery --workdir runs/lenet_swamp_swa \
        --config.replicates=2 --config.lottery.levels=10 --config.lottery.branches="()" \
        --config.lottery.average_copies=3 --config.lottery.average_swa_start=20ep

IMP with another scorer at every level, e.g. SNIP on each level's trained network:

    python -m jaxlth.main --config configs/lenet_fashion_mnist.py:lottery --workdir runs/lenet_imp_snip \
        --config.lottery.scorer=snip
"""

from jaxlth.config import base_config, choose


def get_config(arg: str | None = None):
    c = base_config()
    c.data.name = "fashion_mnist"
    c.model.name = "lenet_300_100"
    c.train.optimizer = "sgd"
    c.train.lr = 0.1
    c.train.batch_size = 128
    c.train.steps = "40ep"
    c.train.schedule = "constant"
    c.pruning.layers_to_ignore = ("output",)
    c.eval_every = "1ep"
    c.checkpoint_every = "1ep"
    c.lottery.levels = 15
    c.lottery.rewind = "0it"
    c.lottery.prune_fraction = 0.2
    c.lottery.scope = "global"
    c.lottery.branches = ("random_prune", "random_reinit")
    c.instability.spawn_steps = "0it,100it,500it,2000it"
    c.instability.copies = 2
    c.instability.alphas = 30
    c.landscape.source_workdir = "runs/lenet_lottery"
    c.retraining.source_workdir = "runs/lenet_lottery"
    c.scores.at = "0it,4ep"  # GraNd at initialisation, EL2N at 10% of training (epoch 20 of 200 in the paper)
    c.scores.kinds = ("el2n", "grand", "forgetting")
    c.data_diet.scores_workdir = "runs/lenet_scores"
    c.data_diet.pruned_fractions = (0.1, 0.3, 0.5, 0.7, 0.9)
    c.prune_at_init.methods = ("random", "uniform", "erk", "magnitude", "snip", "grasp", "synflow")
    c.prune_at_init.densities = (0.32768, 0.107374, 0.035184, 0.011529)  # 0.8 ** (5, 10, 15, 20)
    c.prune_at_init.ablations = ("shuffle", "reinit", "invert")
    return choose(c, arg)
