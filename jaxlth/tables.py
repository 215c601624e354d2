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

# What a network costs (jaxlth.analysis.costs): every parameter, the prunable ones, those a mask keeps with
# every one outside it, total / nonzero, and multiply-adds per example of the dense and the masked network.
COSTS = ("total_params", "prunable_params", "nonzero_params", "compression", "dense_flops", "flops")


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


def summary(
    table: pd.DataFrame,
    split: str = "test",
    metric: str = "accuracy",
    arms: Arms = Arms(),
    costs: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Final values aggregated over replicates, one row per (arm, level).

    Returns columns ``arm, level, density`` (mean fraction kept), ``percent_remaining``
    (``100 * density``), ``mean``, ``std`` (over replicates, ``ddof=1``, NaN when ``n == 1``)
    and ``n`` (replicates), in the units of ``value`` (accuracy as a fraction). With ``costs`` (one
    row per network: ``arm, level, replicate``, coordinates, and cost columns, e.g. a lottery run's
    ``run.costs()``), each cost column follows, its mean over the replicates measured (NaN where no
    mask was counted): ``total_params``, ``nonzero_params``, ``compression``, ``flops``, ...
    """
    final = final_metrics(table, split, metric, arms)
    columns = ["arm", "level", "density", "percent_remaining", "mean", "std", "n"]
    extra = cost_columns(costs, table) if costs is not None else []
    if final.empty:
        return pd.DataFrame(columns=columns + extra)
    if extra:
        per_network = matching(costs, table).groupby(["arm", "level", "replicate"])[extra].mean().reset_index()
        final = final.merge(per_network, on=["arm", "level", "replicate"], how="left")
    grouped = final.groupby(["arm", "level"], sort=False)
    out = grouped.agg(
        density=("density", "mean"),
        mean=("value", "mean"),
        std=("value", "std"),
        n=("value", "size"),
        **{c: (c, "mean") for c in extra},
    ).reset_index()
    out["percent_remaining"] = 100.0 * out["density"]
    return sort_by_arm(out[columns + extra], arms, "level")


def cost_columns(costs: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    """The columns of :data:`COSTS` that ``costs`` holds (and ``table`` does not)."""
    return [c for c in COSTS if c in costs.columns and c not in table.columns]


def matching(costs: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``costs`` whose coordinates shared with ``table`` (``prune_fraction``, swept fields)
    take values ``table``'s rows take: one fraction's or setting's networks for its rows."""
    shared = [c for c in costs.columns if c in table.columns and c not in ("arm", "level", "replicate", *COSTS)]
    keep = np.ones(len(costs), bool)
    for column in shared:
        values = pd.to_numeric(table[column], errors="coerce").dropna().unique()
        mine = pd.to_numeric(costs[column], errors="coerce").to_numpy(float)
        keep &= np.isclose(mine[:, None], np.asarray(values, float)[None, :], rtol=0, atol=1e-9).any(axis=1)
    rows = costs[keep]
    return rows.astype({"level": int, "replicate": int})


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


def si(value: float, digits: int = 3) -> str:
    """A count in SI units, ``digits`` significant: ``40813184 -> "40.8M"``, ``266200 -> "266k"``."""
    for factor, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.{digits}g}{unit}"
    return f"{value:.{digits}g}"


def format_summary(
    table: pd.DataFrame,
    split: str = "test",
    metric: str = "accuracy",
    arms: Arms = Arms(),
    costs: pd.DataFrame | None = None,
) -> str:
    """A text table for the terminal: one row per level, ``mean ± std`` of each arm as columns.

    Accuracies are printed in percent with two decimals; ``% weights`` is the mean percentage of
    prunable weights remaining (the main arm's where present, else all arms'); ``-`` marks an arm
    without that level. With ``costs`` (:func:`summary`) the same networks' nonzero parameters,
    compression (total / nonzero parameters) and FLOPs (multiply-adds per example) follow ``% weights``.
    """
    stats = summary(table, split, metric, arms, costs)
    if stats.empty:
        return f"no final {split} {metric} measurements yet"
    factor = scale(metric)
    order = arms.order(stats["arm"].unique())
    levels = sorted(stats["level"].unique())
    main = stats["arm"] == arms.main
    reference = stats[main] if main.any() else stats

    def per_level(column: str) -> pd.Series:
        values = stats.groupby("level")[column].mean()
        values.update(reference.groupby("level")[column].mean())
        return values

    def cell(arm: str, level: int) -> str:
        row = stats[(stats["arm"] == arm) & (stats["level"] == level)]
        if row.empty:
            return "-"
        return pm_cell(factor * row["mean"].iloc[0], factor * row["std"].iloc[0])

    shown = {"% weights": (per_level("percent_remaining"), lambda v: f"{v:.2f}")}
    counted = [c for c in ("nonzero_params", "compression", "flops") if c in stats.columns]
    if counted and stats[counted].notna().any().all():
        shown["nonzero"] = (per_level("nonzero_params"), lambda v: f"{v:,.0f}")
        shown["compression"] = (per_level("compression"), lambda v: f"{v:.2f}x")
        shown["FLOPs"] = (per_level("flops"), si)

    def number(column: str, level: int) -> str:
        values, show = shown[column]
        return "-" if level not in values.index or np.isnan(values[level]) else show(values[level])

    header = ["level", *shown, *order]
    body = [[str(level), *(number(c, level) for c in shown), *(cell(arm, level) for arm in order)] for level in levels]
    unit = metric_label(split, metric)[len(split) + 1 + len(metric) :]  # " (%)", " (x100)" or ""
    title = f"final {split} {metric}{unit}, mean ± std over replicates"
    if "FLOPs" in shown and {"total_params", "dense_flops"} <= set(stats.columns):
        dense = stats[["total_params", "dense_flops"]].max()
        title += (
            f"\nnonzero parameters, compression (total / nonzero) and FLOPs (multiply-adds per example): "
            f"{arms.label(reference['arm'].iloc[0])}'s networks; dense {dense['total_params']:,.0f} "
            f"parameters, {si(dense['dense_flops'], 4)} FLOPs"
        )
    return "\n".join([title, *render(header, body)])
