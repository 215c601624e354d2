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
import ml_collections
import numpy as np

from jaxlth import arms, rng
from jaxlth.analysis import barriers, curvature
from jaxlth.analysis import landscape as measures
from jaxlth.errors import UserError
from jaxlth.experiments.context import Context
from jaxlth.experiments.protocol import Experiment
from jaxlth.experiments.source import lottery_source
from jaxlth.layout import level_name
from jaxlth.pruning import masks as mask_lib
from jaxlth.training import copies as copies_lib


def defaults() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.source_workdir = ""  # a finished lottery workdir (a prune-fraction sweep too)
    c.levels = ()  # the levels to measure; () = every finished level of the source
    c.examples = 4096  # training examples the Hessian is taken on (fixed, seeded subset)
    c.chunk = 1024  # examples per Hessian-vector-product chunk (memory; bn_mode "batch": the BN batch)
    c.bn_mode = "eval"  # eval: BatchNorm with running statistics | batch: each chunk's own statistics
    c.subspace = "mask"  # mask: M H M on the level's kept weights (and unpruned leaves) | full: H
    c.top_k = 5  # largest eigenvalues reported
    c.lanczos_iterations = 40  # Lanczos steps (Hessian-vector products) for them
    c.trace_probes = 50  # Hutchinson probes (Rademacher) for the trace
    c.projection_fractions = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # further fractions pruned
    c.alphas = 11  # points on each segment from the trained network to its projection
    c.matching_epsilon = -1.0  # matching (copied from a sweep source): within eps of dense; < 0: 1 std
    return c


def validate(config) -> None:
    """The settings, and the source run (from its config and masks: no data is loaded)."""
    ls = config.landscape
    if not ls.source_workdir:
        raise UserError("landscape.source_workdir is required: the finished lottery run to measure")
    source = lottery_source(ls.source_workdir, config, "landscape.source_workdir", sweep=True)
    if ls.bn_mode not in curvature.BN_MODES:
        raise UserError(f"unknown landscape.bn_mode {ls.bn_mode!r}; choose eval or batch")
    if ls.subspace not in measures.SUBSPACES:
        raise UserError(f"unknown landscape.subspace {ls.subspace!r}; choose mask or full")
    fractions = [float(p) for p in ls.projection_fractions]
    if not fractions or any(not 0.0 < p < 1.0 for p in fractions):
        raise UserError(f"landscape.projection_fractions must be fractions in (0, 1), got {tuple(fractions)}")
    for field in ("top_k", "lanczos_iterations", "trace_probes", "examples", "chunk"):
        if int(ls[field]) < 1:
            raise UserError(f"landscape.{field} must be at least 1, got {ls[field]}")
    if ls.top_k > ls.lanczos_iterations:
        raise UserError(f"landscape.top_k ({ls.top_k}) cannot exceed landscape.lanczos_iterations "
                        f"({ls.lanczos_iterations})")
    if ls.examples > ls.chunk and ls.examples % ls.chunk:
        raise UserError(f"landscape.examples ({ls.examples}) must be a multiple of landscape.chunk ({ls.chunk})")
    if int(ls.alphas) < 2:
        raise UserError(f"landscape.alphas must be at least 2 (both ends of the segment), got {ls.alphas}")
    finished = source.levels()
    missing = [level for level in ls.levels if level not in finished]
    if missing:
        raise UserError(f"landscape.levels {tuple(missing)} are not finished in {ls.source_workdir} "
                        f"(finished: {finished})")
    smallest = _smallest_subspace(source, list(ls.levels) or finished, ls.subspace)
    if smallest is not None and ls.lanczos_iterations > smallest:
        raise UserError(f"landscape.lanczos_iterations ({ls.lanczos_iterations}) exceeds the dimension of the "
                        f"smallest subspace measured ({smallest} weights)")


def _smallest_subspace(source, levels: list[int], subspace: str) -> int | None:
    """The fewest coordinates any measured network's Hessian acts on (``None``: nothing finished)."""
    if not levels:
        return None
    params = source.params(levels[0])
    total = sum(np.asarray(x)[0].size for x in jax.tree.leaves(params))
    if subspace == "full":
        return total
    mask = source.mask(max(levels))
    pruned = min(int(np.sum([np.asarray(m)[i].size - np.asarray(m)[i].sum() for m in jax.tree.leaves(mask)]))
                 for i in range(np.asarray(jax.tree.leaves(mask)[0]).shape[0]))
    return total - pruned


@functools.partial(jax.jit, static_argnames=("program", "settings"))
def _measure_level(program, settings, networks, masks, keys, fractions, alphas, subset, eval_sets):
    one = functools.partial(measures.measure, program, settings)
    return jax.vmap(one, in_axes=(0, 0, 0, None, None, None, None))(networks, masks, keys, fractions, alphas,
                                                                    subset, eval_sets)


def run(ctx: Context) -> None:
    config, ls, setup = ctx.config, ctx.config.landscape, ctx.setup
    source = lottery_source(ls.source_workdir, config, "landscape.source_workdir", sweep=True)
    settings = measures.Settings(top_k=int(ls.top_k), iterations=int(ls.lanczos_iterations),
                                 probes=int(ls.trace_probes), bn_mode=ls.bn_mode, chunk=int(ls.chunk),
                                 subspace=ls.subspace, scope=source.config["lottery"]["scope"])
    replicates, count = config.replicates, max(1, len(source.fractions))
    places = [{"replicate": r, "prune_fraction": source.fractions[f]}
              for r, f in copies_lib.coordinates(replicates, count)]
    data = setup.data
    n = min(int(ls.examples), data.train_images.shape[0])
    take = jax.random.permutation(jax.random.PRNGKey(rng.LANDSCAPE_SUBSET_SEED), data.train_images.shape[0])[:n]
    subset = (data.train_images[take], data.train_labels[take])
    eval_sets = {"train": subset, "test": (data.test_images, data.test_labels)}
    fractions = jnp.asarray([float(p) for p in ls.projection_fractions], jnp.float32)
    alphas = jnp.asarray(barriers.alpha_grid(int(ls.alphas)), jnp.float32)
    levels = list(ls.levels) or source.levels()
    print(f"landscape of {len(levels)} level(s) of {ls.source_workdir}: top-{ls.top_k} eigenvalues "
          f"({ls.lanczos_iterations} Lanczos steps), trace ({ls.trace_probes} probes) of "
          f"{'M H M' if ls.subspace == 'mask' else 'H'} on {n} training examples (BatchNorm {ls.bn_mode}); "
          f"{len(fractions)} projections x {len(alphas)} points", flush=True)
    for level in levels:
        marker = f"landscape/{level_name(level)}/measured"
        if ctx.done(marker):
            continue
        networks = jax.tree.map(jnp.asarray, source.network(level))
        masks = jax.tree.map(jnp.asarray, source.mask(level))
        keys = rng.replicate_keys(config.seed, replicates, rng.LANDSCAPE + level)
        keys = copies_lib.repeat(keys, count) if count > 1 else keys
        out = jax.tree.map(np.asarray, _measure_level(setup.program, settings, networks, masks, keys, fractions,
                                                      alphas, subset, eval_sets))
        density = mask_lib.replicate_density(masks, replicates * count)
        rows = _rows(level, places, density, setup.total_steps, np.asarray(fractions), np.asarray(alphas), out)
        ctx.replace_rows({"experiment": "landscape", "level": level}, rows)
        ctx.mark_done(marker)
        print(f"level {level}: lambda_max {', '.join(f'{v:.4g}' for v in out['eigenvalues'][:, 0])}", flush=True)
    if count > 1:
        _record_matching(ctx, source, float(ls.matching_epsilon))


def _rows(level, places, density, step, fractions, alphas, out) -> list[dict]:
    """The rows of one level's measurements (one block per stacked network)."""
    rows = []
    for i, where in enumerate(places):
        base = dict(experiment="landscape", arm=arms.IMP, level=level, density=float(density[i]), step=step, **where)
        train = dict(base, split="train")
        for k, (value, residual) in enumerate(zip(out["eigenvalues"][i], out["residuals"][i])):
            rows.append(dict(train, metric="eigenvalue", rank=k + 1, value=float(value)))
            rows.append(dict(train, metric="eigen_residual", rank=k + 1, value=float(residual)))
        for metric, key in (("trace", "trace"), ("trace_stderr", "trace_stderr"), ("subspace_dim", "dim"),
                            ("weight_norm", "weight_norm")):
            rows.append(dict(train, metric=metric, value=float(out[key][i])))
        for g, p in enumerate(fractions):
            at = dict(train, projection=round(float(p), 6))
            for metric in ("first_order", "second_order", "loss_change", "distance"):
                rows.append(dict(at, metric=metric, value=float(out[metric][i, g])))
            for split in ("train", "test"):
                for a, alpha in enumerate(alphas):
                    for metric in ("loss", "error"):
                        rows.append(dict(base, split=split, projection=round(float(p), 6),
                                         alpha=round(float(alpha), 6), metric=metric,
                                         value=float(out[f"{split}_{metric}"][i, g, a])))
    return rows


def _record_matching(ctx: Context, source, epsilon: float) -> None:
    """The sweep source's matching per (prune fraction, level), for the curvature-vs-fraction figure."""
    from jaxlth.plots.prune_sweep import prune_sweep_table  # noqa: PLC0415 (pandas-only, no figures)

    table = prune_sweep_table(source.table, epsilon=epsilon)
    labels = {"experiment": "landscape", "arm": arms.IMP, "metric": "matching"}
    rows = [dict(labels, level=int(r.level), prune_fraction=float(r.prune_fraction), density=float(r.density),
                 split="test", value=float(r.matching)) for r in table.itertuples()]
    ctx.replace_rows(labels, rows)


def report(table, directory: str) -> tuple[str, list[str]]:
    from jaxlth import plots  # noqa: PLC0415 (matplotlib is slow to import)

    return plots.format_landscape(table), plots.save_landscape_figures(table, directory)


def widths(config) -> tuple[int, int]:
    """The source's prune fractions are measured at once (no training; Lanczos keeps its basis)."""
    source = config.landscape.source_workdir
    count = len(lottery_source(source, config, "landscape.source_workdir", sweep=True).fractions) if source else 1
    return count, count


EXPERIMENT = Experiment(
    name="landscape",
    summary="Hessian spectra of IMP's trained networks, and how far each level's projection can prune",
    run=run,
    defaults=defaults,
    validate=validate,
    columns=("prune_fraction", "projection", "alpha", "rank"),
    report=report,
    order=4,
    widths=widths,
)
