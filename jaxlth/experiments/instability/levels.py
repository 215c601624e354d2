"""Successive IMP levels (Paul et al. 2023): the path between the trained networks of levels
``L`` and ``L + 1`` of a lottery run, and whether level ``L + 1`` is matching (test error within
``matching_epsilon`` of the dense network's; default one standard deviation over replicates)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxlth.analysis import connectivity
from jaxlth.experiments.instability.arms import BETWEEN_LEVELS
from jaxlth.experiments.lottery.arms import IMP
from jaxlth.pruning import masks as mask_lib


def run(scaffold) -> None:
    ctx, source = scaffold.ctx, scaffold.source
    levels = source.levels()
    marker = scaffold.marker(f"{BETWEEN_LEVELS}/measured_{len(levels)}")
    if ctx.done(marker) or len(levels) < 2:
        return
    measured = []
    for level in levels[:-1]:
        if level + 1 not in levels:
            continue
        a = jax.tree.map(jnp.asarray, source.network(level))
        b = jax.tree.map(jnp.asarray, source.network(level + 1))
        density = np.asarray(mask_lib.density(jax.tree.map(jnp.asarray, source.mask(level + 1)), replicate_axis=True))
        scaffold.record_paths(BETWEEN_LEVELS, level + 1, density, "", [({"pair": f"{level}-{level + 1}"}, a, b)])
        measured.append(level + 1)
    record_matching(scaffold, measured)
    ctx.mark_done(marker, {"arm": BETWEEN_LEVELS})


def record_matching(scaffold, levels: list[int]) -> None:
    """Rows ``metric=matching`` (1/0) per level and replicate, from the source's final test errors."""
    table = scaffold.source.table
    final = table[(table.arm == IMP) & (table.split == "test") & (table.metric == "accuracy")]
    final = final.loc[final.groupby(["level", "replicate"]).step.idxmax()]
    error = {(int(r.level), int(r.replicate)): 1.0 - float(r.value) for r in final.itertuples()}
    dense = [v for (lvl, _), v in error.items() if lvl == 0]
    labels = {"arm": BETWEEN_LEVELS, "metric": "matching"}
    rows = []
    for level in levels:
        for r in range(scaffold.config.replicates):
            err = error.get((level, r))
            if err is None:
                continue
            matching = connectivity.is_matching(err, dense, float(scaffold.ins.matching_epsilon))
            rows.append(
                dict(
                    labels,
                    level=level,
                    replicate=r,
                    step=scaffold.total_steps,
                    split="test",
                    value=float(matching),
                    pair=f"{level - 1}-{level}",
                )
            )
    scaffold.ctx.replace_rows(labels, rows)
