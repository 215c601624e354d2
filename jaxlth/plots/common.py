"""What the figures and tables of every experiment share.

The generic per-(arm, level) tables (:func:`final_metrics`, :func:`summary`,
:func:`format_summary`), the dense reference of a table, metric units and labels, axes helpers and
:func:`write_figures`, the one loop that saves figures without pyplot.
"""

from __future__ import annotations

import math
import os
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from jaxlth import arms, storage

# Arms whose level 0 is the dense network, in order of preference (see dense_reference).
DENSE_ARMS = (arms.IMP, arms.DENSE, arms.MAIN)
FIGURE_SIZE = (7, 4.5)


# ----- table helpers ------------------------------------------------------------------------------
def _sort_by_arm(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    rank = {arm: i for i, arm in enumerate(arms.order(frame["arm"].unique()))}
    keyed = frame.assign(_rank=frame["arm"].map(rank))
    return keyed.sort_values(["_rank", *columns], kind="stable").drop(columns="_rank").reset_index(drop=True)


def _with_columns(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """``frame`` with each missing column of ``columns`` added, all NaN (optional results columns)."""
    missing = [c for c in columns if c not in frame.columns]
    return frame.assign(**dict.fromkeys(missing, np.nan)) if missing else frame


def _measurements(table: pd.DataFrame, split: str, metric: str) -> pd.DataFrame:
    """Rows of ``split``/``metric`` outside the pretraining arm, with clean dtypes."""
    rows = table[(table["split"] == split) & (table["metric"] == metric) & (table["arm"] != arms.PRETRAIN)]
    if "layer" in rows.columns:
        rows = rows[rows["layer"].isna() | (rows["layer"].astype(str) == "")]
    rows = rows.dropna(subset=["level", "replicate", "step", "value"])
    return rows.astype({"level": int, "replicate": int, "step": int, "density": float, "value": float})


def final_metrics(table: pd.DataFrame, split: str = "test", metric: str = "accuracy") -> pd.DataFrame:
    """The last measurement (largest ``step``) of every (arm, level, replicate); networks that share
    those coordinates (the particles of an averaged IMP level) are averaged.

    Returns columns ``arm, level, replicate, density, value, step``; ``density`` is the fraction
    of prunable weights kept, ``value`` in the metric's own units (accuracy as a fraction).
    """
    columns = ["arm", "level", "replicate", "density", "value", "step"]
    rows = _measurements(table, split, metric)
    if rows.empty:
        return pd.DataFrame(columns=columns)
    keys = ["arm", "level", "replicate"]
    rows = rows[rows["step"] == rows.groupby(keys, sort=False)["step"].transform("max")]
    last = rows.groupby(keys, sort=False).agg(density=("density", "mean"), value=("value", "mean"),
                                              step=("step", "max")).reset_index()
    return _sort_by_arm(last[columns], "level", "replicate")


def summary(table: pd.DataFrame, split: str = "test", metric: str = "accuracy") -> pd.DataFrame:
    """Final values aggregated over replicates, one row per (arm, level).

    Returns columns ``arm, level, density`` (mean fraction kept), ``percent_remaining``
    (``100 * density``), ``mean``, ``std`` (over replicates, ``ddof=1``, NaN when ``n == 1``)
    and ``n`` (replicates), in the units of ``value`` (accuracy as a fraction).
    """
    final = final_metrics(table, split, metric)
    columns = ["arm", "level", "density", "percent_remaining", "mean", "std", "n"]
    if final.empty:
        return pd.DataFrame(columns=columns)
    grouped = final.groupby(["arm", "level"], sort=False)
    out = grouped.agg(density=("density", "mean"), mean=("value", "mean"), std=("value", "std"),
                      n=("value", "size")).reset_index()
    out["percent_remaining"] = 100.0 * out["density"]
    return _sort_by_arm(out[columns], "level")


def dense_reference(stats: pd.DataFrame) -> pd.Series | None:
    """The :func:`summary` row of the dense network: level 0 of IMP, else of ``dense``, else of ``main``."""
    for arm in DENSE_ARMS:
        rows = stats[(stats["arm"] == arm) & (stats["level"] == 0)]
        if not rows.empty:
            return rows.iloc[0]
    return None


def _scale(metric: str) -> float:
    """Display factor: accuracies are shown in percent, other metrics as they are."""
    return 100.0 if metric == "accuracy" else 1.0


def _metric_label(split: str, metric: str) -> str:
    unit = " (%)" if metric == "accuracy" else ""
    return f"{split.capitalize()} {metric}{unit}"


def _pm_cell(mean: float, std: float) -> str:
    """``mean ± std`` with two decimals, ``mean`` alone when ``std`` is NaN (one replicate)."""
    return f"{mean:.2f}" if math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def _render(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    """Right-aligned text columns separated by two spaces, header first."""
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    return ["  ".join(text.rjust(width) for text, width in zip(r, widths)) for r in [header, *body]]


def format_summary(table: pd.DataFrame, split: str = "test", metric: str = "accuracy") -> str:
    """A text table for the terminal: one row per level, ``mean ± std`` of each arm as columns.

    Accuracies are printed in percent with two decimals; ``% weights`` is the mean percentage of
    prunable weights remaining (IMP's where present, else the one-shot arm's, else all arms');
    ``-`` marks an arm without that level.
    """
    stats = summary(table, split, metric)
    if stats.empty:
        return f"no final {split} {metric} measurements yet"
    scale = _scale(metric)
    order = arms.order(stats["arm"].unique())
    levels = sorted(stats["level"].unique())
    reference = stats
    for arm in (arms.IMP, arms.ONE_SHOT):
        if (stats["arm"] == arm).any():
            reference = stats[stats["arm"] == arm]
            break
    remaining = stats.groupby("level")["percent_remaining"].mean()
    remaining.update(reference.groupby("level")["percent_remaining"].mean())

    def cell(arm: str, level: int) -> str:
        row = stats[(stats["arm"] == arm) & (stats["level"] == level)]
        if row.empty:
            return "-"
        return _pm_cell(scale * row["mean"].iloc[0], scale * row["std"].iloc[0])

    header = ["level", "% weights", *order]
    body = [[str(level), f"{remaining[level]:.2f}", *(cell(arm, level) for arm in order)] for level in levels]
    title = f"final {split} {metric}" + (" (%)" if metric == "accuracy" else "") + ", mean ± std over replicates"
    return "\n".join([title, *_render(header, body)])


# ----- figure helpers -----------------------------------------------------------------------------
def _new_axes(ax):
    """``ax``, or the axes of a new pyplot figure (imported lazily)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt
    _, ax = plt.subplots(figsize=FIGURE_SIZE)
    return ax


def _percent_ticks(ax, percents, max_ticks: int = 12) -> None:
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


def _weights_axis(ax, percents, label: str = "Weights remaining (%)") -> None:
    """A log x axis of the percentage of weights remaining, dense on the left, ticks at ``percents``."""
    values = [float(p) for p in percents]
    ax.set_xscale("log")
    _percent_ticks(ax, values)
    if values:
        ax.set_xlim(max(values) * 1.15, min(values) / 1.15)
    ax.set_xlabel(label)


def _layer_colors(n: int) -> list:
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
