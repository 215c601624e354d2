"""A tiny, fast experiment on synthetic data for tests.

python -m jaxlth.main --config tests/configs/tiny.py --workdir /tmp/tiny
python -m jaxlth.main --config tests/configs/tiny.py:lottery --workdir /tmp/tiny_lottery
python -m jaxlth.main --config tests/configs/tiny.py:instability --workdir /tmp/tiny_instability
python -m jaxlth.main --config tests/configs/tiny.py:one_shot --workdir /tmp/tiny_one_shot
python -m jaxlth.main --config tests/configs/tiny.py:scores --workdir /tmp/tiny_scores
python -m jaxlth.main --config tests/configs/tiny.py:prune_at_init --workdir /tmp/tiny_pai
"""

from jaxlth.config import base_config, choose


def get_config(arg: str | None = None):
    c = base_config()
    c.data.name = "synthetic"
    c.data.source = "synthetic"
    c.data.synthetic_train_size = 256
    c.data.synthetic_test_size = 128
    c.model.name = "lenet"
    c.model.options.widths = (32, 16)
    c.train.batch_size = 32  # 8 steps per epoch
    c.train.steps = "3ep" if arg in (None, "train") else "2ep"
    c.train.lr = 0.02
    c.train.momentum = 0.9
    c.train.weight_decay = 1e-4
    c.pruning.layers_to_ignore = ("output",)
    c.eval_every = "5it"
    c.checkpoint_every = "4it"
    c.progress = False
    c.lottery.levels = 2
    c.lottery.rewind = "3it"
    c.lottery.branches = ("random_prune", "random_reinit")
    c.instability.spawn_steps = "0it,4it"
    c.instability.alphas = 5
    c.instability.train_examples = 64
    c.one_shot.densities = (0.5, 0.2)
    c.one_shot.rewind = "3it"
    c.scores.at = "0it,8it"
    c.prune_at_init.densities = (0.5, 0.1)
    c.prune_at_init.ablations = ("shuffle", "reinit", "invert")
    c.prune_at_init.rounds = 0
    c.prune_at_init.examples_per_class = 4
    return choose(c, arg)
