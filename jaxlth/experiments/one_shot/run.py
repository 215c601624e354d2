"""``experiment = "one_shot"``: one-shot magnitude pruning, the baseline IMP is compared against.

Frankle & Carbin (2019, Fig. 4 and Sec. 2: "one-shot" pruning) and Renda et al. (2020) compare
iterative pruning with pruning the trained dense network once, straight to the target density,
then retraining from the same rewind point. With rewind step ``k`` and ``T`` training steps::

    dense:     train k -> T from the rewind network on the dense mask        (arm "dense", level 0)
    density d: mask_d = keep the largest-|w| fraction d of the trained dense network's prunable
               weights (``one_shot.scope``: global, layerwise or ERK ranking)
               weight_rewind: rewind params on mask_d; lr_rewind: dense final params on mask_d,
               schedule replayed from k; finetune: dense final params, T - k steps at the final lr
    all densities x replicates train k -> T together, in one vmapped program  (arm "one_shot")

Density ``d_i`` (``one_shot.densities[i]``) is level ``i + 1`` of arm ``one_shot``: the results API
(``run.mask(level, arm="one_shot")``, ``run.params(...)``) and the figures work as for a lottery
run; rows also carry ``target_density``. Removed per mask: ``ceil((1 - d) * N)`` of the ``N``
prunable weights (OpenLTH's rounding), so the density reached is ``floor(d * N) / N``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlth.errors import UserError
from jaxlth.experiments import networks
from jaxlth.experiments.context import Context, network_of
from jaxlth.experiments.networks import ArmLevel
from jaxlth.experiments.one_shot.arms import DENSE, ONE_SHOT
from jaxlth.layout import level_name
from jaxlth.pruning import imp
from jaxlth.training import copies as copies_lib
from jaxlth.training.state import TrainState


def run(ctx: Context) -> None:
    one, setup = ctx.config.one_shot, ctx.setup
    densities = [float(d) for d in one.densities]
    k, total = ctx.steps(one.rewind, "one_shot.rewind"), setup.total_steps
    if not 0 <= k < total:
        raise UserError(
            f"one_shot.rewind ({one.rewind} = {k} steps) must come before the end of training "
            f"({ctx.config.train.steps} = {total} steps)"
        )
    print(
        f"one-shot {one.scope} magnitude pruning to densities {', '.join(f'{d:g}' for d in densities)}; "
        f"{one.retrain} to step {k}",
        flush=True,
    )

    rewind = networks.rewind_network(ctx, k)
    dense_mask = ctx.cached(
        f"{DENSE}/{level_name(0)}/mask",
        lambda: setup.dense_mask(networks.init_network(ctx)["params"]),
        rows=networks.mask_rows(ctx, DENSE, 0, k),
    )
    dense = networks.trained(ctx, ArmLevel(DENSE, 0, dense_mask, rewind, k, total), "dense")
    pruned = []  # every density's masks, computed in one call the first time one is missing

    def mask_at(i: int):
        if not pruned:
            pruned.append(imp.prune_to_densities(dense["params"], dense_mask, jnp.asarray(densities), one.scope))
        return jax.tree.map(lambda m: m[i], pruned[0])

    masks = [
        ctx.cached(
            f"{ONE_SHOT}/{level_name(i + 1)}/mask",
            lambda i=i: mask_at(i),
            rows=networks.mask_rows(ctx, ONE_SHOT, i + 1, k, target_density=d),
        )
        for i, d in enumerate(densities)
    ]
    _retrain(ctx, densities, masks, rewind if one.retrain == "weight_rewind" else dense, k, total)


def _retrain(ctx: Context, densities: list[float], masks: list, start: dict, k: int, total: int) -> None:
    """Trains every (replicate, density) together; saves each density's networks as its level."""
    names = [f"{ONE_SHOT}/{level_name(i + 1)}" for i in range(len(densities))]
    if all(ctx.exists(f"{name}/final") for name in names) and not ctx.rows_lost(ONE_SHOT):
        return
    setup, count = ctx.setup, len(densities)
    program = setup.program
    if ctx.config.one_shot.retrain == "finetune":
        final_lr = float(program.schedule(jnp.int32(total - 1)))
        program = setup.with_train(schedule="constant", lr=final_lr, warmup="0it").program
    mask = copies_lib.stack(masks)  # (R * D, ...): density d of replicate r at r * D + d

    def initial_state() -> TrainState:
        params = imp.on_mask(copies_lib.repeat(start["params"], count), mask)
        batch_stats = copies_lib.repeat(start["batch_stats"], count)
        return TrainState(
            params, batch_stats, program.fresh_opt_state(params), copies_lib.repeat(setup.data_keys(), count)
        )  # each density sees the dense run's data order

    coordinates = [
        {"replicate": r, "level": d + 1, "target_density": densities[d]}
        for r, d in copies_lib.coordinates(ctx.config.replicates, count)
    ]
    state = ctx.train(
        ONE_SHOT,
        ctx.segment(k, total, f"{count} densities"),
        mask,
        initial_state,
        {"arm": ONE_SHOT},
        coordinates=coordinates,
        program=program,
    )
    for d, network in enumerate(copies_lib.split(network_of(state), count)):
        ctx.save(f"{names[d]}/final", network)
