"""Instability to SGD noise (Frankle et al. 2020): copies spawned from the trunk at step k.

At every spawn step ``k`` the trunk's exact state (params, batch statistics and the optimizer
state as it was at k) is copied ``copies`` times; the copies differ only in their data key and
train ``k -> T`` together in one vmapped program. Every pair of copies is interpolated. With a
lottery source and ``level >= 0`` the copies train that level's IMP mask; with
``spawn_from="source_rewind"`` they start where the source's levels start (its rewind network,
a fresh optimizer state) at its rewind step, the instability of that rewind point.
"""

from __future__ import annotations

import itertools

import jax

from jaxlth import rng
from jaxlth.experiments.instability.arms import COPIES, spawn_name
from jaxlth.experiments.instability.streams import COPY
from jaxlth.pruning import masks as mask_lib
from jaxlth.training import copies as copies_lib

MEASURED = "measured"


def run(scaffold) -> None:
    ctx, copies, level = scaffold.ctx, int(scaffold.ins.copies), max(scaffold.level, 0)
    density = scaffold.density()
    for k in scaffold.spawn_steps:
        name = spawn_name(k)
        if ctx.done(scaffold.marker(f"{name}/{MEASURED}")):
            continue
        mask = copies_lib.repeat(scaffold.mask, copies)
        trunk = None if ctx.exists(f"{name}/final") else scaffold.spawn_state(k)

        def initial_state(trunk=trunk, mask=mask):
            state = copies_lib.repeat(trunk, copies)
            params = mask_lib.apply(state.params, mask) if jax.tree.leaves(mask) else state.params
            return state.replace(params=params, data_key=rng.copy_keys(trunk.data_key, copies, COPY))

        final = scaffold.trained(
            name,
            {"arm": COPIES, "level": level, "spawn_step": k},
            k,
            mask,
            initial_state,
            f"{copies} copies from step {k}",
        )
        per_copy = copies_lib.split(final, copies)
        pairs = [({"pair": f"{i}-{j}"}, per_copy[i], per_copy[j]) for i, j in itertools.combinations(range(copies), 2)]
        scaffold.record_paths(COPIES, level, density, k, pairs)
        ctx.mark_done(scaffold.marker(f"{name}/{MEASURED}"), {"arm": COPIES, "level": level, "spawn_step": k})
