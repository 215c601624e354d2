"""Benchmarks: ``python -m jaxlth.bench SUITE``, SUITE one of train, lottery, instability, landscape, scores,
pruning, conv, load, overhead, export, distill, all.

Options: ``--epochs 1``, ``--replicates 1,2,4,8`` and more (``--help``). ``train --model vit_tiny``
times a Vision Transformer instead of LeNet (:mod:`jaxlth.bench.vit_speed`: steps/s per replicate
for ``R`` = 1, 2, 4 and the ratio to a plain Flax + optax loop; ``--steps``, ``--batch-size``,
``--train-size`` and ``--model-options width=64,depth=4`` make it small). ``train --model bert_mini`` (or
``bert``, ``bert_tiny`` ... ``bert_base``) times a BERT fine-tuning on SST-2-shaped tokens the same way, with
tokens/s, real and padded (:mod:`jaxlth.bench.bert_speed`; batch 32 by default).

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

``landscape`` (:mod:`jaxlth.bench.hessian_speed`) times curvature measurements
(:mod:`jaxlth.analysis.curvature`) of LeNet-300-100 on a
10,000-example subset (eval-mode loss, chunks of 1,000) for 1 and 4 replicates vmapped in one
program: one Hessian-vector product, the top 20 eigenvalues (60 Lanczos steps, full
reorthogonalisation) and a Hutchinson trace with 100 Rademacher probes (compiled ahead of time).

``scores`` (:mod:`jaxlth.bench.scoring_speed`) times per-example EL2N and GraNd and the cost of tracking
forgetting events during training.

``pruning`` (:mod:`jaxlth.bench.mask_speed`) times the masks of every pruning-at-initialisation method
against training steps.

``conv`` (:mod:`jaxlth.bench.conv_speed`) measures ResNet-20 and VGG-16 on CIFAR-10-shaped data: images/s
per replicate for ``--replicates``, FLOP/s against the device's matmul ceiling, a step's memory,
and jaxlth's step against a plain Flax + optax loop (``--dtype bfloat16`` for mixed precision).

``load`` (:mod:`jaxlth.bench.load_speed`; its own options ``--model``, ``--mb``, ``--repeats``; not in
``all``) times reading a ResNet-50 ``.safetensors`` file under torchvision's names into a network
against reading the file's bytes.

``overhead`` (:mod:`jaxlth.bench.overhead`; its own options ``--epochs``, ``--repeats``, ``--data``,
``--cases``; not in ``all``) runs whole ``python -m jaxlth.main`` processes of the LeNet recipe and of one
lottery level with a cold and a warm compilation cache: time to the first training step, programs
compiled and loaded, the time in evaluation, checkpoints, rows and figures, and the whole process over
its training.

``export`` (:mod:`jaxlth.bench.export_speed`; its own options ``--models``, ``--densities``, ``--batches``,
``--repeats``; not in ``all``) times the forward pass of an exported LeNet-300-100 and a wider MLP
(:mod:`jaxlth.export`), dense against BCOO kernels at 20%, 5% and 1% density, batches of 1 and 1,000.

``distill`` (:mod:`jaxlth.bench.distill_speed`; its own options ``--models``, ``--ipc``, ``--inner-steps``,
``--replicates``, ``--iterations``, ``--repeats``; not in ``all``) times one MTT outer iteration and one DM
iteration of R synthetic sets in one program, and the compiled chunk's memory.

Timings exclude compilation (each program runs once before it is timed) and take the best of
``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import sys

import jax
import numpy as np

from jaxlth import models
from jaxlth.analysis import alpha_grid, interpolate
from jaxlth.bench import bert_speed, conv_speed, hessian_speed, mask_speed, scoring_speed, vit_speed
from jaxlth.bench.harness import LenetBench, best_times, fashion_mnist_sized, lenet_train_flops, matmul_gflops, timed
from jaxlth.pruning import imp
from jaxlth.pruning import masks as mask_lib
from jaxlth.training.state import DATA_STREAM, INIT_STREAM, replicate_keys


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

    return timed(level)


def prune_seconds(bench: LenetBench, replicates: int, repeats: int) -> float:
    """Best wall time of one global magnitude pruning of all replicates (jitted, warm)."""
    params = bench.state(replicates).params
    mask = mask_lib.ones_like(params, ["output"])
    jax.block_until_ready(imp.prune(params, mask, fraction=0.2, scope="global"))
    return min(
        timed(lambda: jax.block_until_ready(imp.prune(params, mask, fraction=0.2, scope="global")))
        for _ in range(repeats)
    )


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
            np.asarray(bench.program.evaluate(net["params"], net["batch_stats"], data.test_images, data.test_labels)[1])

    path(), separately()  # compile
    return best_times({"path": path, "separate": separately}, repeats)


def instability_suite(args) -> None:
    bench = LenetBench(fashion_mnist_sized(), args.batch_size)
    num_steps = max(1, int(round(args.epochs * bench.steps_per_epoch)))
    copies = args.copies
    train = copies_seconds(bench, copies, num_steps, args.repeats)
    print(
        f"\n| instability, LeNet-300-100 ({args.epochs:g} epoch(s) per copy, best of {args.repeats}) | time |"
        "\n|---|---|"
    )
    print(f"| {copies} copies vmapped in one program | {train['vmapped']:.2f} s |")
    print(
        f"| {copies} copies one after the other | {train['sequential']:.2f} s "
        f"({train['sequential'] / train['vmapped']:.2f}x the vmapped time) |"
    )
    path = interpolation_seconds(bench, 30, args.repeats)
    print(
        f"| 30-point interpolation path, one compiled call (10,000 test images per point) | "
        f"{1e3 * path['path']:.0f} ms |"
    )
    print(
        f"| 30 separate test evaluations of the same networks | {1e3 * path['separate']:.0f} ms "
        f"({path['separate'] / path['path']:.2f}x the path) |"
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["load"]:  # its own options: jaxlth.bench.load_speed
        from jaxlth.bench import load_speed

        load_speed.main(argv[1:])
        return
    if argv[:1] == ["overhead"]:  # its own options: jaxlth.bench.overhead
        from jaxlth.bench import overhead

        overhead.main(argv[1:])
        return
    if argv[:1] == ["distill"]:  # its own options: jaxlth.bench.distill_speed
        from jaxlth.bench import distill_speed

        distill_speed.main(argv[1:])
        return
    if argv[:1] == ["export"]:  # its own options: jaxlth.bench.export_speed
        from jaxlth.bench import export_speed

        export_speed.main(argv[1:])
        return
    parser = argparse.ArgumentParser(prog="python -m jaxlth.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "suite",
        nargs="?",
        default="train",
        choices=("train", "lottery", "instability", "landscape", "scores", "pruning", "conv", "all"),
    )
    parser.add_argument("--epochs", type=float, default=1.0, help="epochs per timed run (default 1)")
    parser.add_argument("--batch-size", "--batch", type=int, default=None, help="default 128; 32 for a BERT")
    parser.add_argument(
        "--replicates", default=None, help="comma-separated replicate counts (default 1,2,4,8; 1,2,4 for a ViT or BERT)"
    )
    parser.add_argument(
        "--model",
        default="lenet_300_100",
        choices=("lenet_300_100", "vit", *models.VIT_SIZES, *bert_speed.MODELS),
        help="train: the model timed (default lenet_300_100; a ViT: jaxlth/bench/vit_speed.py; a BERT: "
        "jaxlth/bench/bert_speed.py)",
    )
    parser.add_argument(
        "--model-options", default="", help="train, a ViT or BERT: its options, e.g. width=64,depth=4 or layers=2"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--copies", type=int, default=4, help="copies for the instability suite (default 4)")
    parser.add_argument("--models", default="resnet20,vgg16", help="conv: comma-separated models")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"), help="conv, a BERT: train.dtype")
    parser.add_argument("--steps", type=int, default=50, help="conv, a ViT or BERT: steps per timed run (default 50)")
    parser.add_argument(
        "--train-size",
        type=int,
        default=None,
        help="conv, a ViT: CIFAR-shaped training images (default 50,000); a BERT: SST-2-shaped examples (67,349)",
    )
    args = parser.parse_args(argv)
    bert = bert_speed.is_bert(args.model)
    vit = args.model != "lenet_300_100" and not bert
    args.batch_size = args.batch_size or (bert_speed.DEFAULT_BATCH if bert else 128)
    args.train_size = args.train_size or (bert_speed.SST2_TRAIN if bert else 50_000)
    args.replicates = args.replicates or (vit_speed.DEFAULT_REPLICATES if vit or bert else "1,2,4,8")
    args.model_options = vit_speed.parse_options(args.model_options)

    device = jax.devices()[0]
    print(f"jax {jax.__version__} on {jax.device_count()} x {device.platform} ({device.device_kind})")
    if args.suite in ("train", "all"):
        if bert:
            bert_speed.suite(args)
        elif vit:
            vit_speed.suite(args)
        else:
            train_suite(args)
    if args.suite in ("lottery", "all"):
        lottery_suite(args)
    if args.suite in ("instability", "all"):
        instability_suite(args)
    if args.suite in ("landscape", "all"):
        hessian_speed.suite(args)
    if args.suite in ("scores", "all"):
        scoring_speed.suite(args)
    if args.suite in ("pruning", "all"):
        mask_speed.suite(args)
    if args.suite in ("conv", "all"):
        conv_speed.suite(args)


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

    print(
        f"LeNet-300-100, batch {args.batch_size}, {num_steps} steps ({args.epochs:g} epochs) per timed run, "
        f"best of {args.repeats}"
    )
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
