"""The table and figure of one transfer run (every arm's final main metric against the dense network),
and the matrix of several (:mod:`.matrix`: sources x targets).

Values are in the metric's units (accuracy as a fraction in tables of numbers, in percent in text and on
axes); standard deviations are over replicates (``ddof=1``). An arm is *matching* when its mean is at
least the dense mean minus one dense std (Chen et al. 2020's rule; one replicate: at least the mean).
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from jaxlth import drawing, tables
from jaxlth.experiments.transfer.arms import ARMS, BASELINES, DENSE
from jaxlth.experiments.transfer.matrix import format_transfer_table, transfer_figure, transfer_heatmap, transfer_table
from jaxlth.experiments.transfer.reader import arm_order, final_by_arm, main_metric, matching

TRANSFER_FIGURE = "transfer.png"
__all__ = [
    "TRANSFER_FIGURE",
    "format_transfer",
    "transfer_arms_figure",
    "transfer_table",
    "format_transfer_table",
    "transfer_heatmap",
    "transfer_figure",
]


def format_transfer(table: pd.DataFrame, split: str = "test", metric: str | None = None) -> str:
    """A text table for the terminal: one row per arm, its source level, % of weights kept, the final
    ``metric`` (default: the first non-loss one) ``mean ± std``, its difference to the dense arm and
    whether it is matching (``-`` without a dense arm)."""
    metric = metric or main_metric(table, split)
    stats = final_by_arm(table, arm_order(table), split, metric)
    if stats.empty:
        return f"no final {split} {metric} measurements of a transfer run yet"
    factor, unit = tables.scale(metric), " (%)" if metric == "accuracy" else ""
    dense = stats[stats["arm"] == DENSE]
    title = f"masks transferred: final {split} {metric}{unit}, mean ± std over replicates"
    body = []
    for row in stats.itertuples():
        level = "-" if pd.isna(row.source_level) else str(int(row.source_level))
        cell = tables.pm_cell(factor * row.mean, factor * row.std)
        versus, match = "-", "-"
        if not dense.empty and row.arm != DENSE:
            versus = f"{factor * (row.mean - dense['mean'].iloc[0]):+.2f}"
            match = "yes" if matching(row.mean, dense["mean"].iloc[0], dense["std"].iloc[0]) else "no"
        body.append([row.arm, level, f"{100 * row.density:.2f}", cell, versus, match])
    header = ["arm", "source level", "% weights", metric, "vs dense", "matching"]
    return "\n".join([title, *tables.render(header, body)])


def transfer_arms_figure(
    table: pd.DataFrame, ax=None, split: str = "test", metric: str | None = None, title: str | None = None
):
    """The final ``split`` ``metric`` of every masked arm (mean ± std over replicates, one point each),
    the dense network a dashed line with its ±1 std band. Returns the Axes; ValueError without values."""
    metric = metric or main_metric(table, split)
    stats = final_by_arm(table, arm_order(table), split, metric)
    if stats.empty:
        raise ValueError(f"the results table holds no final {split} {metric} measurements to plot")
    ax = drawing.new_axes(ax)
    factor = tables.scale(metric)
    dense = stats[stats["arm"] == DENSE]
    if not dense.empty:
        mean, std = factor * dense["mean"].iloc[0], factor * np.nan_to_num(dense["std"].iloc[0])
        ax.axhspan(mean - std, mean + std, color="0.85", zorder=0)
        ax.axhline(mean, color="0.4", linestyle="--", linewidth=1.0, label=f"dense ({mean:.2f})")
    masked = stats[stats["arm"] != DENSE].reset_index(drop=True)
    for i, row in masked.iterrows():
        colour = "C0" if row["arm"] not in BASELINES else "C1"
        std = factor * np.nan_to_num(row["std"])
        ax.errorbar(i, factor * row["mean"], yerr=std, fmt="o", color=colour, capsize=4, markersize=6)
    labels = [f"{ARMS.label(row.arm)}\n{100 * row.density:.1f}% of weights" for row in masked.itertuples()]
    ax.set_xticks(range(len(masked)), labels, rotation=20, ha="right")
    ax.set_xlim(-0.6, len(masked) - 0.4)
    ax.set_ylabel(tables.metric_label(split, metric))
    ax.set_title(title or "Masks trained on this task (blue: other runs' masks; orange: baselines)")
    if not dense.empty:
        ax.legend(loc="best")
    ax.grid(True, axis="y", alpha=0.3)
    return ax


def report(run, directory: str) -> tuple[str, list[str]]:
    """The arms' table and :data:`TRANSFER_FIGURE`."""
    table = run.table
    jobs = []
    if not final_by_arm(table, arm_order(table)).empty:
        jobs.append((TRANSFER_FIGURE, functools.partial(transfer_arms_figure, table)))
    return format_transfer(table), drawing.write_figures(directory, jobs)
