"""The pruning scaling law's figure: measured IMP error and the fitted ``ε̂`` against density, one curve
per width (``jaxlth.analysis.scaling``; matplotlib is imported when drawing)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from jaxlth import drawing
from jaxlth.analysis.scaling import ScalingFit

__all__ = ["draw"]


def draw(law: ScalingFit, table: pd.DataFrame | None = None, ax=None):
    """Measured test error (markers, mean ± std over replicates) and the law's ``ε̂`` (lines: solid for
    widths it was fitted to, dashed for the others) against % weights remaining, log-log as in the
    paper's figures, one colour per width of ``table`` (default: the fitted points). Returns the Axes."""
    measured = law.points.assign(in_fit=True) if table is None else law.deviations(table)
    ax = drawing.new_axes(ax)
    for i, ((label, layers), rows) in enumerate(measured.groupby(["label", "depth"], sort=False)):
        rows = rows.sort_values("level")
        percent = 100.0 * rows["density"].to_numpy()
        dense = np.geomspace(rows["density"].max(), rows["density"].min(), 200)
        curve = law.predict(dense, rows["eps_np"].iloc[0], rows["width"].iloc[0], layers)
        fitted_on = bool(rows["in_fit"].all())
        color = f"C{i % 10}"
        ax.errorbar(percent, 100 * rows["error"], yerr=100 * rows["error_std"].fillna(0), fmt="o", ms=3.5, color=color)
        ax.plot(
            100 * dense,
            100 * curve,
            "-" if fitted_on else "--",
            color=color,
            label=f"{label}" + ("" if fitted_on else " (predicted)"),
        )
    drawing.weights_axis(ax, 100.0 * measured["density"])
    ax.set_yscale("log")
    from matplotlib import ticker

    ax.yaxis.set_major_formatter(ticker.LogFormatter(labelOnlyBase=False))
    ax.yaxis.set_minor_formatter(ticker.LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    ax.set_ylabel(f"{law.split.capitalize()} error (%)")
    title = f"markers: measured; lines: ε̂. Fit: μ={law.mean:+.2%}, σ={law.std:.2%}"
    held_out = measured.loc[~measured["in_fit"], "delta"]
    if len(held_out) > 1:
        title += f"; predicted: μ={held_out.mean():+.2%}, σ={held_out.std(ddof=1):.2%}"
    ax.set_title(title, fontsize=9)
    ax.legend(title=law.width, fontsize=8)
    return ax
