"""The rewinding recipe (``configs/rewinding_fashion_mnist.py``) on the real Fashion-MNIST: its settings are
the ones README's measurements name, and its instability and lottery stages run a few steps end to end."""

import os

import pytest

from jaxlth import config as config_lib
from jaxlth import experiments, results
from tests.conftest import FASHION_MNIST_DIR

RECIPE = "configs/rewinding_fashion_mnist.py"


def test_the_recipe_holds_the_measured_settings():
    c = config_lib.from_file(f"{RECIPE}:lottery")
    config_lib.validate(c)
    assert (c.model.name, c.data.name, c.train.optimizer) == ("lenet_300_100", "fashion_mnist", "sgd")
    assert (c.train.lr, c.train.momentum, c.train.schedule, c.train.warmup) == (0.1, 0.9, "cosine", "0it")
    assert (c.train.steps, c.lottery.rewind, c.lottery.levels, tuple(c.lottery.branches)) == (
        "10ep",
        "500it",
        16,
        ("random_reinit",),
    )
    i = config_lib.from_file(f"{RECIPE}:instability")
    config_lib.validate(i)
    assert i.experiment == "instability" and i.instability.spawn_steps == "0it,100it,500it,2000it"


@pytest.mark.skipif(
    not os.path.exists(os.path.join(FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz")),
    reason=f"real Fashion-MNIST is not installed in {FASHION_MNIST_DIR}",
)
@pytest.mark.parametrize("stage", ["instability", "lottery"])
def test_each_stage_runs_a_few_steps_on_the_real_data(stage, tmp_path):
    c = config_lib.from_file(f"{RECIPE}:{stage}")
    c.data.subsample_fraction = 0.02  # 1,200 images: 9 steps an epoch
    c.train.steps = "12it"
    c.eval_every = c.checkpoint_every = "6it"
    c.progress = False
    c.lottery.rewind = "3it"
    c.lottery.levels = 1
    c.instability.spawn_steps = "0it,3it"
    c.instability.alphas = 3
    c.instability.train_examples = 256
    experiments.run(c, str(tmp_path / stage))
    table = results.load(str(tmp_path / stage)).table
    if stage == "lottery":
        final = table[(table.split == "test") & (table.metric == "accuracy") & (table.step == 12)]
        assert (
            set(final.arm) == {"imp", "random_reinit"} and len(final) == 3
        )  # levels 0 and 1 of IMP, level 1 of the control
    else:
        assert {0, 3} <= set(table["spawn_step"].dropna().astype(int))
