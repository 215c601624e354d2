"""Averaging inside IMP (Choi et al. 2024, SWAMP; Zimmer et al. 2024, Sparse Model Soups): each level's
sparse network trained as ``n`` particles from the same start with different SGD noise, then averaged.

The ``R * n`` particles (particle ``p`` of replicate ``r`` at ``r * n + p``, data key
``fold_in(data_key_r, PARTICLE + p)``) train in one vmapped program on the level's mask; their
parameters are averaged per replicate (the mask is shared, so the average is as sparse), the
BatchNorm statistics of the average recomputed from training batches (networks without
BatchNorm have none), and the average is evaluated. The average is the level's network: the next
level prunes it. Artifacts: ``particles/level_LL/final`` (``R * n``) and ``imp/level_LL/final``
(the ``R`` averages); rows: arm ``particles`` (column ``particle``) from training, arm ``imp`` the
averages' test (and, with ``eval_train``, train) loss and accuracy at the last step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxlth import arms, rng
from jaxlth.analysis import interpolation as interp
from jaxlth.experiments import networks
from jaxlth.experiments.context import Context, network_of
from jaxlth.layout import level_name
from jaxlth.pruning import masks as mask_lib
from jaxlth.training import copies as copies_lib
from jaxlth.training.state import TrainState


def averaged_level(ctx: Context, level: int, mask, network: dict, start: int, end: int, particles: int,
                   program=None) -> dict:
    """The ``R`` averaged networks of ``level`` (trained, averaged and evaluated once; loaded after)."""
    name = f"{arms.IMP}/{level_name(level)}/final"
    labels = {"experiment": "lottery", "arm": arms.IMP, "level": level, "step": end}

    def compute() -> dict:
        final = ctx.cached(f"{arms.PARTICLES}/{level_name(level)}/final",
                           lambda: network_of(_train(ctx, level, mask, network, start, end, particles, program)))
        return average(ctx, final, particles, program)

    return ctx.cached(name, compute, rows=(labels, lambda averaged: _rows(ctx, averaged, mask, level, end, program)))


def _train(ctx: Context, level: int, mask, network: dict, start: int, end: int, particles: int,
           program=None) -> TrainState:
    stacked_mask = copies_lib.repeat(mask, particles)
    initial_state = networks.start_state(
        ctx, copies_lib.repeat(network, particles), stacked_mask, program,
        data_keys=lambda: rng.copy_keys(ctx.setup.data_keys(), particles, rng.PARTICLE))
    coords = [{"replicate": r, "particle": p} for r, p in copies_lib.coordinates(ctx.config.replicates, particles)]
    labels = {"experiment": "lottery", "arm": arms.PARTICLES, "level": level}
    return ctx.train(f"{arms.PARTICLES}/{level_name(level)}",
                     ctx.segment(start, end, f"level {level}: {particles} particles"), stacked_mask, initial_state,
                     labels, coords=coords, program=program)


def average(ctx: Context, particles_network: dict, particles: int, program=None) -> dict:
    """``(R * n) -> (R)``: each replicate's particles averaged; BatchNorm statistics recomputed."""
    program = program or ctx.setup.program
    def mean(x):
        return jnp.mean(x.reshape(-1, particles, *x.shape[1:]), axis=1)

    params, stats = jax.tree.map(mean, particles_network["params"]), jax.tree.map(mean, particles_network["batch_stats"])
    if jax.tree.leaves(stats):
        batches = interp.bn_batches_from(ctx.setup.data.train_images, int(ctx.config.lottery.average_bn_batches),
                                         ctx.config.train.batch_size)
        if batches is not None:
            recompute = jax.jit(jax.vmap(lambda p, s: interp.recompute_batch_stats(program, p, s, batches)))
            stats = recompute(params, stats)
    return {"params": params, "batch_stats": stats}


def _rows(ctx: Context, averaged: dict, mask, level: int, step: int, program=None) -> list[dict]:
    program = program or ctx.setup.program
    data, config = ctx.setup.data, ctx.config
    splits = {"test": (data.test_images, data.test_labels)}
    if config.eval_train:
        splits["train"] = (data.train_images, data.train_labels)
    density = mask_lib.replicate_density(mask, config.replicates)
    epoch = round(step / ctx.setup.steps_per_epoch, 4)
    rows = []
    for split, (images, labels) in splits.items():
        loss, accuracy = program.evaluate(averaged["params"], averaged["batch_stats"], images, labels)
        for metric, values in (("loss", loss), ("accuracy", accuracy)):
            for r, value in enumerate(np.asarray(values)):
                rows.append({"experiment": "lottery", "arm": arms.IMP, "level": level, "replicate": r,
                             "density": float(density[r]), "step": step, "epoch": epoch, "split": split,
                             "metric": metric, "value": float(value)})
    return rows

