"""``python -m jaxlth.bench pruning``: what building masks at initialisation costs, LeNet-300-100.

For 4 replicates vmapped in one program (the prune_at_init layout) and 6 target densities: the time
of each method's 24 masks (scoring, the rounds, and the selection of the kept weights), per mask
against one replicate's training step (batch 128; a step of 4 vmapped replicates divided by 4).
SNIP and GraSP score on 10 examples of each class; SynFlow runs its 100 rounds for every density (the
densities vmapped).
The ``erk`` and ``uniform`` methods cost what ``random`` costs (the same scores, other counts).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlth.bench.harness import LenetBench, best_times, fashion_mnist_sized
from jaxlth.experiments import scoring
from jaxlth.pruning import at_init, scorers
from jaxlth.pruning import masks as mask_lib
from jaxlth.training import functions as fn

REPLICATES = 4
DENSITIES = (0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625)
PER_CLASS = 10


def mask_runner(bench, method: str):
    state = bench.state(REPLICATES)
    network = {"params": state.params, "batch_stats": state.batch_stats}
    dense = mask_lib.ones_like(state.params, ["output"])
    model = scoring.model_for(bench.program.model, tuple(bench.program.spec.image_shape))
    scorer = scorers.SCORERS[at_init.METHODS[method].scorer]
    n = PER_CLASS * 10  # the timing does not depend on which examples: the first 100, for every replicate
    x = fn.preprocess(bench.data.train_images[:n], bench.program.spec)
    data = (
        jnp.broadcast_to(x[None, None], (REPLICATES, 1, *x.shape)),
        jnp.broadcast_to(bench.data.train_labels[None, None, :n], (REPLICATES, 1, n)),
    )

    how = at_init.Pruning(scorer, model, at_init.METHODS[method].scope or "global", scorer.rounds)

    def one(replicate_network, m, d, key):
        return at_init.masks_at_densities(how, replicate_network, m, d, key, jnp.asarray(DENSITIES))

    compiled = jax.jit(jax.vmap(one)).lower(network, dense, data, state.data_key).compile()
    return lambda: jax.block_until_ready(compiled(network, dense, data, state.data_key))


def suite(args) -> None:
    bench = LenetBench(fashion_mnist_sized(), 128)
    steps = 100
    runs = {"train": bench.runner(REPLICATES, 0.5, steps)}
    for method in ("random", "magnitude", "snip", "grasp", "synflow"):
        runs[method] = mask_runner(bench, method)
    t = best_times(runs, args.repeats)
    step = t["train"] / steps / REPLICATES  # one replicate's training step, as vmapped training runs it
    masks = REPLICATES * len(DENSITIES)
    print(
        f"\n| masks at initialisation, LeNet-300-100, {REPLICATES} replicates x {len(DENSITIES)} densities "
        f"vmapped (best of {args.repeats}) | all {masks} masks | per mask | one replicate's training steps per mask |"
        f"\n|---|---|---|---|"
    )
    print(
        f"| one training step of one replicate (batch 128, 50% pruned, {REPLICATES} vmapped) | | "
        f"{1000 * step:.2f} ms | 1 |"
    )
    labels = {
        "random": "random (also uniform, ERK)",
        "magnitude": "magnitude",
        "snip": "SNIP (100 examples)",
        "grasp": "GraSP (100 examples, Hg)",
        "synflow": "SynFlow (100 rounds)",
    }
    for method, label in labels.items():
        print(
            f"| {label} | {1000 * t[method]:.0f} ms | {1000 * t[method] / masks:.1f} ms | "
            f"{t[method] / masks / step:.1f} |"
        )
