"""The ``landscape`` config block: its fields with their defaults and their checks (the source run's
config and masks, no data)."""

from __future__ import annotations

import jax
import ml_collections
import numpy as np

from jaxlth.errors import UserError
from jaxlth.experiments.lottery.source import lottery_source


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
    c.diagonal_probes = 0  # Hutchinson probes for the Hessian's diagonal and its distribution; 0 = not measured
    c.projection_fractions = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # further fractions pruned
    c.alphas = 11  # points on each segment from the trained network to its projection
    c.matching_epsilon = -1.0  # matching (copied from a sweep source): within eps of dense; < 0: 1 std
    return c


def validate(config) -> None:
    """The settings, and the source run (from its config and masks: no data is loaded)."""
    from jaxlth.analysis import curvature  # the analyses load when this experiment is chosen
    from jaxlth.analysis import projections as measures

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
    probes = ls.get("diagonal_probes", 0)
    if isinstance(probes, bool) or not isinstance(probes, int) or probes < 0 or probes == 1:
        raise UserError(
            f"landscape.diagonal_probes must be 0 (off) or an integer of at least 2 (a standard error), got {probes!r}"
        )
    if ls.top_k > ls.lanczos_iterations:
        raise UserError(
            f"landscape.top_k ({ls.top_k}) cannot exceed landscape.lanczos_iterations ({ls.lanczos_iterations})"
        )
    if ls.examples > ls.chunk and ls.examples % ls.chunk:
        raise UserError(f"landscape.examples ({ls.examples}) must be a multiple of landscape.chunk ({ls.chunk})")
    if int(ls.alphas) < 2:
        raise UserError(f"landscape.alphas must be at least 2 (both ends of the segment), got {ls.alphas}")
    finished = source.levels()
    missing = [level for level in ls.levels if level not in finished]
    if missing:
        raise UserError(
            f"landscape.levels {tuple(missing)} are not finished in {ls.source_workdir} (finished: {finished})"
        )
    smallest = _smallest_subspace(source, list(ls.levels) or finished, ls.subspace)
    if smallest is not None and ls.lanczos_iterations > smallest:
        raise UserError(
            f"landscape.lanczos_iterations ({ls.lanczos_iterations}) exceeds the dimension of the "
            f"smallest subspace measured ({smallest} weights)"
        )


def _smallest_subspace(source, levels: list[int], subspace: str) -> int | None:
    """The fewest coordinates any measured network's Hessian acts on (``None``: nothing finished)."""
    if not levels:
        return None
    params = source.params(levels[0])
    total = sum(np.asarray(x)[0].size for x in jax.tree.leaves(params))
    if subspace == "full":
        return total
    mask = source.mask(max(levels))
    pruned = min(
        int(np.sum([np.asarray(m)[i].size - np.asarray(m)[i].sum() for m in jax.tree.leaves(mask)]))
        for i in range(np.asarray(jax.tree.leaves(mask)[0]).shape[0])
    )
    return total - pruned


def widths(config) -> tuple[int, int]:
    """The source's prune fractions are measured at once (no training; Lanczos keeps its basis)."""
    source = config.landscape.source_workdir
    count = len(lottery_source(source, config, "landscape.source_workdir", sweep=True).fractions) if source else 1
    return count, count
