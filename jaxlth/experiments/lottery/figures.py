"""Figures of the lottery experiment: accuracy against weights remaining, per-layer mask density."""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd

from jaxlth import arms
from jaxlth.plots.common import (_layer_colors, _metric_label, _new_axes, _scale, _weights_axis,
                                 dense_reference, summary, write_figures)

ACCURACY_FIGURE = "accuracy_vs_weights.png"
LAYER_DENSITY_FIGURE = "layer_density.png"


def accuracy_vs_weights(table: pd.DataFrame, ax=None, metric: str = "accuracy", split: str = "test",
                        title: str | None = None):
    """Final ``split`` ``metric`` against % of weights remaining, one line per arm.

    The x axis is logarithmic and reversed (100% on the left, as in the lottery-ticket papers);
    lines are means over replicates with ±1 std shaded; IMP (else the one-shot arm) is drawn
    first and on top. The dense network, mean ± std, is a grey horizontal band: IMP's level 0,
    else level 0 of arm ``dense`` or ``main`` (an arm that serves as the band is not also drawn
    as a line). Returns the Axes.

    Raises:
      ValueError: when the table holds no final ``split``/``metric`` measurements.
    """
    stats = summary(table, split, metric)
    if stats.empty:
        raise ValueError(f"the results table holds no {split} {metric} measurements to plot")
    ax = _new_axes(ax)
    scale = _scale(metric)
    dense = dense_reference(stats)
    if dense is not None:
        mean, std = scale * dense["mean"], scale * np.nan_to_num(dense["std"])
        ax.axhspan(mean - std, mean + std, color="0.85", zorder=0)
        ax.axhline(mean, color="0.4", linestyle="--", linewidth=1.0, zorder=1,
                   label=f"dense ({mean:.2f}" + (f" ± {std:.2f})" if std else ")"))
    drawn = arms.order(stats["arm"].unique())
    if dense is not None and dense["arm"] != arms.IMP:
        drawn.remove(dense["arm"])
    main_arm = arms.IMP if arms.IMP in drawn else arms.ONE_SHOT
    for i, arm in enumerate(drawn):
        rows = stats[stats["arm"] == arm].sort_values("level")
        x = rows["percent_remaining"].to_numpy()
        y = scale * rows["mean"].to_numpy()
        s = scale * np.nan_to_num(rows["std"].to_numpy())
        main = arm == main_arm
        color = f"C{i % 10}"  # the main arm, first in the order, gets matplotlib's first colour
        ax.plot(x, y, marker="o", markersize=5 if main else 3.5, linewidth=2.2 if main else 1.2,
                color=color, label=arms.label(arm), zorder=4 if main else 3)
        ax.fill_between(x, y - s, y + s, color=color, alpha=0.25 if main else 0.15, linewidth=0,
                        zorder=2)
    _weights_axis(ax, stats["percent_remaining"])
    ax.set_ylabel(_metric_label(split, metric))
    ax.set_title(title or f"{_metric_label(split, metric).replace(' (%)', '')} vs. weights remaining")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def _mask_rows(table: pd.DataFrame, arm: str = arms.IMP) -> pd.DataFrame:
    if "layer" not in table.columns:
        return table.iloc[0:0]
    rows = table[(table["split"] == "mask") & (table["metric"] == "density") & (table["arm"] == arm)]
    rows = rows[rows["layer"].notna() & (rows["layer"].astype(str) != "")]
    return rows.astype({"level": int, "density": float, "value": float})


def layer_density(table: pd.DataFrame, ax=None, arm: str = arms.IMP):
    """Percentage of weights kept in each prunable layer of ``arm``'s mask against the level.

    One line per layer (mean over replicates), the overall density dashed in black, log y axis.
    Returns the Axes.

    Raises:
      ValueError: when the table holds no per-layer mask density rows of ``arm``.
    """
    from matplotlib import ticker
    rows = _mask_rows(table, arm)
    if rows.empty:
        raise ValueError(f"the results table holds no per-layer mask densities of arm {arm!r}")
    ax = _new_axes(ax)
    layers = list(pd.unique(rows["layer"]))
    colors = _layer_colors(len(layers))
    for layer, color in zip(layers, colors):
        by_level = rows[rows["layer"] == layer].groupby("level")["value"].mean().sort_index()
        name = str(layer).removesuffix("/kernel")
        ax.plot(by_level.index, 100.0 * by_level.to_numpy(), marker="o", markersize=3, linewidth=1.2,
                color=color, label=name)
    overall = rows.groupby("level")["density"].mean().sort_index()
    ax.plot(overall.index, 100.0 * overall.to_numpy(), color="black", linestyle="--", linewidth=1.8,
            label="all prunable")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.set_xlabel("Pruning level")
    ax.set_ylabel("Weights remaining in layer (%)")
    ax.set_title(f"Per-layer density of the {arms.label(arm)} mask")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize="x-small", ncol=max(1, math.ceil((len(layers) + 1) / 16)))
    return ax


def save_figures(table: pd.DataFrame, directory: str, dpi: int = 150) -> list[str]:
    """Writes :data:`ACCURACY_FIGURE` and :data:`LAYER_DENSITY_FIGURE` into ``directory``.

    The directory is created; a figure whose rows are absent (no test accuracy yet, no mask
    rows) is skipped silently. Returns the paths written. Uses no pyplot state.
    """
    jobs = []
    if not summary(table).empty:
        jobs.append((ACCURACY_FIGURE, functools.partial(accuracy_vs_weights, table)))
    if not _mask_rows(table).empty:
        jobs.append((LAYER_DENSITY_FIGURE, functools.partial(layer_density, table)))
    return write_figures(directory, jobs, dpi)
