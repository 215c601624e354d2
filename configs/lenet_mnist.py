"""LeNet-300-100 on MNIST, the OpenLTH LeNet recipe (Frankle et al. 2020, Appendix: hyperparameters).

SGD without momentum, lr 0.1, batch 128, 40 epochs (468 steps each), constant schedule, no
weight decay. Lottery: 15 levels of global magnitude pruning of 20% of the remaining weights
(0.8^15 = 3.5% left), rewinding to initialisation ("0it": LeNet is stable at step 0), the output
layer never pruned, random pruning and random reinitialisation as controls.

    python -m jaxlth.main --config configs/lenet_mnist.py --workdir runs/lenet_mnist
    python -m jaxlth.main --config configs/lenet_mnist.py:lottery --workdir runs/lenet_mnist_lottery \
        --config.replicates=4

Instability (``:instability``, Frankle et al. 2020): 2 copies of the dense network spawned at
iterations 0, 100, 500 and 2,000, each pair's test and train error barrier along 30 alphas. Add
``--config.instability.source_workdir=runs/lenet_lottery --config.instability.between_levels=true``
for the barrier between successive IMP levels (Paul et al. 2023), and
``--config.instability.perturb_scales="(0.1, 0.5, 1.0)"`` for the perturbation experiment.

    python -m jaxlth.main --config configs/lenet_mnist.py:instability --workdir runs/lenet_mnist_instability \
        --config.replicates=2
"""

from jaxlth.config import base_config, choose


def get_config(arg: str | None = None):
    c = base_config()
    c.data.name = "mnist"
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
    return choose(c, arg)
