"""How jaxlth draws: axes, the weights-remaining axis, layer colours, saving figures, and the figure
several experiments share (accuracy against weights remaining).

Functions given ``ax=None`` draw on a new pyplot figure (inline in a notebook; matplotlib falls back
to the Agg backend without a display). :func:`write_figures` never touches pyplot: it draws on
free-standing :class:`matplotlib.figure.Figure` objects, so it leaks no figures and needs no display.
"""

from __future__ import annotations

import math
import os
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from jaxlth import storage, tables
from jaxlth.legend import Arms

FIGURE_SIZE = (7, 4.5)


def new_axes(ax):
    """``ax``, or the axes of a new pyplot figure (imported lazily)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=FIGURE_SIZE)
    return ax


def percent_ticks(ax, percents, max_ticks: int = 12) -> None:
    """Major ticks of a log axis at the measured percentages, thinned to at most ``max_ticks``."""
    from matplotlib import ticker

    values = sorted({round(float(p), 6) for p in percents}, reverse=True)
    if not values:
        return
    stride = math.ceil(len(values) / max_ticks)
    shown = values[::stride]
    ax.xaxis.set_major_locator(ticker.FixedLocator(shown))
    ax.xaxis.set_major_formatter(ticker.FixedFormatter([f"{v:.3g}" for v in shown]))
    ax.xaxis.set_minor_locator(ticker.NullLocator())


def weights_axis(ax, percents, label: str = "Weights remaining (%)") -> None:
    """A log x axis of the percentage of weights remaining, dense on the left, ticks at ``percents``."""
    values = [float(p) for p in percents]
    ax.set_xscale("log")
    percent_ticks(ax, values)
    if values:
        ax.set_xlim(max(values) * 1.15, min(values) / 1.15)
    ax.set_xlabel(label)


def layer_colors(n: int) -> list:
    """Distinct colours for few layers; a sequential colormap (input to output) for many."""
    if n <= 10:
        return [f"C{i}" for i in range(n)]
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(i / max(1, n - 1)) for i in range(n)]


def write_figures(directory: str, jobs: Sequence[tuple[str, Callable]], dpi: int = 150) -> list[str]:
    """Draws each ``(file name, draw)`` job, ``draw(ax=...)``, into ``directory``; returns the paths.

    The directory is created even when there is nothing to draw. Each figure is a free-standing
    :class:`matplotlib.figure.Figure` (no pyplot state, no display, nothing leaked).
    """
    from matplotlib.figure import Figure

    storage.makedirs(directory)
    written = []
    for name, draw in jobs:
        figure = Figure(figsize=FIGURE_SIZE, layout="constrained")
        draw(ax=figure.add_subplot())
        path = os.path.join(directory, name)
        storage.save_figure(figure, path, dpi=dpi)
        written.append(path)
    return written


def with_suffix(paths: Sequence[str], label: str) -> list[str]:
    """Figures renamed for one setting of a sweep: ``a.png`` with label ``"lr=0.1"`` becomes ``a_lr0.1.png``."""
    suffix = "_" + label.replace(", ", "_").replace("=", "")
    renamed = []
    for path in paths:
        stem, ext = os.path.splitext(path)
        storage.replace(path, stem + suffix + ext)
        renamed.append(stem + suffix + ext)
    return renamed


def accuracy_vs_weights(
    table: pd.DataFrame,
    ax=None,
    metric: str = "accuracy",
    split: str = "test",
    title: str | None = None,
    arms: Arms = Arms(),
    dense_label: str = "dense",
):
    """Final ``split`` ``metric`` against % of weights remaining, one line per arm.

    The x axis is logarithmic and reversed (100% on the left, as in the lottery-ticket papers);
    lines are means over replicates with ±1 std shaded; the main arm is drawn first and on top. The
    dense network, mean ± std, is a grey horizontal band (:func:`jaxlth.tables.dense_reference`; an
    arm with only that dense level is the band, not a line) named ``dense_label``. Returns the Axes.

    Raises:
      ValueError: when the table holds no final ``split``/``metric`` measurements.
    """
    stats = tables.summary(table, split, metric, arms)
    if stats.empty:
        raise ValueError(f"the results table holds no {split} {metric} measurements to plot")
    ax = new_axes(ax)
    factor = tables.scale(metric)
    dense = tables.dense_reference(stats, arms)
    if dense is not None:
        mean, std = factor * dense["mean"], factor * np.nan_to_num(dense["std"])
        ax.axhspan(mean - std, mean + std, color="0.85", zorder=0)
        ax.axhline(
            mean,
            color="0.4",
            linestyle="--",
            linewidth=1.0,
            zorder=1,
            label=f"{dense_label} ({mean:.2f}" + (f" ± {std:.2f})" if std else ")"),
        )
    drawn = arms.order(stats["arm"].unique())
    if dense is not None and (stats["arm"] == dense["arm"]).sum() == 1:
        drawn.remove(dense["arm"])
    main_arm = arms.main if arms.main in drawn else (drawn[0] if drawn else None)
    for i, arm in enumerate(drawn):
        rows = stats[stats["arm"] == arm].sort_values("level")
        x = rows["percent_remaining"].to_numpy()
        y = factor * rows["mean"].to_numpy()
        s = factor * np.nan_to_num(rows["std"].to_numpy())
        main = arm == main_arm
        color = f"C{i % 10}"  # the main arm, first in the order, gets matplotlib's first colour
        ax.plot(
            x,
            y,
            marker="o",
            markersize=5 if main else 3.5,
            linewidth=2.2 if main else 1.2,
            color=color,
            label=arms.label(arm),
            zorder=4 if main else 3,
        )
        ax.fill_between(x, y - s, y + s, color=color, alpha=0.25 if main else 0.15, linewidth=0, zorder=2)
    weights_axis(ax, stats["percent_remaining"])
    ax.set_ylabel(tables.metric_label(split, metric))
    ax.set_title(title or f"{tables.metric_label(split, metric).replace(' (%)', '')} vs. weights remaining")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize="small")
    return ax
