"""The LeNet-300-100 harness every benchmark suite times with: data of Fashion-MNIST's size, the
recipe's compiled program, FLOP counts and the round-robin timer (see :mod:`jaxlth.bench`)."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxlth import fields, models
from jaxlth.data.dataset import Dataset
from jaxlth.pruning import masks as mask_lib
from jaxlth.training import optim
from jaxlth.training.program import Program, Spec, to_device
from jaxlth.training.setup import optimizer
from jaxlth.training.state import DATA_STREAM, INIT_STREAM, replicate_keys

LENET_LAYERS = ((784, 300), (300, 100), (100, 10))


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of an ``n x n`` float32 matrix product (the ceiling training is compared to)."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32)
    f = jax.jit(lambda x, y: x @ y)
    f(a, b).block_until_ready()
    best = min(timed(lambda: f(a, b).block_until_ready()) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def lenet_train_flops(batch_size: int) -> float:
    """Matrix-product FLOPs of one LeNet-300-100 training step: forward, weight and input grads.

    The first layer's input gradient is not needed (inputs are data), so it is not counted.
    """
    forward = sum(2 * batch_size * i * o for i, o in LENET_LAYERS)
    input_grads = sum(2 * batch_size * i * o for i, o in LENET_LAYERS[1:])
    return 2 * forward + input_grads


def random_sized(name: str, shape: tuple, num_train: int, num_test: int, mean, std, augmentation="none") -> Dataset:
    """Random uint8 images ``(N, *shape)`` and 10 classes with a real dataset's statistics and augmentation:
    the arithmetic of a run on it (the values do not matter)."""
    rng = np.random.default_rng(0)
    return Dataset(
        name=f"{name}_sized_random",
        train_images=rng.integers(0, 256, (num_train, *shape), dtype=np.uint8),
        train_labels=rng.integers(0, 10, num_train).astype(np.int32),
        test_images=rng.integers(0, 256, (num_test, *shape), dtype=np.uint8),
        test_labels=rng.integers(0, 10, num_test).astype(np.int32),
        num_classes=10,
        mean=mean,
        std=std,
        source="random",
        augmentation=augmentation,
    )


def fashion_mnist_sized(num_train: int = 60_000, num_test: int = 10_000) -> Dataset:
    return random_sized("fashion_mnist", (28, 28, 1), num_train, num_test, (0.286,), (0.353,))


def cifar_sized(num_train: int = 50_000, num_test: int = 10_000) -> Dataset:
    """CIFAR-10's shapes, statistics and augmentation."""
    cifar_mean, cifar_std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    return random_sized("cifar10", (32, 32, 3), num_train, num_test, cifar_mean, cifar_std, "cifar")


class LenetBench:
    """LeNet-300-100 with the OpenLTH recipe, ready to time chunks of training."""

    def __init__(self, dataset: Dataset, batch_size: int):
        config = fields.common_config()
        config.train.batch_size = batch_size
        self.steps_per_epoch = dataset.num_train // batch_size
        spec = Spec(
            batch_size,
            self.steps_per_epoch,
            dataset.num_train,
            dataset.image_shape,
            dataset.mean,
            dataset.std,
            dataset.pixel_scale,
            dataset.augmentation,
            eval_batch_size=2000,
        )
        model = models.get_model("lenet_300_100", dataset.num_classes)
        self.program = Program(
            model,
            optimizer(config.train, model, spec),
            optim.make_schedule(config.train, self.steps_per_epoch, 10**9),
            spec,
        )
        self.data = to_device(dataset)

    def state(self, replicates: int):
        return self.program.init(replicate_keys(0, replicates, INIT_STREAM), replicate_keys(0, replicates, DATA_STREAM))

    def runner(self, replicates: int, mask_density: float | None, num_steps: int):
        """A function that trains ``num_steps`` steps of ``replicates`` replicates (compiled, warm)."""
        state = self.state(replicates)
        mask = {}
        if mask_density is not None:
            dense = mask_lib.ones_like(state.params, ["output"])
            mask = jax.tree.map(lambda m: jax.random.bernoulli(jax.random.PRNGKey(0), mask_density, m.shape), dense)
        holder = [state]

        def run():
            holder[0], metrics = self.program.train_chunk(holder[0], mask, self.data, 0, num_steps=num_steps)
            jax.block_until_ready((holder[0], metrics))

        run()  # compile and warm up
        return run


def best_times(runs: dict, repeats: int) -> dict:
    """Best wall time of each run, measured round-robin so that machine noise hits all alike."""
    best = {name: float("inf") for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            best[name] = min(best[name], timed(run))
    return best


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
