"""The pruning scaling law (Rosenfeld et al. 2021) on LeNet / Fashion-MNIST: IMP on LeNets of hidden widths
1/8, 1/4, 1/2 and 1 times (300, 100), each run with its 2 replicates vmapped (4 runs).

    python -m jaxlth.sweep configs/sweeps/lenet_width_scaling.py --workdir runs/sweep_width
    python -m jaxlth.sweep configs/sweeps/lenet_width_scaling.py --workdir runs/sweep_width --executor slurm \
        --slurm_partition gpu --slurm_timeout_min 240

Then fit the law to the three narrower widths and predict the widest (``jaxlth.analysis.scaling``):

    import jaxlth.results
    from jaxlth.analysis import scaling, scaling_figure

    table = jaxlth.results.load_many("runs/sweep_width/*")           # column model.options.widths
    law = scaling.fit(table, widths=[(38, 12), (75, 25), (150, 50)])  # print(law): ε↑, γ, p, ψ; μ, σ of δ
    held_out = law.deviations(table, widths=[(300, 100)])            # its column delta: the extrapolation
    scaling_figure.draw(law, table)                                  # measured and fitted error

Settings: ``configs/lenet_fashion_mnist.py:lottery`` (batch 128, rewinding to initialisation, the output
layer never pruned) with what the law needs changed. Levels prune 40% of the remaining weights, 12 of
them (0.6^12 = 0.22% of the weights left), so that every width reaches the power-law region and the
narrow ones the high-error plateau (20% a level would need about 27 levels to get as far; the law does
not depend on the density grid). Every level trains to convergence of its schedule: Adam, lr 1.2e-3
(Frankle & Carbin 2019's LeNet optimizer) with a cosine decay to 0, since a rate that is still high at
the end leaves the dense network further from its minimum than the faster-learning sparse ones and
bends the low-error plateau down (seen with the recipe's constant-rate SGD at 2 epochs), and SGD with
momentum 0.9 at lr 0.1 diverged for one replicate of the narrowest width.

The full settings train every level for 40 epochs (``STEPS``). README's numbers were measured with
``STEPS = "2ep"`` on this project's shared 2-core CPU, workdirs in /tmp/scaling_runs/sweep.
"""

from jaxlth.sweep import grid

CONFIG = "configs/lenet_fashion_mnist.py:lottery"
WIDTHS = [(38, 12), (75, 25), (150, 50), (300, 100)]  # 1/8, 1/4, 1/2 and 1 x LeNet-300-100
STEPS = "40ep"  # training per level; README's CPU run: "2ep"


def get_sweep():
    return grid(
        **{
            "model.name": ["lenet"],
            "model.options.widths": WIDTHS,
            "train.optimizer": ["adam"],
            "train.lr": [1.2e-3],
            "train.schedule": ["cosine"],
            "train.steps": [STEPS],
            "lottery.prune_fraction": [0.4],
            "lottery.levels": [12],
            "replicates": [2],
            "lottery.branches": [()],
        }
    )
