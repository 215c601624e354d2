"""The Hessian's diagonal (``landscape.diagonal_probes > 0``): its table, terminal text and histogram.

Rows of :mod:`.diagonal` (``metric=diagonal_*``; ``layer`` empty over every kept weight, else one leaf
of the parameters); the histogram reads the estimate itself (the artifact ``landscape/level_LL/diagonal_P``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from jaxlth import drawing, tables
from jaxlth.experiments.landscape.diagonal import OVERALL, artifact_name
from jaxlth.layout import level_name

DIAGONAL_FIGURE = "hessian_diagonal.png"
SUMMARY = ("mean", "negative", "negative_2se", "stderr", "count")


def diagonal_table(table: pd.DataFrame, layer: str | None = OVERALL) -> pd.DataFrame:
    """Per (prune_fraction, level, layer): ``density``, the means over replicates of ``mean``,
    ``negative`` (fraction of entries < 0), ``negative_2se`` (< -2 standard errors), ``stderr``, ``count``
    and the quantiles ``q0`` ... ``q1`` of the diagonal over the kept weights; ``layer`` ``""``: over all
    (``None``: every layer). Empty (with these columns) without diagonal rows."""
    rows = table[(table["experiment"] == "landscape") & table["metric"].astype(str).str.startswith("diagonal_")]
    keys = ["prune_fraction", "level", "layer"]
    if rows.empty:
        return pd.DataFrame(columns=[*keys, "density", *SUMMARY])
    rows = rows.assign(
        layer=rows["layer"].fillna("").astype(str),
        level=rows["level"].astype(int),
        value=rows["value"].astype(float),
        prune_fraction=(rows["prune_fraction"] if "prune_fraction" in rows else np.nan),
    )
    rows = rows.assign(prune_fraction=rows["prune_fraction"].astype(float).fillna(-1.0))
    if layer is not None:
        rows = rows[rows["layer"] == layer]
    quantile = rows["metric"] == "diagonal_quantile"
    names = np.where(
        quantile,
        "q" + pd.to_numeric(rows["quantile"], errors="coerce").map(lambda q: f"{q:g}"),
        rows["metric"].str.removeprefix("diagonal_"),
    )
    wide = rows.assign(name=names).groupby([*keys, "name"])["value"].mean().unstack("name")
    wide["density"] = rows.groupby(keys)["density"].mean()
    order = sorted((c for c in wide.columns if c.startswith("q")), key=lambda c: float(c[1:]))
    return wide.reset_index()[[*keys, "density", *SUMMARY, *order]].sort_values(keys).reset_index(drop=True)


def format_diagonal(table: pd.DataFrame) -> str:
    """Per level (over every kept weight): the diagonal's mean, quantiles and the share of negative
    entries (and beyond two standard errors); ``""`` without diagonal rows."""
    frame = diagonal_table(table)
    if frame.empty:
        return ""
    header = ["p_imp", "level", "% weights", "mean", "q0.01", "median", "q0.99", "% < 0", "% < -2se", "stderr"]
    body = [
        [
            "-" if r["prune_fraction"] < 0 else f"{r['prune_fraction']:g}",
            str(r["level"]),
            f"{100 * r['density']:.3g}",
            f"{r['mean']:.3g}",
            f"{r['q0.01']:.3g}",
            f"{r['q0.5']:.3g}",
            f"{r['q0.99']:.3g}",
            f"{100 * r['negative']:.1f}",
            f"{100 * r['negative_2se']:.1f}",
            f"{r['stderr']:.2g}",
        ]
        for _, r in frame.iterrows()
    ]
    title = (
        "the Hessian's diagonal over the kept weights (Hutchinson, mean over replicates): "
        "% < -2se = negative beyond twice the estimate's standard error"
    )
    return "\n".join([title, *tables.render(header, body)])


def _symlog_bins(values: np.ndarray, count: int) -> tuple[np.ndarray, float]:
    """Bin edges even on a symmetric-log axis, and its linear threshold (the 5th percentile of |d|)."""
    magnitude = np.abs(values[np.isfinite(values)])
    top = float(magnitude.max()) if magnitude.size else 1.0
    threshold = float(np.quantile(magnitude, 0.05)) if magnitude.size else 1.0
    threshold = threshold if threshold > 0 else (top * 1e-6 or 1.0)
    top = max(top, threshold * 1.0001)
    side = np.geomspace(threshold, top, count)
    return np.concatenate([-side[::-1], np.linspace(-threshold, threshold, 5)[1:-1], side]), threshold


def hessian_diagonal_histogram(run, ax=None, levels=None, bins: int = 40):
    """Histogram of the estimated ``diag(H)`` over every kept weight of each measured level (replicates
    and stacked prune fractions pooled), fraction of entries per bin, on a symmetric-log axis."""
    frame = diagonal_table(run.table)
    if frame.empty:
        raise ValueError("the results table holds no Hessian diagonal rows (landscape.diagonal_probes = 0)")
    probes = int(run.config["landscape"]["diagonal_probes"])
    chosen = sorted(frame["level"].unique()) if levels is None else list(levels)
    found = {}
    for level in chosen:
        saved = run.load(artifact_name(level_name(int(level)), probes))
        kept = np.asarray(saved["kept"], bool)
        found[level] = (np.asarray(saved["estimate"], np.float64)[kept], float(np.mean(kept)))
    edges, threshold = _symlog_bins(np.concatenate([v for v, _ in found.values()]), bins)
    ax = drawing.new_axes(ax)
    for (level, (values, _)), color in zip(found.items(), drawing.layer_colors(len(found))):
        density = frame[frame["level"] == level]["density"].mean()
        weights = np.full(values.shape, 1.0 / values.size)
        negative = 100 * np.mean(values < 0)
        label = f"level {level} ({100 * density:.3g}% weights; {negative:.1f}% < 0)"
        ax.hist(values, bins=edges, weights=weights, histtype="step", color=color, label=label)
    ax.set_xscale("symlog", linthresh=threshold)
    ax.axvline(0.0, color="0.4", linewidth=0.8)
    ax.set_xlabel(r"$H_{ii}$ (Hutchinson estimate; symmetric log scale)")
    ax.set_ylabel("Fraction of kept weights")
    ax.set_title(f"The training-loss Hessian's diagonal ({probes} probes)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="x-small")
    return ax
