"""The mask each arm of a transfer run trains: a source run's level nearest ``transfer.density``, or a baseline's.

A source is a finished lottery run (``DIR[:arm=,replicate=,prune_fraction=]``, read by
:mod:`jaxlth.experiments.lottery.transfer`, which also checks its masks against this run's prunable
layers). Of its finished levels of the chosen arm, the one whose mask density (the fraction of the
prunable weights kept, mean over the source replicates taken) is nearest ``transfer.density`` is
trained; a tie goes to the denser. The baselines prune the run's own start θ0 (the pretrained
weights with ``model.pretrained``): ``magnitude_at_rewind`` keeps its largest ``|w|`` over all
prunable layers, ``random`` a uniformly random set of as many weights (``floor(d · N)`` of ``N``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxlth import rng, storage
from jaxlth.errors import UserError
from jaxlth.experiments.lottery import transfer
from jaxlth.experiments.transfer.streams import RANDOM_MASK
from jaxlth.layout import FINISHED_FILE
from jaxlth.pruning import imp, magnitude

FIELD = "transfer.sources"


def open_source(spec: str, replicates: int) -> transfer.MaskSource:
    """The source ``spec`` for a run of ``replicates`` replicates: a finished lottery run with a
    finished level of the chosen arm (UserError, one sentence, otherwise)."""
    src = transfer.open_source(spec, FIELD, replicates)
    where = f"{FIELD} {src.run.workdir}"
    if not storage.exists(src.run.layout.finished_file):
        raise UserError(f"{where} is not a finished lottery run (it has no {FINISHED_FILE}); let it finish first")
    if not src.run.levels(src.arm):
        raise UserError(f"{where} has no finished level of arm {src.arm!r}")
    return src


def level_densities(src: transfer.MaskSource) -> dict[int, float]:
    """``{level: density}`` of the source's finished levels of its arm: the fraction of the prunable
    weights the level's mask keeps, mean over the source replicates taken (its mask rows, else its mask)."""
    import pandas as pd  # a source's table is read when a transfer run runs, not when its config is checked

    table = src.run.table
    rows = table[(table["arm"] == src.arm) & (table["split"] == "mask") & (table["metric"] == "density")]
    rows = rows[rows["replicate"].isin(src.sources)]
    if "prune_fraction" in src.coordinates and "prune_fraction" in rows:
        wanted = float(src.coordinates["prune_fraction"])
        rows = rows[(pd.to_numeric(rows["prune_fraction"]) - wanted).abs() < 1e-9]
    rows = rows.dropna(subset=["level", "density"])
    found = rows.groupby(rows["level"].astype(int))["density"].mean()
    out = {}
    for level in src.run.levels(src.arm):
        if level in found.index:
            out[level] = float(found[level])
        else:  # no rows: the mask itself
            mask = src.run.mask(level, None, src.arm, **src.coordinates)
            leaves = [np.asarray(leaf)[np.asarray(src.sources)] for leaf in jax.tree.leaves(mask)]
            out[level] = float(sum(leaf.sum() for leaf in leaves) / sum(leaf.size for leaf in leaves))
    return out


def nearest_level(densities: dict[int, float], target: float) -> int:
    """The level whose density is nearest ``target``; of two as near, the denser."""
    return min(densities, key=lambda level: (round(abs(densities[level] - target), 9), -densities[level]))


def check(ctx) -> None:
    """Every source's chosen mask against this run's model (its prunable layers and their shapes:
    :func:`jaxlth.experiments.lottery.transfer.masks`), before the workdir is claimed."""
    setup = ctx.setup
    dense = setup.dense_mask(jax.eval_shape(setup.init_state).params)
    for spec in ctx.config.transfer.sources:
        src = open_source(spec, int(ctx.config.replicates))
        transfer.masks(src, nearest_level(level_densities(src), float(ctx.config.transfer.density)), dense)


def magnitude_mask(params, dense_mask, density: float) -> dict:
    """Each replicate's ``params`` pruned once by ``|w|`` to ``density`` over all prunable layers (``(R, ...)``)."""
    found = imp.prune_to_densities(params, dense_mask, jnp.asarray([density], jnp.float32), "global")
    return jax.tree.map(lambda m: m[0], found)


def random_mask(config, like: dict) -> dict:
    """Each replicate's uniformly random mask keeping as many weights as ``like`` (over all prunable layers)."""
    keys = rng.replicate_keys(config.seed, config.replicates, RANDOM_MASK)
    return jax.jit(jax.vmap(lambda key, mask: magnitude.random_like(key, mask, "global")))(keys, like)
