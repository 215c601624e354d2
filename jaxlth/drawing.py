"""How jaxlth draws: axes, the weights-remaining axis, layer colours, saving figures, and the figure
several experiments share (accuracy against weights remaining, or against compression, nonzero
parameters or FLOPs: :func:`accuracy_vs`).

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
from jaxlth.errors import UserError
from jaxlth.legend import Arms

FIGURE_SIZE = (7, 4.5)


def new_axes(ax):
    """``ax``, or the axes of a new pyplot figure (imported lazily)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=FIGURE_SIZE)
    return ax


def percent_ticks(ax, percents, max_ticks: int = 12, fmt: Callable[[float], str] = "{:.3g}".format) -> None:
    """Major ticks of a log axis at the measured values (percentages, counts), thinned to at most
    ``max_ticks``, labelled by ``fmt``."""
    from matplotlib import ticker

    values = sorted({round(float(p), 6) for p in percents if np.isfinite(p)}, reverse=True)
    if not values:
        return
    stride = math.ceil(len(values) / max_ticks)
    shown = values[::stride]
    ax.xaxis.set_major_locator(ticker.FixedLocator(shown))
    ax.xaxis.set_major_formatter(ticker.FixedFormatter([fmt(v) for v in shown]))
    ax.xaxis.set_minor_locator(ticker.NullLocator())


def weights_axis(ax, percents, label: str = "Weights remaining (%)") -> None:
    """A log x axis of the percentage of weights remaining, dense on the left, ticks at ``percents``."""
    log_axis(ax, percents, label, dense_left="largest")


def log_axis(ax, values, label: str, dense_left: str = "largest", fmt: Callable[[float], str] = "{:.3g}".format):
    """A log x axis ticked at the measured ``values``; the dense network on the left: ``dense_left``
    ``"largest"`` reverses the axis (weights, parameters, FLOPs), ``"smallest"`` keeps it (compression)."""
    values = [float(v) for v in values if np.isfinite(v)]
    ax.set_xscale("log")
    percent_ticks(ax, values, fmt=fmt)
    if values:
        low, high = min(values) / 1.15, max(values) * 1.15
        ax.set_xlim((high, low) if dense_left == "largest" else (low, high))
    ax.set_xlabel(label)


# x of accuracy_vs -> (summary column, axis label, which end is dense, tick format, title's noun)
X_AXES = {
    "density": ("percent_remaining", "Weights remaining (%)", "largest", "{:.3g}".format, "weights remaining"),
    "compression": (
        "compression",
        "Compression ratio (total / nonzero parameters)",
        "smallest",
        lambda v: f"{v:.3g}x",
        "compression",
    ),
    "nonzero": ("nonzero_params", "Nonzero parameters", "largest", lambda v: tables.si(v), "nonzero parameters"),
    "flops": ("flops", "FLOPs per example (multiply-adds)", "largest", lambda v: tables.si(v), "FLOPs"),
}


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
    """:func:`accuracy_vs` against % of weights remaining (``x="density"``)."""
    return accuracy_vs(table, ax, metric, split, title, arms, dense_label)


def accuracy_vs(
    table: pd.DataFrame,
    ax=None,
    metric: str = "accuracy",
    split: str = "test",
    title: str | None = None,
    arms: Arms = Arms(),
    dense_label: str = "dense",
    x: str = "density",
    costs: pd.DataFrame | None = None,
):
    """Final ``split`` ``metric`` against ``x``, one line per arm: trade-off curves as Blalock et al.
    (2020) ask for them, every level a point, the dense baseline, std over replicates.

    ``x``: ``"density"`` (% of weights remaining), ``"compression"`` (total / nonzero parameters),
    ``"nonzero"`` (nonzero parameters) or ``"flops"`` (multiply-adds per example of the masked
    network); all but ``density`` need ``costs`` (a lottery run's ``run.costs()``), each arm's point
    the mean over its replicates. The x axis is logarithmic with the dense network on the left (100%
    weights, compression 1, all parameters and FLOPs, as in the lottery-ticket papers); lines are
    means over replicates with ±1 std shaded; the main arm is drawn first and on top. The dense
    network, mean ± std, is a grey horizontal band (:func:`jaxlth.tables.dense_reference`; an arm with
    only that dense level is the band, not a line) named ``dense_label``. Returns the Axes.

    Raises:
      UserError: for an unknown ``x``, or one that needs ``costs`` without them.
      ValueError: when the table holds no final ``split``/``metric`` measurements.
    """
    if x not in X_AXES:
        raise UserError(f"x must be one of {', '.join(X_AXES)}, got {x!r}")
    if x != "density" and costs is None:
        raise UserError(
            f"x={x!r} needs the costs of the run's masks: pass the run (jaxlth.plots.accuracy_vs(run, x={x!r})) "
            "or costs=run.costs()"
        )
    column, label, dense_left, fmt, noun = X_AXES[x]
    stats = tables.summary(table, split, metric, arms, costs if x != "density" else None)
    if stats.empty:
        raise ValueError(f"the results table holds no {split} {metric} measurements to plot")
    if stats[column].isna().all():
        raise ValueError(f"the costs hold none of the networks of the table's {split} {metric} measurements")
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
        rows = stats[(stats["arm"] == arm) & stats[column].notna()].sort_values("level")
        xs = rows[column].to_numpy(float)
        y = factor * rows["mean"].to_numpy()
        s = factor * np.nan_to_num(rows["std"].to_numpy())
        main = arm == main_arm
        color = f"C{i % 10}"  # the main arm, first in the order, gets matplotlib's first colour
        ax.plot(
            xs,
            y,
            marker="o",
            markersize=5 if main else 3.5,
            linewidth=2.2 if main else 1.2,
            color=color,
            label=arms.label(arm),
            zorder=4 if main else 3,
        )
        ax.fill_between(xs, y - s, y + s, color=color, alpha=0.25 if main else 0.15, linewidth=0, zorder=2)
    log_axis(ax, stats[column], label, dense_left, fmt)
    ax.set_ylabel(tables.metric_label(split, metric))
    ax.set_title(title or f"{tables.metric_label(split, metric).replace(' (%)', '')} vs. {noun}")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize="small")
    return ax
