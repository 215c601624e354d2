"""``experiment = "transfer"``: the masks other runs found, trained on this run's task.

The transfer table of Chen et al. (2020, BERT tickets, Sec. 4 and Table 5) and (2021, pretrained CV
tickets): a mask found by IMP on one task (or objective) is trained on another. With ``A`` arms (one
per source, then the baselines) and ``R`` replicates::

    θ0:        the run's start: the model.pretrained weights (head as model.pretrained_head says),
               else the replicates' random initialisation                        (artifact init)
    source s:  the level of the source's IMP masks nearest transfer.density      (arm = its name, level 1)
    dense:     the all-True mask                                                 (arm dense, level 0)
    magnitude_at_rewind: θ0 pruned once by |w| to transfer.density, global       (level 1)
    random:    a random mask of as many weights, global                          (level 1)
    all R * A networks train 0 -> T from θ0 on their masks in one vmapped program (arm a of replicate
    r at r * A + a), each with its replicate's data order, as a train run's

Rows of a source's arm carry ``source_level`` (the source's level trained) and ``source_density``
(the density its mask keeps); its mask rows add one ``metric=source_replicate`` row per replicate.
Artifacts ``<arm>/level_LL/{mask,final}`` (and ``<source>/level_01/source``: the level chosen), so the
generic reader reads them: ``run.mask(arm=name)``, ``run.params(arm=name)``.
"""

from __future__ import annotations

import numpy as np

from jaxlth import sharding
from jaxlth.experiments import networks
from jaxlth.experiments.context import Context, network_of
from jaxlth.experiments.lottery import transfer as lottery_transfer
from jaxlth.experiments.transfer import block, source_masks
from jaxlth.experiments.transfer.arms import DENSE, MAGNITUDE, level
from jaxlth.layout import level_name
from jaxlth.pruning import masks as mask_lib
from jaxlth.training import copies as copies_lib

TRAINING = "transfer"  # checkpoints/transfer: the one training of every arm


def _source_arm(ctx: Context, name: str, spec: str, dense) -> tuple[dict, dict]:
    """``(masks (R, ...), {"source_level": L})`` of a source's arm; the level chosen is saved with its mask."""
    config, prefix = ctx.config, f"{name}/{level_name(level(name))}"
    src = source_masks.open_source(spec, int(config.replicates))

    def choose() -> dict:
        chosen = source_masks.nearest_level(source_masks.level_densities(src), float(config.transfer.density))
        return {"level": np.full((config.replicates,), chosen, np.int32)}

    source_level = int(np.asarray(sharding.to_host(ctx.cached(f"{prefix}/source", choose)["level"]))[0])
    fixed = {"source_level": source_level}
    labels, density_rows = networks.mask_rows(ctx, name, level(name), 0, **fixed)

    def rows(mask) -> list[dict]:
        found = [dict(row, source_density=row["density"]) for row in density_rows(mask)]
        return lottery_transfer.with_source_rows(src, found)

    mask = ctx.cached(f"{prefix}/mask", lambda: lottery_transfer.masks(src, source_level, dense), rows=(labels, rows))
    return mask, fixed


def arm_masks(ctx: Context, start: dict) -> list[tuple[dict, list[dict]]]:
    """``[(masks (R, ...), coordinates of each replicate)]`` of every arm, in :func:`block.arms` order
    (each saved once, with its density rows)."""
    config, setup = ctx.config, ctx.setup
    dense = setup.dense_mask(start["params"])
    names, specs = block.arm_names(config.transfer), tuple(config.transfer.sources)
    density, made = float(config.transfer.density), {}

    def baseline(arm: str):
        if DENSE not in made:
            made[DENSE] = dense
            made[MAGNITUDE] = source_masks.magnitude_mask(start["params"], dense, density)
        if arm not in made:  # random: as many weights as magnitude pruning keeps
            made[arm] = source_masks.random_mask(config, made[MAGNITUDE])
        return made[arm]

    out = []
    for arm in block.arms(config.transfer):
        if arm in names:
            mask, fixed = _source_arm(ctx, arm, specs[names.index(arm)], dense)
        else:
            rows = networks.mask_rows(ctx, arm, level(arm), 0)
            mask, fixed = ctx.cached(f"{arm}/{level_name(level(arm))}/mask", lambda a=arm: baseline(a), rows=rows), {}
        kept = sharding.to_host(mask_lib.density(mask, replicate_axis=True))
        out.append((mask, [dict(fixed, source_density=float(kept[r])) if fixed else {} for r in range(len(kept))]))
    return out


def run(ctx: Context) -> None:
    """Trains (or resumes) every arm of the context's config in one vmapped program."""
    config, setup = ctx.config, ctx.setup
    arms = block.arms(config.transfer)
    print(
        f"transfer: the masks of {', '.join(block.arm_names(config.transfer))} nearest density "
        f"{config.transfer.density:g}; baselines: {', '.join(config.transfer.baselines) or 'none'}",
        flush=True,
    )
    start = networks.init_network(ctx)
    found = arm_masks(ctx, start)
    names = [f"{arm}/{level_name(level(arm))}" for arm in arms]
    if all(ctx.exists(f"{name}/final") for name in names) and not ctx.rows_lost(TRAINING):
        return
    count = len(arms)
    mask = copies_lib.stack([m for m, _ in found])  # arm a of replicate r at r * A + a
    coordinates = [
        {"replicate": r, "arm": arms[a], "level": level(arms[a]), **found[a][1][r]}
        for r, a in copies_lib.coordinates(config.replicates, count)
    ]
    state = ctx.train(
        TRAINING,
        ctx.segment(0, setup.total_steps, f"{count} masks"),
        mask,
        networks.start_state(ctx, copies_lib.repeat(start, count), mask, copies=count),
        {},
        coordinates=coordinates,
    )
    for name, network in zip(names, copies_lib.split(network_of(state), count)):
        if not ctx.exists(f"{name}/final"):
            ctx.save(f"{name}/final", network)
