"""``python -m jaxlth.bench scores``: per-example scores and forgetting tracking, LeNet-300-100.

On data of Fashion-MNIST's size, for 4 replicates vmapped in one program (the scores experiment's
layout): examples/s of EL2N (eval-mode forward passes, chunks of 1,000) and of GraNd (per-example
gradients by ``vmap(vjp)``, chunks of 16) over all 60,000 training examples, each also as a
multiple of one training epoch of the same replicates; and the time of one training epoch with
each example's forgetting history updated at every step, over the same epoch without it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlth.analysis import example_scores
from jaxlth.bench.harness import LenetBench, best_times, fashion_mnist_sized
from jaxlth.training import history as history_lib
from jaxlth.training.state import with_examples

REPLICATES = 4


def tracked_runner(bench, replicates: int, num_steps: int):
    """Trains ``num_steps`` steps of an :class:`ExampleState` that tracks every example's history."""
    state = bench.state(replicates)
    n = bench.program.spec.num_train
    holder = [with_examples(state, jnp.tile(jnp.arange(n), (replicates, 1)), history_lib.empty(n, replicates))]

    def run():
        holder[0], metrics = bench.program.train_chunk(holder[0], {}, bench.data, 0, num_steps=num_steps)
        jax.block_until_ready((holder[0], metrics))

    run()
    return run


def score_runner(bench, replicates: int, kind: str):
    params = bench.state(replicates).params
    images, labels = bench.data.train_images, bench.data.train_labels
    if kind == "el2n":
        fn = lambda p: example_scores.el2n(bench.program, p, {}, images, labels, chunk=1000)  # noqa: E731
    else:
        fn = lambda p: example_scores.grand(bench.program, p, {}, images, labels, chunk=16)  # noqa: E731
    compiled = jax.jit(jax.vmap(fn)).lower(params).compile()
    return lambda: jax.block_until_ready(compiled(params))


def suite(args) -> None:
    bench = LenetBench(fashion_mnist_sized(), 128)
    epoch = bench.steps_per_epoch
    runs = {
        "epoch": bench.runner(REPLICATES, None, epoch),
        "tracked": tracked_runner(bench, REPLICATES, epoch),
        "el2n": score_runner(bench, REPLICATES, "el2n"),
        "grand": score_runner(bench, REPLICATES, "grand"),
    }
    t = best_times(runs, args.repeats)
    n = bench.program.spec.num_train
    print(
        f"\n| per-example scores, LeNet-300-100, {n:,} examples x {REPLICATES} replicates vmapped "
        f"(best of {args.repeats}) | time | examples/s (all replicates) | vs one training epoch |\n|---|---|---|---|"
    )
    print(f"| one training epoch (batch 128) | {t['epoch']:.2f} s | {n * REPLICATES / t['epoch']:,.0f} | 1.00x |")
    for kind, label in (
        ("el2n", "EL2N (eval forward, chunks of 1,000)"),
        ("grand", "GraNd (vmap of vjp, chunks of 16)"),
    ):
        print(f"| {label} | {t[kind]:.2f} s | {n * REPLICATES / t[kind]:,.0f} | {t[kind] / t['epoch']:.2f}x |")
    print(
        f"| training epoch tracking forgetting | {t['tracked']:.2f} s | {n * REPLICATES / t['tracked']:,.0f} | "
        f"{t['tracked'] / t['epoch']:.3f}x (overhead {100 * (t['tracked'] / t['epoch'] - 1):+.1f}%) |"
    )
