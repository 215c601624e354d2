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

With ``lottery.average_swa_start`` (SWAMP's schedule) each particle also averages its own iterates
at the end of every epoch from that step on (:mod:`jaxlth.training.swa`; a constant learning rate
``lottery.average_swa_lr`` in that phase when ``> 0``): the particles' networks are then their SWA
averages, evaluated with recomputed BatchNorm statistics as arm ``swa`` (column ``particle``),
and the level's network is the mean of those averages.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxlth import rng
from jaxlth.analysis import interpolation as interp
from jaxlth.experiments import networks
from jaxlth.experiments.context import Context, network_of
from jaxlth.experiments.lottery.arms import IMP, PARTICLES, SWA
from jaxlth.experiments.lottery.streams import PARTICLE
from jaxlth.experiments.networks import ArmLevel
from jaxlth.layout import level_name
from jaxlth.pruning import masks as mask_lib
from jaxlth.training import copies as copies_lib
from jaxlth.training import swa


def averaged_level(ctx: Context, what: ArmLevel, particles: int) -> dict:
    """The ``R`` averaged networks of IMP's level ``what`` (trained, averaged and evaluated once; loaded after)."""
    program, level, end = ctx.program(what.program), what.level, what.end
    labels = {"arm": IMP, "level": level, "step": end}

    def compute() -> dict:
        final = ctx.cached(
            f"{PARTICLES}/{level_name(level)}/final",
            lambda: _particles(ctx, what, particles),
            rows=_swa_rows(ctx, what.mask, level, end, particles, program),
        )
        return average(ctx, final, particles, program)

    if ctx.exists(f"{PARTICLES}/{level_name(level)}/final") and ctx.rows_lost(f"{PARTICLES}/{level_name(level)}"):
        _particles(ctx, what, particles)  # their training rows again (lost in a crash), from the kept checkpoints
    rows = (labels, lambda averaged: _rows(ctx, averaged, what.mask, level, end, program, IMP))
    return ctx.cached(f"{IMP}/{level_name(level)}/final", compute, rows=rows)


def _swa_rows(ctx: Context, mask, level: int, step: int, particles: int, program=None):
    """With SWA: the rows of every particle's own average (arm ``swa``), BatchNorm recomputed."""
    if _swa_start(ctx) is None:
        return None
    labels = {"arm": SWA, "level": level, "step": step}

    def rows(final: dict) -> list[dict]:
        return _rows(
            ctx,
            recompute_statistics(ctx, final, program),
            copies_lib.repeat(mask, particles),
            level,
            step,
            program,
            SWA,
            particles,
        )

    return labels, rows


def _particles(ctx: Context, what: ArmLevel, particles: int) -> dict:
    """The ``R * n`` trained particles' networks (their SWA averages with ``average_swa_start``)."""
    program, level = ctx.program(what.program), what.level
    swa_start = _swa_start(ctx)
    if swa_start is not None:
        program = swa.program_for(program, swa_start, float(ctx.config.lottery.average_swa_lr))
    stacked_mask = copies_lib.repeat(what.mask, particles)
    start_state = networks.start_state(
        ctx,
        copies_lib.repeat(what.network, particles),
        stacked_mask,
        program,
        data_keys=lambda: rng.copy_keys(ctx.setup.data_keys(), particles, PARTICLE),
    )
    initial_state = start_state if swa_start is None else (lambda: swa.with_average(start_state()))
    coordinates = [{"replicate": r, "particle": p} for r, p in copies_lib.coordinates(ctx.config.replicates, particles)]
    state = ctx.train(
        f"{PARTICLES}/{level_name(level)}",
        ctx.segment(what.start, what.end, f"level {level}: {particles} particles"),
        stacked_mask,
        initial_state,
        {"arm": PARTICLES, "level": level},
        coordinates=coordinates,
        program=program,
    )
    return network_of(state) if swa_start is None else swa.averaged_network(state)


def _swa_start(ctx: Context) -> int | None:
    """The step SWA starts at (``None``: no SWA)."""
    spec = ctx.config.lottery.get("average_swa_start", "")
    return ctx.steps(spec, "lottery.average_swa_start") if spec else None


def average(ctx: Context, particles_network: dict, particles: int, program=None) -> dict:
    """``(R * n) -> (R)``: each replicate's particles averaged; BatchNorm statistics recomputed."""

    def mean(x):
        return jnp.mean(x.reshape(-1, particles, *x.shape[1:]), axis=1)

    return recompute_statistics(ctx, jax.tree.map(mean, particles_network), program)


def recompute_statistics(ctx: Context, network: dict, program=None) -> dict:
    """``network`` (stacked) with its BatchNorm statistics recomputed from ``lottery.average_bn_batches``
    training batches (unchanged without BatchNorm or with 0 batches)."""
    program = ctx.program(program)
    params, stats = network["params"], network["batch_stats"]
    if jax.tree.leaves(stats):
        batches = interp.bn_batches_from(
            ctx.setup.data.train_images, int(ctx.config.lottery.average_bn_batches), ctx.config.train.batch_size
        )
        if batches is not None:
            recompute = jax.jit(jax.vmap(lambda p, s: interp.recompute_batch_stats(program, p, s, batches)))
            stats = recompute(params, stats)
    return {"params": params, "batch_stats": stats}


def _rows(
    ctx: Context, networks_: dict, mask, level: int, step: int, program, arm: str, particles: int = 1
) -> list[dict]:
    """Test (and train) loss and accuracy rows of stacked networks (``R`` or ``R * n`` particles)."""
    program = ctx.program(program)
    data, config = ctx.setup.data, ctx.config
    splits = {"test": (data.test_images, data.test_labels)}
    if config.eval_train:
        splits["train"] = (data.train_images, data.train_labels)
    density = mask_lib.replicate_density(mask, config.replicates * particles)
    epoch = round(step / ctx.setup.steps_per_epoch, 4)
    rows = []
    for split, (images, labels) in splits.items():
        loss, accuracy = program.evaluate(networks_["params"], networks_["batch_stats"], images, labels)
        for metric, values in (("loss", loss), ("accuracy", accuracy)):
            for i, value in enumerate(np.asarray(values)):
                r, p = copies_lib.coordinates(config.replicates, particles)[i]
                coordinates = {"replicate": r} if particles == 1 else {"replicate": r, "particle": p}
                rows.append(
                    {
                        "arm": arm,
                        "level": level,
                        **coordinates,
                        "density": float(density[i]),
                        "step": step,
                        "epoch": epoch,
                        "split": split,
                        "metric": metric,
                        "value": float(value),
                    }
                )
    return rows
