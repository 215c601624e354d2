"""Integration: LeNet-300-100 on the real Fashion-MNIST through the command line."""

import os

import numpy as np
import pytest

from jaxlth import results
from tests.conftest import FASHION_MNIST_DIR, run_cli

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.path.exists(os.path.join(FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz")),
        reason=f"real Fashion-MNIST is not installed in {FASHION_MNIST_DIR} (apt-get install dataset-fashion-mnist)",
    ),
]


def test_two_epochs_reach_80_percent_test_accuracy(tmp_path):
    workdir = tmp_path / "lenet"
    proc = run_cli(
        "--config",
        "configs/lenet_fashion_mnist.py",
        "--workdir",
        str(workdir),
        "--config.train.steps=2ep",
        "--config.replicates=2",
        "--config.progress=false",
        check=True,
    )
    assert FASHION_MNIST_DIR in proc.stdout
    table = results.load(str(workdir)).table
    final = table[(table.split == "test") & (table.metric == "accuracy") & (table.step == 2 * 468)]
    assert len(final) == 2
    assert np.all(final.value >= 0.80), final
