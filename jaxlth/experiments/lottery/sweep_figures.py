"""Tables and figures of a prune-fraction sweep (``lottery.prune_fraction = (p_1, ..., p_F)``).

Paul et al. (2023, Sec. 3.3) ask how large a fraction one IMP level can prune while the level stays
matching: these show, per fraction, which levels are matching (test error within ``epsilon`` of the
dense network's; ``epsilon < 0``: one standard deviation of the dense error over replicates, as
``instability.matching_epsilon``), and per level the largest fraction that is.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from jaxlth import drawing, tables
from jaxlth.analysis.connectivity import is_matching, matching_epsilon
from jaxlth.experiments.lottery.arms import ARMS, IMP

SWEEP_FIGURE = "prune_fraction_sweep.png"
MATCHING_FIGURE = "matching_by_fraction.png"


def _final(table: pd.DataFrame, split: str) -> pd.DataFrame:
    """Final ``split`` accuracies of the IMP arm, one row per (prune_fraction, level, replicate)."""
    if "prune_fraction" not in table.columns:
        return pd.DataFrame(columns=["prune_fraction", "level", "replicate", "density", "value"])
    parts = []
    for p, rows in table[table["prune_fraction"].notna()].groupby("prune_fraction"):
        final = tables.final_metrics(rows, split, "accuracy", ARMS)
        parts.append(final[final["arm"] == IMP].assign(prune_fraction=float(p)))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["prune_fraction", "level"])


def prune_sweep_table(table: pd.DataFrame, split: str = "test", epsilon: float = -1.0) -> pd.DataFrame:
    """One row per (prune_fraction, level) of IMP: ``density`` (mean fraction kept), ``error`` (mean
    final ``split`` error, a fraction), ``std``, ``n``, ``matching`` (mean error within the
    tolerance of the dense level's) and ``matching_replicates`` (the fraction of replicates that are)."""
    final = _final(table, split)
    columns = ["prune_fraction", "level", "density", "error", "std", "n", "matching", "matching_replicates"]
    if final.empty:
        return pd.DataFrame(columns=columns)
    final = final.assign(error=1.0 - final["value"])
    dense = final[final["level"] == 0].groupby("replicate")["error"].mean().to_numpy()
    tolerance = matching_epsilon(dense, epsilon)
    out = []
    for (p, level), rows in final.groupby(["prune_fraction", "level"]):
        errors = rows["error"].to_numpy()
        out.append(
            {
                "prune_fraction": p,
                "level": int(level),
                "density": rows["density"].mean(),
                "error": errors.mean(),
                "std": errors.std(ddof=1) if errors.size > 1 else np.nan,
                "n": errors.size,
                "matching": bool(is_matching(errors.mean(), dense, tolerance)),
                "matching_replicates": float(np.mean(is_matching(errors, dense, tolerance))),
            }
        )
    return pd.DataFrame(out, columns=columns).sort_values(["prune_fraction", "level"]).reset_index(drop=True)


def largest_matching_fraction(table: pd.DataFrame, split: str = "test", epsilon: float = -1.0) -> pd.DataFrame:
    """Per level: the largest prune fraction whose level is matching (NaN when none is)."""
    sweep = prune_sweep_table(table, split, epsilon)
    rows = []
    for level, group in sweep.groupby("level"):
        matching = group[group["matching"]]["prune_fraction"]
        rows.append({"level": int(level), "largest_matching_fraction": matching.max() if len(matching) else np.nan})
    return pd.DataFrame(rows, columns=["level", "largest_matching_fraction"])


def format_prune_sweep(table: pd.DataFrame, split: str = "test", epsilon: float = -1.0) -> str:
    """Text for the terminal: per level, each fraction's ``% weights  error (%)`` with ``*`` when matching."""
    sweep = prune_sweep_table(table, split, epsilon)
    if sweep.empty:
        return f"no final {split} accuracies of the prune-fraction sweep yet"
    fractions = sorted(sweep["prune_fraction"].unique())
    largest = largest_matching_fraction(table, split, epsilon).set_index("level")["largest_matching_fraction"]

    def cell(p: float, level: int) -> str:
        row = sweep[(sweep["prune_fraction"] == p) & (sweep["level"] == level)]
        if row.empty:
            return "-"
        r = row.iloc[0]
        return f"{100 * r['density']:.3g}%: {100 * r['error']:.2f}" + ("*" if r["matching"] else " ")

    levels = sorted(sweep["level"].unique())
    header = ["level", *(f"p={p:g}" for p in fractions), "largest matching p"]
    body = [
        [str(level), *(cell(p, level) for p in fractions), "-" if np.isnan(largest[level]) else f"{largest[level]:g}"]
        for level in levels
    ]
    title = (
        f"prune-fraction sweep: weights remaining and final {split} error (%) per level; "
        "* = matching (within epsilon of dense)"
    )
    return "\n".join([title, *tables.render(header, body)])


def sweep_accuracy(table: pd.DataFrame, ax=None, split: str = "test", epsilon: float = -1.0):
    """Final ``split`` error against weights remaining, one line per prune fraction; filled markers
    where the level is matching, hollow where not; the dense error ± tolerance as a grey band."""
    sweep = prune_sweep_table(table, split, epsilon)
    if sweep.empty:
        raise ValueError("the results table holds no prune-fraction sweep")
    ax = drawing.new_axes(ax)
    dense = sweep[sweep["level"] == 0]["error"].mean()
    final = _final(table, split)
    dense_errors = 1.0 - final[final["level"] == 0].groupby("replicate")["value"].mean().to_numpy()
    tolerance = matching_epsilon(dense_errors, epsilon)
    ax.axhspan(100 * dense, 100 * (dense + tolerance), color="0.88", zorder=0, label="matching region")
    for i, (p, rows) in enumerate(sweep.groupby("prune_fraction")):
        x, y, color = 100 * rows["density"].to_numpy(), 100 * rows["error"].to_numpy(), f"C{i % 10}"
        ax.plot(x, y, color=color, linewidth=1.4, label=f"p = {p:g}", zorder=2)
        match = rows["matching"].to_numpy(bool)
        ax.scatter(x[match], y[match], color=color, s=22, zorder=3)
        ax.scatter(x[~match], y[~match], facecolors="white", edgecolors=color, s=22, zorder=3)
    drawing.weights_axis(ax, 100 * sweep["density"])
    ax.set_ylabel(f"{split.capitalize()} error (%)")
    ax.set_title("IMP per prune fraction (filled: matching)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def matching_grid(table: pd.DataFrame, ax=None, split: str = "test", epsilon: float = -1.0):
    """The fraction of replicates matching, prune fraction (rows) by level (columns)."""
    sweep = prune_sweep_table(table, split, epsilon)
    if sweep.empty:
        raise ValueError("the results table holds no prune-fraction sweep")
    ax = drawing.new_axes(ax)
    grid = sweep.pivot(index="prune_fraction", columns="level", values="matching_replicates")
    image = ax.imshow(grid.to_numpy(float), origin="lower", aspect="auto", cmap="RdYlGn", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(grid.shape[1]), [str(c) for c in grid.columns])
    ax.set_yticks(range(grid.shape[0]), [f"{p:g}" for p in grid.index])
    ax.set_xlabel("Pruning level")
    ax.set_ylabel("Prune fraction per level")
    ax.set_title("Replicates matching the dense network")
    ax.figure.colorbar(image, ax=ax, label="fraction of replicates")
    return ax


def save_sweep_figures(table: pd.DataFrame, directory: str, dpi: int = 150) -> list[str]:
    """Writes :data:`SWEEP_FIGURE` and :data:`MATCHING_FIGURE` (nothing before the first final accuracy)."""
    if prune_sweep_table(table).empty:
        return drawing.write_figures(directory, [], dpi)
    return drawing.write_figures(
        directory,
        [
            (SWEEP_FIGURE, functools.partial(sweep_accuracy, table)),
            (MATCHING_FIGURE, functools.partial(matching_grid, table)),
        ],
        dpi,
    )
