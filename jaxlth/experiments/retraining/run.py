"""``experiment = "retraining"``: what retraining is for in IMP (Paul et al. 2023: it finds new small weights).

Of a finished lottery run (``retraining.source_workdir``; level ``L`` has mask ``m_L`` and trained
network ``w_L``, and ``m_{L+1}`` removes the smallest ``|w_L|`` of ``m_L``), per level ``L >= 1``
and replicate:

* ``pruned_were_smallest_trained``: of the weights ``P = m_L \\ m_{L+1}`` that level ``L + 1``
  prunes (chosen by ``|w_L|``, after retraining), the fraction that were already among the ``|P|``
  smallest ``|w_{L-1}|`` in ``m_L`` (the next ones IMP would prune without retraining);
  ``pruned_were_smallest_rewind``: the same against the level's starting weights (rewind point on
  ``m_L``); ``chance``: ``|P| / |m_L|``, what a random choice gives;
* ``rank_correlation``: Spearman correlation of ``|w_{L-1}|`` and ``|w_L|`` over the weights of ``m_L``;
* the control "pruning without retraining" (arm ``no_retrain``): ``c_0`` dense, ``c_L`` = ``c_{L-1}``
  minus the source's prune fraction of its smallest ``|w_0|`` (the trained dense network, pruned
  again and again, never retrained; with global scope the same as one-shot pruning of ``w_0`` to
  each density), its Jaccard ``overlap_with_imp`` with ``m_L``, and its accuracy when trained from
  the rewind point like an IMP level (all levels x replicates in one vmapped program).

Rows: ``experiment=retraining``; ``arm=imp`` with ``split=mask`` for the IMP measurements;
``arm=no_retrain`` for the control (mask rows, training rows, ``overlap_with_imp``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from jaxlth.experiments import networks
from jaxlth.experiments.context import Context, network_of
from jaxlth.experiments.lottery.arms import IMP
from jaxlth.experiments.lottery.block import rewind_spec
from jaxlth.experiments.lottery.source import lottery_source
from jaxlth.experiments.retraining.arms import NO_RETRAIN
from jaxlth.layout import level_name
from jaxlth.pruning import imp, magnitude
from jaxlth.pruning import masks as mask_lib
from jaxlth.training import copies as copies_lib


def _at_mask(tree: dict, mask: dict) -> list[np.ndarray]:
    """The leaves of ``tree`` at the mask's paths, in the mask's leaf order (numpy)."""
    if isinstance(mask, dict):
        return [x for key in mask for x in _at_mask(tree[key], mask[key])]
    return [np.asarray(tree)]


def level_measures(
    mask: dict, next_mask: dict, previous_final: dict, final: dict, start: dict, scope: str = "global"
) -> dict:
    """One replicate's measures at level ``L`` (numpy trees of ``m_L``, ``m_{L+1}``, ``w_{L-1}``, ``w_L``,
    and the starting weights of level ``L``): the fractions of ``m_L \\ m_{L+1}`` that were smallest.

    "The smallest" are what IMP itself would remove from ``m_L`` by the same count (its own
    pruning function, with the fraction ``|P| / |m_L|``, so ties and layerwise counts match).
    """
    keep = [np.asarray(m, bool) for m in _at_mask(mask, mask)]
    pruned = np.concatenate([(k & ~np.asarray(n, bool)).ravel() for k, n in zip(keep, _at_mask(next_mask, mask))])
    fraction = pruned.sum() / max(1, sum(int(k.sum()) for k in keep))
    prune = magnitude.prune_global if scope == "global" else magnitude.prune_layerwise
    out = {"chance": float(fraction)}
    for name, tree in (("trained", previous_final), ("rewind", start)):
        kept_after = prune(jax.tree.map(jnp.asarray, tree), jax.tree.map(jnp.asarray, mask), jnp.float32(fraction))
        smallest = np.concatenate([(k & ~np.asarray(n)).ravel() for k, n in zip(keep, _at_mask(kept_after, mask))])
        out[f"pruned_were_smallest_{name}"] = float((pruned & smallest).sum() / max(1, pruned.sum()))
    kept = np.concatenate([k.ravel() for k in keep])
    before = np.abs(np.concatenate([x.ravel() for x in _at_mask(previous_final, mask)]))[kept]
    after = np.abs(np.concatenate([x.ravel() for x in _at_mask(final, mask)]))[kept]
    out["rank_correlation"] = float(stats.spearmanr(before, after)[0])
    return out


def run(ctx: Context) -> None:
    config, re = ctx.config, ctx.config.retraining
    source = lottery_source(re.source_workdir, config, "retraining.source_workdir")
    lot = source.config["lottery"]
    levels = source.levels()
    replicates = config.replicates
    print(f"retraining analysis of {len(levels)} levels of {re.source_workdir}", flush=True)
    rows = []
    for level in levels[1:-1]:
        for r in range(replicates):
            measured = level_measures(
                source.mask(level, r),
                source.mask(level + 1, r),
                source.params(level - 1, r),
                source.params(level, r),
                source.params(level, r, which="rewind"),
                lot.get("scope", "global"),
            )
            density = float(mask_lib.density(jax.tree.map(jnp.asarray, source.mask(level, r))))
            for metric, value in measured.items():
                rows.append(
                    dict(arm=IMP, level=level, replicate=r, density=density, split="mask", metric=metric, value=value)
                )
    rows += _imp_accuracy(source)
    ctx.replace_rows({"arm": IMP}, rows)
    _control(ctx, source, levels, float(lot["prune_fraction"]), lot.get("scope", "global"))


def _imp_accuracy(source) -> list[dict]:
    """The source's final IMP test accuracies, copied so the control can be compared in one figure."""
    table = source.table
    final = table[(table["arm"] == IMP) & (table["split"] == "test") & (table["metric"] == "accuracy")]
    final = final.loc[final.groupby(["level", "replicate"])["step"].idxmax()]
    return [
        dict(
            arm=IMP,
            level=int(r.level),
            replicate=int(r.replicate),
            density=float(r.density),
            step=int(r.step),
            epoch=float(r.epoch),
            split="test",
            metric="accuracy",
            value=float(r.value),
        )
        for r in final.itertuples()
    ]


def _control(ctx: Context, source, levels: list[int], fraction: float, scope: str) -> None:
    """Masks pruned again and again from the trained dense network, compared with IMP's, and trained."""
    replicates, pruned_levels = ctx.config.replicates, [level for level in levels if level > 0]
    dense = jax.tree.map(jnp.asarray, source.network(0))
    masks, mask = [], jax.tree.map(jnp.asarray, source.mask(0))
    for level in range(1, max(pruned_levels) + 1):
        mask = imp.prune(dense["params"], mask, fraction, scope)
        if level in pruned_levels:
            masks.append(
                ctx.cached(
                    f"{NO_RETRAIN}/{level_name(level)}/mask",
                    lambda m=mask: m,
                    rows=networks.mask_rows(ctx, NO_RETRAIN, level, 0),
                )
            )
    overlap_rows = []
    for level, control in zip(pruned_levels, masks):
        overlap = np.asarray(
            mask_lib.overlap(control, jax.tree.map(jnp.asarray, source.mask(level)), replicate_axis=True)
        )
        density = mask_lib.replicate_density(control, replicates)
        overlap_rows += [
            dict(
                arm=NO_RETRAIN,
                level=level,
                replicate=r,
                density=float(density[r]),
                split="mask",
                metric="overlap_with_imp",
                value=float(overlap[r]),
            )
            for r in range(replicates)
        ]
    ctx.replace_rows({"metric": "overlap_with_imp"}, overlap_rows)
    if ctx.config.retraining.train_control:
        _train_control(ctx, source, pruned_levels, masks)


def _train_control(ctx: Context, source, levels: list[int], masks: list) -> None:
    """Every control mask x replicate trained k -> T from the source's rewind point, in one program."""
    names = [f"{NO_RETRAIN}/{level_name(level)}" for level in levels]
    if all(ctx.exists(f"{name}/final") for name in names) and not ctx.rows_lost(NO_RETRAIN):
        return
    count, setup = len(levels), ctx.setup
    rewind_step = ctx.steps(rewind_spec(source.config["lottery"]["rewind"]), "lottery.rewind of the source")
    rewind = copies_lib.repeat(jax.tree.map(jnp.asarray, source.network(0, which="rewind")), count)
    mask = copies_lib.stack(masks)
    coordinates = [
        {"replicate": r, "level": levels[c]} for r, c in copies_lib.coordinates(ctx.config.replicates, count)
    ]
    state = ctx.train(
        NO_RETRAIN,
        ctx.segment(rewind_step, setup.total_steps, f"{count} no-retraining masks"),
        mask,
        networks.start_state(ctx, rewind, mask, copies=count),
        {"arm": NO_RETRAIN},
        coordinates=coordinates,
    )
    for c, network in enumerate(copies_lib.split(network_of(state), count)):
        ctx.save(f"{names[c]}/final", network)
