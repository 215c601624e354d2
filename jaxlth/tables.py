"""The tables every experiment's rows make: final values per (arm, level, replicate), their summary
over replicates, and the terminal's text table; the number formats every table shares.

Every function takes the DataFrame of ``results.csv`` and the experiment's :class:`~jaxlth.legend.Arms`
(labels, order, main arm, arms left out). Units: ``density`` is the fraction of the prunable weights
kept (1.0 = dense), ``percent_remaining`` a percentage, accuracies fractions (percent in text).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from jaxlth.legend import Arms
from jaxlth.training import hyper


def sort_by_arm(frame: pd.DataFrame, arms: Arms, *columns: str) -> pd.DataFrame:
    """``frame`` sorted by arm (legend order), then by ``columns``."""
    rank = {arm: i for i, arm in enumerate(arms.order(frame["arm"].unique()))}
    keyed = frame.assign(_rank=frame["arm"].map(rank))
    return keyed.sort_values(["_rank", *columns], kind="stable").drop(columns="_rank").reset_index(drop=True)


def with_columns(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """``frame`` with each missing column of ``columns`` added, all NaN (optional results columns)."""
    missing = [c for c in columns if c not in frame.columns]
    return frame.assign(**dict.fromkeys(missing, np.nan)) if missing else frame


def setting_columns(table: pd.DataFrame) -> list[str]:
    """The columns of a hyper-parameter sweep's settings that ``table`` holds (``lr``, ``momentum``, ...)."""
    return [f for f in hyper.FIELDS if f in table.columns and table[f].notna().any()]


def by_setting(table: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """``[(label, rows)]``: the rows of each setting of a hyper-parameter sweep, labelled ``"lr=0.1"``
    (one ``("", table)`` without a sweep): what a table must not average over."""
    columns = setting_columns(table)
    if not columns:
        return [("", table)]
    out = []
    for values, rows in table.groupby(columns, sort=False, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        out.append(
            (", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in zip(columns, values)), rows)
        )
    return out


def measurements(table: pd.DataFrame, split: str, metric: str, arms: Arms = Arms()) -> pd.DataFrame:
    """Rows of ``split``/``metric`` outside the hidden arms and per-layer rows, with clean dtypes."""
    rows = table[(table["split"] == split) & (table["metric"] == metric) & ~table["arm"].isin(arms.hidden)]
    if "layer" in rows.columns:
        rows = rows[rows["layer"].isna() | (rows["layer"].astype(str) == "")]
    rows = rows.dropna(subset=["level", "replicate", "step", "value"])
    return rows.astype({"level": int, "replicate": int, "step": int, "density": float, "value": float})


def final_metrics(
    table: pd.DataFrame, split: str = "test", metric: str = "accuracy", arms: Arms = Arms()
) -> pd.DataFrame:
    """The last measurement (largest ``step``) of every (arm, level, replicate); networks that share
    those coordinates (the particles of an averaged IMP level) are averaged.

    Returns columns ``arm, level, replicate, density, value, step``; ``density`` is the fraction
    of prunable weights kept, ``value`` in the metric's own units (accuracy as a fraction).
    """
    columns = ["arm", "level", "replicate", "density", "value", "step"]
    rows = measurements(table, split, metric, arms)
    if rows.empty:
        return pd.DataFrame(columns=columns)
    keys = ["arm", "level", "replicate"]
    rows = rows[rows["step"] == rows.groupby(keys, sort=False)["step"].transform("max")]
    last = (
        rows.groupby(keys, sort=False)
        .agg(density=("density", "mean"), value=("value", "mean"), step=("step", "max"))
        .reset_index()
    )
    return sort_by_arm(last[columns], arms, "level", "replicate")


def summary(table: pd.DataFrame, split: str = "test", metric: str = "accuracy", arms: Arms = Arms()) -> pd.DataFrame:
    """Final values aggregated over replicates, one row per (arm, level).

    Returns columns ``arm, level, density`` (mean fraction kept), ``percent_remaining``
    (``100 * density``), ``mean``, ``std`` (over replicates, ``ddof=1``, NaN when ``n == 1``)
    and ``n`` (replicates), in the units of ``value`` (accuracy as a fraction).
    """
    final = final_metrics(table, split, metric, arms)
    columns = ["arm", "level", "density", "percent_remaining", "mean", "std", "n"]
    if final.empty:
        return pd.DataFrame(columns=columns)
    grouped = final.groupby(["arm", "level"], sort=False)
    out = grouped.agg(
        density=("density", "mean"), mean=("value", "mean"), std=("value", "std"), n=("value", "size")
    ).reset_index()
    out["percent_remaining"] = 100.0 * out["density"]
    return sort_by_arm(out[columns], arms, "level")


def dense_reference(stats: pd.DataFrame, arms: Arms = Arms()) -> pd.Series | None:
    """The :func:`summary` row of the dense network: level 0 of the main arm, else the first arm (in
    legend order) whose level 0 keeps every weight; ``None`` when there is none."""
    level0 = stats[stats["level"] == 0]
    for arm in [arms.main, *arms.order(level0["arm"].unique())]:
        rows = level0[level0["arm"] == arm]
        if not rows.empty and (arm == arms.main or float(rows["density"].iloc[0]) > 1 - 1e-9):
            return rows.iloc[0]
    return None


MAIN_METRICS = ("accuracy", "mcc", "pearson", "f1", "spearman")  # a run's main metric: the first it reports


def main_metric(table: pd.DataFrame, split: str = "test") -> str:
    """The metric a run's tables and figures show: ``accuracy`` for images and most text tasks, else
    the first of :data:`MAIN_METRICS` the ``split`` rows hold (CoLA: ``mcc``; STS-B: ``pearson``)."""
    if table.empty or "metric" not in table:
        return "accuracy"
    held = set(table.loc[table["split"] == split, "metric"].unique())
    return next((m for m in MAIN_METRICS if m in held), "accuracy")


PERCENT = ("accuracy", "f1")  # shown in percent
TIMES_100 = ("mcc", "pearson", "spearman")  # correlations, shown x100 as GLUE reports them


def scale(metric: str) -> float:
    """Display factor: accuracies and F1 in percent, correlations x100 (GLUE), other metrics as they are."""
    return 100.0 if metric in PERCENT or metric in TIMES_100 else 1.0


def metric_label(split: str, metric: str) -> str:
    """``"Test accuracy (%)"``, ``"Test mcc (x100)"``."""
    unit = " (%)" if metric in PERCENT else " (x100)" if metric in TIMES_100 else ""
    return f"{split.capitalize()} {metric}{unit}"


def pm_cell(mean: float, std: float) -> str:
    """``mean ± std`` with two decimals, ``mean`` alone when ``std`` is NaN (one replicate)."""
    return f"{mean:.2f}" if math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def render(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    """Right-aligned text columns separated by two spaces, header first."""
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    return ["  ".join(text.rjust(width) for text, width in zip(r, widths)) for r in [header, *body]]


def format_summary(table: pd.DataFrame, split: str = "test", metric: str = "accuracy", arms: Arms = Arms()) -> str:
    """A text table for the terminal: one row per level, ``mean ± std`` of each arm as columns.

    Accuracies are printed in percent with two decimals; ``% weights`` is the mean percentage of
    prunable weights remaining (the main arm's where present, else all arms'); ``-`` marks an arm
    without that level.
    """
    stats = summary(table, split, metric, arms)
    if stats.empty:
        return f"no final {split} {metric} measurements yet"
    factor = scale(metric)
    order = arms.order(stats["arm"].unique())
    levels = sorted(stats["level"].unique())
    reference = stats[stats["arm"] == arms.main] if (stats["arm"] == arms.main).any() else stats
    remaining = stats.groupby("level")["percent_remaining"].mean()
    remaining.update(reference.groupby("level")["percent_remaining"].mean())

    def cell(arm: str, level: int) -> str:
        row = stats[(stats["arm"] == arm) & (stats["level"] == level)]
        if row.empty:
            return "-"
        return pm_cell(factor * row["mean"].iloc[0], factor * row["std"].iloc[0])

    header = ["level", "% weights", *order]
    body = [[str(level), f"{remaining[level]:.2f}", *(cell(arm, level) for arm in order)] for level in levels]
    unit = metric_label(split, metric)[len(split) + 1 + len(metric) :]  # " (%)", " (x100)" or ""
    title = f"final {split} {metric}{unit}, mean ± std over replicates"
    return "\n".join([title, *render(header, body)])
