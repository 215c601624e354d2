"""Where to rewind: IMP on LeNet-300-100 / Fashion-MNIST rewound to 0, 100, 500 and 2,000 iterations,
with weight and learning-rate rewinding (8 runs, each with its replicates vmapped).

    python -m jaxlth.sweep configs/sweeps/lenet_rewind.py --workdir runs/sweep_rewind
    python -m jaxlth.sweep configs/sweeps/lenet_rewind.py --workdir runs/sweep_rewind --executor slurm \
        --slurm_partition gpu --slurm_timeout_min 240

Then, in a notebook: ``jaxlth.results.load_many("runs/sweep_rewind/*")`` (columns ``lottery.rewind``
and ``lottery.retrain``).
"""

from jaxlth.sweep import grid

CONFIG = "configs/lenet_fashion_mnist.py:lottery"


def get_sweep():
    return grid(
        **{
            "lottery.rewind": ["0it", "100it", "500it", "2000it"],
            "lottery.retrain": ["weight_rewind", "lr_rewind"],
            "replicates": [2],
            "lottery.levels": [8],
            "lottery.branches": [()],
        }
    )
