"""Benchmarks: ``python -m jaxlth.bench [train|lottery|instability|landscape|scores|pruning|conv|all] [--epochs 1] [--replicates 1,2,4,8]``.

Measures, for LeNet-300-100 on data of Fashion-MNIST's size (60,000 28x28 uint8 images, random
pixels: the arithmetic does not depend on the values), in one process:

* the machine's ceiling: GFLOP/s of a large float32 matrix product;
* dense training: examples/s and achieved GFLOP/s (matrix-product FLOPs of forward and backward
  passes, counted analytically) as a fraction of that ceiling;
* the time of a masked training step (half of every prunable kernel pruned) over a dense one;
* per-replicate throughput for 1, 2, 4, 8 replicates vmapped in one compiled program.

``lottery`` times one full IMP level of the LeNet recipe (40 epochs on a 50%-pruned mask with a
test evaluation every epoch, as ``configs/lenet_fashion_mnist.py:lottery`` runs it) for 1 and 4
replicates, and the pruning step itself (global magnitude, all replicates in one call).

``instability`` compares ``--copies`` copies trained from one state in one vmapped program with
the same copies trained one after the other (``--epochs`` each), and the cost of evaluating a
30-point interpolation path in one compiled call (:func:`jaxlth.analysis.interpolate`) with 30
separate test-set evaluations of the same networks.

``landscape`` (:mod:`jaxlth.bench.landscape`) times curvature measurements
(:mod:`jaxlth.analysis.curvature`) of LeNet-300-100 on a
10,000-example subset (eval-mode loss, chunks of 1,000) for 1 and 4 replicates vmapped in one
program: one Hessian-vector product, the top 20 eigenvalues (60 Lanczos steps, full
reorthogonalisation) and a Hutchinson trace with 100 Rademacher probes (compiled ahead of time).

``scores`` (:mod:`jaxlth.bench.scores`) times per-example EL2N and GraNd and the cost of tracking
forgetting events during training.

``pruning`` (:mod:`jaxlth.bench.pruning`) times the masks of every pruning-at-initialisation method
against training steps.

``conv`` (:mod:`jaxlth.bench.conv`) measures ResNet-20 and VGG-16 on CIFAR-10-shaped data: images/s
per replicate for ``--replicates``, FLOP/s against the device's matmul ceiling, a step's memory,
and jaxlth's step against a plain Flax + optax loop (``--dtype bfloat16`` for mixed precision).

Timings exclude compilation (each program runs once before it is timed) and take the best of
``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxlth import models
from jaxlth.analysis import alpha_grid, interpolate
from jaxlth.config import base_config
from jaxlth.lottery import imp
from jaxlth.data.dataset import Dataset
from jaxlth.pruning import masks as mask_lib
from jaxlth.training import optim
from jaxlth.training.program import Program, Spec, to_device
from jaxlth.training.state import DATA_STREAM, INIT_STREAM, replicate_keys

LENET_LAYERS = ((784, 300), (300, 100), (100, 10))


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of an ``n x n`` float32 matrix product (the ceiling training is compared to)."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32)
    f = jax.jit(lambda x, y: x @ y)
    f(a, b).block_until_ready()
    best = min(_timed(lambda: f(a, b).block_until_ready()) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def lenet_train_flops(batch_size: int) -> float:
    """Matrix-product FLOPs of one LeNet-300-100 training step: forward, weight and input grads.

    The first layer's input gradient is not needed (inputs are data), so it is not counted.
    """
    forward = sum(2 * batch_size * i * o for i, o in LENET_LAYERS)
    input_grads = sum(2 * batch_size * i * o for i, o in LENET_LAYERS[1:])
    return 2 * forward + input_grads


def fashion_mnist_sized(num_train: int = 60_000, num_test: int = 10_000) -> Dataset:
    rng = np.random.default_rng(0)
    return Dataset(
        name="fashion_mnist_sized_random",
        train_images=rng.integers(0, 256, (num_train, 28, 28, 1), dtype=np.uint8),
        train_labels=rng.integers(0, 10, num_train).astype(np.int32),
        test_images=rng.integers(0, 256, (num_test, 28, 28, 1), dtype=np.uint8),
        test_labels=rng.integers(0, 10, num_test).astype(np.int32),
        num_classes=10, mean=(0.286,), std=(0.353,), source="random",
    )


class LenetBench:
    """LeNet-300-100 with the OpenLTH recipe, ready to time chunks of training."""

    def __init__(self, dataset: Dataset, batch_size: int):
        config = base_config()
        config.train.batch_size = batch_size
        self.steps_per_epoch = dataset.num_train // batch_size
        spec = Spec(batch_size, self.steps_per_epoch, dataset.num_train, dataset.image_shape, dataset.mean,
                    dataset.std, dataset.pixel_scale, dataset.augmentation, eval_batch_size=2000)
        model = models.get_model("lenet_300_100", dataset.num_classes)
        self.program = Program(model, optim.make_optimizer(config.train),
                               optim.make_schedule(config.train, self.steps_per_epoch, 10**9), spec)
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
            best[name] = min(best[name], _timed(run))
    return best


def imp_level_seconds(bench: LenetBench, replicates: int, epochs: int = 40) -> float:
    """Wall time of one IMP level: ``epochs`` epochs on a pruned mask, evaluating every epoch."""
    run = bench.runner(replicates, 0.5, bench.steps_per_epoch)
    state = bench.state(replicates)
    data = bench.data

    def level():
        for _ in range(epochs):
            run()
            _, acc = bench.program.evaluate(state.params, state.batch_stats, data.test_images, data.test_labels)
            np.asarray(acc)  # a host sync per evaluation, as the real loop does

    return _timed(level)


def prune_seconds(bench: LenetBench, replicates: int, repeats: int) -> float:
    """Best wall time of one global magnitude pruning of all replicates (jitted, warm)."""
    params = bench.state(replicates).params
    mask = mask_lib.ones_like(params, ["output"])
    jax.block_until_ready(imp.prune(params, mask, fraction=0.2, scope="global"))
    return min(_timed(lambda: jax.block_until_ready(imp.prune(params, mask, fraction=0.2, scope="global")))
               for _ in range(repeats))


def lottery_suite(args) -> None:
    bench = LenetBench(fashion_mnist_sized(), 128)
    print("\n| IMP, LeNet-300-100 recipe | 1 replicate | 4 replicates |\n|---|---|---|")
    level = {r: imp_level_seconds(bench, r) for r in (1, 4)}
    print(f"| one level: 40 epochs + 40 test evaluations | {level[1]:.1f} s | {level[4]:.1f} s |")
    prune = {r: prune_seconds(bench, r, args.repeats) for r in (1, 4)}
    print(f"| pruning (global magnitude, 266,200 weights each) | {1e3 * prune[1]:.1f} ms | {1e3 * prune[4]:.1f} ms |")


def copies_seconds(bench: LenetBench, copies: int, num_steps: int, repeats: int) -> dict:
    """Best times of ``copies`` copies vmapped in one program and of the copies one by one."""
    together, alone = bench.runner(copies, None, num_steps), bench.runner(1, None, num_steps)

    def one_by_one():
        for _ in range(copies):
            alone()

    return best_times({"vmapped": together, "sequential": one_by_one}, repeats)


def interpolation_seconds(bench: LenetBench, num_alphas: int, repeats: int) -> dict:
    """Best times of a ``num_alphas``-point path in one call and of as many separate evaluations."""
    a = bench.state(1)
    b = bench.program.init(replicate_keys(1, 1, INIT_STREAM), replicate_keys(1, 1, DATA_STREAM))
    net_a, net_b = ({"params": s.params, "batch_stats": s.batch_stats} for s in (a, b))
    alphas, data = alpha_grid(num_alphas), bench.data
    lerp = jax.jit(lambda t, x, y: jax.tree.map(lambda u, v: (1 - t) * u + t * v, x, y))
    nets = [lerp(t, net_a, net_b) for t in alphas]

    def path():
        interpolate(bench.program, net_a, net_b, alphas, data.test_images, data.test_labels)

    def separately():
        for net in nets:
            np.asarray(bench.program.evaluate(net["params"], net["batch_stats"], data.test_images,
                                              data.test_labels)[1])

    path(), separately()  # compile
    return best_times({"path": path, "separate": separately}, repeats)


def instability_suite(args) -> None:
    bench = LenetBench(fashion_mnist_sized(), args.batch_size)
    num_steps = max(1, int(round(args.epochs * bench.steps_per_epoch)))
    copies = args.copies
    train = copies_seconds(bench, copies, num_steps, args.repeats)
    print(f"\n| instability, LeNet-300-100 ({args.epochs:g} epoch(s) per copy, best of {args.repeats}) | time |"
          "\n|---|---|")
    print(f"| {copies} copies vmapped in one program | {train['vmapped']:.2f} s |")
    print(f"| {copies} copies one after the other | {train['sequential']:.2f} s "
          f"({train['sequential'] / train['vmapped']:.2f}x the vmapped time) |")
    path = interpolation_seconds(bench, 30, args.repeats)
    print(f"| 30-point interpolation path, one compiled call (10,000 test images per point) | "
          f"{1e3 * path['path']:.0f} ms |")
    print(f"| 30 separate test evaluations of the same networks | {1e3 * path['separate']:.0f} ms "
          f"({path['separate'] / path['path']:.2f}x the path) |")


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m jaxlth.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", nargs="?", default="train",
                        choices=("train", "lottery", "instability", "landscape", "scores", "pruning", "conv", "all"))
    parser.add_argument("--epochs", type=float, default=1.0, help="epochs per timed run (default 1)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--replicates", default="1,2,4,8", help="comma-separated replicate counts")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--copies", type=int, default=4, help="copies for the instability suite (default 4)")
    parser.add_argument("--models", default="resnet20,vgg16", help="conv: comma-separated models")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"), help="conv: train.dtype")
    parser.add_argument("--steps", type=int, default=50, help="conv: steps per timed run (default 50)")
    parser.add_argument("--train-size", type=int, default=50_000, help="conv: CIFAR-shaped training images")
    args = parser.parse_args(argv)

    device = jax.devices()[0]
    print(f"jax {jax.__version__} on {jax.device_count()} x {device.platform} ({device.device_kind})")
    if args.suite in ("train", "all"):
        train_suite(args)
    if args.suite in ("lottery", "all"):
        lottery_suite(args)
    if args.suite in ("instability", "all"):
        instability_suite(args)
    if args.suite in ("landscape", "all"):
        from jaxlth.bench import landscape  # noqa: PLC0415

        landscape.suite(args)
    if args.suite in ("scores", "all"):
        from jaxlth.bench import scores  # noqa: PLC0415

        scores.suite(args)
    if args.suite in ("pruning", "all"):
        from jaxlth.bench import pruning  # noqa: PLC0415

        pruning.suite(args)
    if args.suite in ("conv", "all"):
        from jaxlth.bench import conv  # noqa: PLC0415

        conv.suite(args)


def train_suite(args) -> None:
    ceiling = matmul_gflops()
    print(f"matmul ceiling (2048x2048 float32): {ceiling:.1f} GFLOP/s")

    bench = LenetBench(fashion_mnist_sized(), args.batch_size)
    num_steps = max(1, int(round(args.epochs * bench.steps_per_epoch)))
    examples = args.batch_size * num_steps
    counts = [int(x) for x in args.replicates.split(",") if x]

    runs = {"dense": bench.runner(1, None, num_steps), "masked": bench.runner(1, 0.5, num_steps)}
    runs.update({r: bench.runner(r, None, num_steps) for r in counts})
    seconds = best_times(runs, args.repeats)
    dense = seconds["dense"]
    achieved = lenet_train_flops(args.batch_size) * num_steps / dense / 1e9

    print(f"LeNet-300-100, batch {args.batch_size}, {num_steps} steps ({args.epochs:g} epochs) per timed run, "
          f"best of {args.repeats}")
    print("| measurement | value |\n|---|---|")
    print(f"| dense training, 1 replicate | {examples / dense:,.0f} examples/s ({dense / args.epochs:.3f} s/epoch) |")
    print(f"| achieved matmul GFLOP/s | {achieved:.1f} = {100 * achieved / ceiling:.0f}% of the ceiling |")
    print(f"| masked (50% pruned) / dense step time | {seconds['masked'] / dense:.3f} |")
    print("\n| replicates vmapped | s/epoch (all replicates) | examples/s summed over replicates | vs 1 replicate |")
    print("|---|---|---|---|")
    one = examples / seconds[counts[0]] / counts[0] if counts else 0.0
    for r in counts:
        total = examples * r / seconds[r]
        print(f"| {r} | {seconds[r] / args.epochs:.3f} | {total:,.0f} | {total / one:.2f}x |")
