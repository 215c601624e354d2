"""The Hessian's diagonal at each level's trained network (``landscape.diagonal_probes > 0``).

Hutchinson's estimator of ``diag(H)`` (Bekas et al. 2007; :func:`jaxlth.analysis.curvature.hutchinson_diagonal`)
of the same training-subset loss the eigenvalues and trace are taken of, its probes drawn from
:data:`.streams.DIAGONAL` and restricted like theirs (``landscape.subspace``). Its distribution is
taken over the weights the level's mask keeps (and every leaf the mask does not cover): ``diag(M H M)``
equals ``diag(H)`` there, and a pruned weight's curvature says nothing of the network that trains.

Per stacked network, per layer (a leaf of the parameters, ``layer = "Dense_0/kernel"``) and over all
(``layer = ""``), rows ``split=train``: ``diagonal_quantile`` (``quantile`` in :data:`QUANTILES`),
``diagonal_mean``, ``diagonal_negative`` (the fraction of entries below 0), ``diagonal_negative_2se``
(below minus two standard errors: negative beyond the estimator's noise), ``diagonal_stderr`` (the
mean per-entry standard error) and ``diagonal_count`` (entries). The estimate itself is the artifact
``landscape/level_LL/diagonal_P`` (``P`` probes): ``{"estimate", "stderr"}`` float32 and ``"kept"``
bool, each ``(networks, dim_full)`` in ``ravel_pytree`` order, for the histogram.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from jaxlth.analysis import curvature
from jaxlth.pruning import masks as mask_lib

QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
METRICS = (
    "diagonal_quantile",
    "diagonal_mean",
    "diagonal_negative",
    "diagonal_negative_2se",
    "diagonal_stderr",
    "diagonal_count",
)
OVERALL = ""  # the layer of the rows over every kept entry


def artifact_name(level_dir: str, probes: int) -> str:
    """The artifact of a level's diagonal from ``probes`` probes (another count: measured anew)."""
    return f"landscape/{level_dir}/diagonal_{probes}"


@functools.partial(jax.jit, static_argnames=("program", "bn_mode", "chunk", "subspace", "probes"))
def estimate(program, bn_mode: str, chunk: int, subspace: str, probes: int, networks, masks, keys, subset):
    """``{"estimate", "stderr", "kept"}``, each ``(N, dim_full)``: the diagonal of each stacked network's
    Hessian (``subspace = "mask"``: probes on the kept weights, else on all) and the kept weights."""

    def one(network, mask, key):
        params = network["params"]
        loss = curvature.subset_loss(program, network["batch_stats"], *subset, bn_mode=bn_mode, chunk=chunk)
        matvec, _, _ = curvature.flat_operator(loss, params, mask if subspace == "mask" else None)
        probed = curvature.subspace_vector(params, mask if subspace == "mask" else None)
        diagonal, stderr = curvature.hutchinson_diagonal(matvec, probed.size, key, probes, probed)
        return {"estimate": diagonal, "stderr": stderr, "kept": curvature.subspace_vector(params, mask) > 0}

    return jax.vmap(one)(networks, masks, keys)


def layer_slices(params) -> list[tuple[str, slice]]:
    """``(layer name, slice of the flat vector)`` of every leaf of one network's ``params``, in
    ``ravel_pytree`` order."""
    out, start = [], 0
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        name = mask_lib.layer_name(tuple(getattr(k, "key", getattr(k, "name", k)) for k in path))
        size = int(np.prod(np.shape(leaf)))
        out.append((name, slice(start, start + size)))
        start += size
    return out


def statistics(values: np.ndarray, stderr: np.ndarray) -> dict:
    """The distribution of the kept entries ``values`` (1-D) with their standard errors."""
    values, stderr = np.asarray(values, np.float64), np.asarray(stderr, np.float64)
    out = {f"q{q:g}": float(v) for q, v in zip(QUANTILES, np.quantile(values, QUANTILES))}
    out.update(
        mean=float(values.mean()),
        negative=float(np.mean(values < 0)),
        negative_2se=float(np.mean(values < -2.0 * stderr)) if np.isfinite(stderr).all() else float("nan"),
        stderr=float(stderr.mean()),
        count=float(values.size),
    )
    return out


def rows(base_rows: list[dict], measured: dict, slices: list[tuple[str, slice]]) -> list[dict]:
    """The rows of one level: ``base_rows[i]`` labels stacked network ``i`` (arm, level, replicate,
    density, step, prune_fraction)."""
    out = []
    for i, base in enumerate(base_rows):
        kept = np.asarray(measured["kept"][i], bool)
        diagonal, stderr = np.asarray(measured["estimate"][i]), np.asarray(measured["stderr"][i])
        for layer, where in [(OVERALL, slice(None)), *slices]:
            keep = kept[where]
            if not keep.any():
                continue
            found = statistics(diagonal[where][keep], stderr[where][keep])
            common = dict(base, split="train", layer=layer)
            for q in QUANTILES:
                out.append(dict(common, metric="diagonal_quantile", quantile=q, value=found[f"q{q:g}"]))
            for name in ("mean", "negative", "negative_2se", "stderr", "count"):
                out.append(dict(common, metric=f"diagonal_{name}", value=found[name]))
    return out
