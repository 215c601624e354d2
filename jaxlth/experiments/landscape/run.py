"""``experiment = "landscape"``: the curvature that limits how much one IMP level can prune.

Paul et al. (2023, Sec. 3.3): the flatness of the error landscape at the end of training limits
the fraction of weights one IMP level can prune. For every finished level ``L`` of a lottery run
(``landscape.source_workdir``) and every replicate (and prune fraction, when the source sweeps
them), at the level's trained network ``w`` on mask ``m``:

* the top-``k`` Hessian eigenvalues (Lanczos) and the trace (Hutchinson) of the training loss on a
  fixed, seeded subset of ``landscape.examples`` training examples, restricted to the subspace the
  mask keeps (``M H M``, ``landscape.subspace = "mask"``) or not;
* for each ``p`` in ``landscape.projection_fractions``: the projection ``m' * w`` onto the mask that
  prunes a further fraction ``p`` of ``m``'s weights by magnitude, loss and error along the segment
  ``w -> m' * w`` (``landscape.alphas`` points, on the subset and the test set), and the Taylor
  prediction ``g.delta + 1/2 delta' H delta`` of the loss change next to the measured one.

Everything of one level (all networks, all fractions) is one compiled, vmapped call; a level's rows
are written once, with a marker, so a rerun skips measured levels and a killed run resumes at the
first unmeasured one. Rows: ``experiment=landscape, arm=imp``; ``split=train`` (the subset) or
``test``; ``rank`` for eigenvalues, ``projection`` and ``alpha`` for paths. When the source sweeps
prune fractions, its per-level matching is copied (``metric=matching``) for the figure of the
largest prune fraction against curvature.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxlth import rng
from jaxlth.analysis import barriers
from jaxlth.analysis import projections as measures
from jaxlth.experiments.context import Context
from jaxlth.experiments.landscape import diagonal
from jaxlth.experiments.landscape.streams import DIAGONAL, LEVEL, SUBSET
from jaxlth.experiments.lottery.arms import IMP
from jaxlth.experiments.lottery.source import lottery_source
from jaxlth.experiments.lottery.sweep_figures import prune_sweep_table
from jaxlth.layout import level_name
from jaxlth.pruning import masks as mask_lib
from jaxlth.training import copies as copies_lib


@functools.partial(jax.jit, static_argnames=("program", "settings"))
def _measure_level(program, settings, networks, masks, keys, fractions, alphas, subset, eval_sets):
    one = functools.partial(measures.measure, program, settings)
    return jax.vmap(one, in_axes=(0, 0, 0, None, None, None, None))(
        networks, masks, keys, fractions, alphas, subset, eval_sets
    )


def run(ctx: Context) -> None:
    config, ls, setup = ctx.config, ctx.config.landscape, ctx.setup
    source = lottery_source(ls.source_workdir, config, "landscape.source_workdir", sweep=True)
    settings = measures.Settings(
        top_k=int(ls.top_k),
        iterations=int(ls.lanczos_iterations),
        probes=int(ls.trace_probes),
        bn_mode=ls.bn_mode,
        chunk=int(ls.chunk),
        subspace=ls.subspace,
        scope=source.config["lottery"]["scope"],
    )
    replicates, count = config.replicates, max(1, len(source.fractions))
    coordinates = [
        {"replicate": r, "prune_fraction": source.fractions[f]} for r, f in copies_lib.coordinates(replicates, count)
    ]
    data = setup.data
    n = min(int(ls.examples), data.train_images.shape[0])
    take = rng.fixed_order(SUBSET, data.train_images.shape[0])[:n]
    subset = (data.train_images[take], data.train_labels[take])
    eval_sets = {"train": subset, "test": (data.test_images, data.test_labels)}
    fractions = jnp.asarray([float(p) for p in ls.projection_fractions], jnp.float32)
    alphas = jnp.asarray(barriers.alpha_grid(int(ls.alphas)), jnp.float32)
    levels = list(ls.levels) or source.levels()
    print(
        f"landscape of {len(levels)} level(s) of {ls.source_workdir}: top-{ls.top_k} eigenvalues "
        f"({ls.lanczos_iterations} Lanczos steps), trace ({ls.trace_probes} probes) of "
        f"{'M H M' if ls.subspace == 'mask' else 'H'} on {n} training examples (BatchNorm {ls.bn_mode}); "
        f"{len(fractions)} projections x {len(alphas)} points"
        + (f"; diagonal of H ({ls.diagonal_probes} probes)" if int(ls.diagonal_probes) > 0 else ""),
        flush=True,
    )
    for level in levels:
        marker = f"landscape/{level_name(level)}/measured"
        if ctx.done(marker):
            continue
        networks = jax.tree.map(jnp.asarray, source.network(level))
        masks = jax.tree.map(jnp.asarray, source.mask(level))
        keys = rng.replicate_keys(config.seed, replicates, LEVEL.at(level))
        keys = copies_lib.repeat(keys, count) if count > 1 else keys
        out = jax.tree.map(
            np.asarray,
            _measure_level(setup.program, settings, networks, masks, keys, fractions, alphas, subset, eval_sets),
        )
        density = mask_lib.replicate_density(masks, replicates * count)
        rows = _rows(level, coordinates, density, setup.total_steps, np.asarray(fractions), np.asarray(alphas), out)
        ctx.replace_rows({"level": level}, rows, matching=lambda row: row.get("metric") not in diagonal.METRICS)
        ctx.mark_done(marker)
        print(f"level {level}: lambda_max {', '.join(f'{v:.4g}' for v in out['eigenvalues'][:, 0])}", flush=True)
    if int(ls.diagonal_probes) > 0:
        for level in levels:
            _measure_diagonal(ctx, source, settings, level, coordinates, subset)
    if count > 1:
        _record_matching(ctx, source, float(ls.matching_epsilon))


def _measure_diagonal(ctx: Context, source, settings, level: int, coordinates: list[dict], subset) -> None:
    """The Hessian's diagonal at ``level``'s trained networks: its artifact, then its rows (:mod:`.diagonal`)."""
    config, probes = ctx.config, int(ctx.config.landscape.diagonal_probes)
    name = diagonal.artifact_name(level_name(level), probes)
    if ctx.done(f"{name}_measured"):
        return
    networks = jax.tree.map(jnp.asarray, source.network(level))
    masks = jax.tree.map(jnp.asarray, source.mask(level))
    count = max(1, len(source.fractions))
    keys = rng.replicate_keys(config.seed, config.replicates, DIAGONAL.at(level))
    keys = copies_lib.repeat(keys, count) if count > 1 else keys
    args = (settings.bn_mode, settings.chunk, settings.subspace, probes, networks, masks, keys, subset)
    measured = jax.tree.map(np.asarray, ctx.cached(name, lambda: diagonal.estimate(ctx.setup.program, *args)))
    density = mask_lib.replicate_density(masks, len(coordinates))
    step = ctx.setup.total_steps
    bases = [dict(arm=IMP, level=level, density=float(density[i]), step=step, **c) for i, c in enumerate(coordinates)]
    one = jax.tree.map(lambda x: x[0], networks["params"])
    rows = diagonal.rows(bases, measured, diagonal.layer_slices(one))
    ctx.replace_rows({"level": level}, rows, matching=lambda row: row.get("metric") in diagonal.METRICS)
    ctx.mark_done(f"{name}_measured", {"level": level, "metric": "diagonal_count"})  # written last
    overall = [r["value"] for r in rows if r["metric"] == "diagonal_negative" and r["layer"] == diagonal.OVERALL]
    print(f"level {level}: diagonal of H negative on {', '.join(f'{100 * v:.3g}%' for v in overall)}", flush=True)


def _rows(level, coordinates, density, step, fractions, alphas, out) -> list[dict]:
    """The rows of one level's measurements (one block per stacked network)."""
    rows = []
    for i, found in enumerate(coordinates):
        base = dict(arm=IMP, level=level, density=float(density[i]), step=step, **found)
        train = dict(base, split="train")
        for k, (value, residual) in enumerate(zip(out["eigenvalues"][i], out["residuals"][i])):
            rows.append(dict(train, metric="eigenvalue", rank=k + 1, value=float(value)))
            rows.append(dict(train, metric="eigen_residual", rank=k + 1, value=float(residual)))
        for metric, key in (
            ("trace", "trace"),
            ("trace_stderr", "trace_stderr"),
            ("subspace_dim", "dim"),
            ("weight_norm", "weight_norm"),
        ):
            rows.append(dict(train, metric=metric, value=float(out[key][i])))
        for g, p in enumerate(fractions):
            at = dict(train, projection=round(float(p), 6))
            for metric in ("first_order", "second_order", "loss_change", "distance"):
                rows.append(dict(at, metric=metric, value=float(out[metric][i, g])))
            for split in ("train", "test"):
                for a, alpha in enumerate(alphas):
                    for metric in ("loss", "error"):
                        rows.append(
                            dict(
                                base,
                                split=split,
                                projection=round(float(p), 6),
                                alpha=round(float(alpha), 6),
                                metric=metric,
                                value=float(out[f"{split}_{metric}"][i, g, a]),
                            )
                        )
    return rows


def _record_matching(ctx: Context, source, epsilon: float) -> None:
    """The sweep source's matching per (prune fraction, level), for the curvature-vs-fraction figure."""
    table = prune_sweep_table(source.table, epsilon=epsilon)
    labels = {"arm": IMP, "metric": "matching"}
    rows = [
        dict(
            labels,
            level=int(r.level),
            prune_fraction=float(r.prune_fraction),
            density=float(r.density),
            split="test",
            value=float(r.matching),
        )
        for r in table.itertuples()
    ]
    ctx.replace_rows(labels, rows)
