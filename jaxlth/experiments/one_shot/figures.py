"""Table and figure of the one-shot experiment: one magnitude pruning of the dense network per target.

Rows of arm ``one_shot`` (level ``i`` for the ``i``-th target, ``target_density`` the fraction of
prunable weights asked for) and the dense network (arm ``dense``, level 0).
"""

from __future__ import annotations

import functools

import pandas as pd

from jaxlth import drawing, tables
from jaxlth.experiments.one_shot.arms import ARMS, DENSE, ONE_SHOT
from jaxlth.legend import MAIN

ONE_SHOT_FIGURE = "accuracy_vs_weights.png"
__all__ = ["ONE_SHOT_FIGURE", "format_one_shot", "save_one_shot_figures"]


def _targets(table: pd.DataFrame) -> pd.Series:
    """The target density (fraction) of each level of the one-shot arm, indexed by level."""
    rows = tables.with_columns(table[table["arm"] == ONE_SHOT], "target_density").dropna(subset=["level"])
    target = pd.to_numeric(rows["target_density"], errors="coerce")
    return target.groupby(rows["level"].astype(int)).first()


def format_one_shot(table: pd.DataFrame, split: str = "test", metric: str = "accuracy") -> str:
    """A text table for the terminal: one row per target density of the one-shot arm.

    Columns: ``target %`` (the density asked for, in percent; ``-`` when the table has no
    ``target_density``), ``% weights`` (the mean percentage actually kept), the final ``metric``
    as ``mean ± std`` over replicates (accuracy in percent) and its difference to the dense network
    (``-`` without one), whose value the title gives.
    """
    stats = tables.summary(table, split, metric, ARMS)
    pruned = stats[stats["arm"] == ONE_SHOT].sort_values("level")
    if pruned.empty:
        return f"no final {split} {metric} measurements of one-shot pruning yet"
    scale = tables.scale(metric)
    unit = " (%)" if metric == "accuracy" else ""
    title = f"one-shot magnitude pruning: final {split} {metric}{unit}, mean ± std over replicates"
    dense = tables.dense_reference(stats, ARMS)
    if dense is not None:
        title += f"; dense {tables.pm_cell(scale * dense['mean'], scale * dense['std'])}"
    targets = _targets(table)

    def target(level: int) -> str:
        value = targets.get(level)
        return "-" if value is None or pd.isna(value) else f"{100 * value:.2f}"

    body = []
    for row in pruned.itertuples():
        delta = "-" if dense is None else f"{scale * (row.mean - dense['mean']):+.2f}"
        cell = tables.pm_cell(scale * row.mean, scale * row.std)
        body.append([target(row.level), f"{row.percent_remaining:.2f}", cell, delta])
    return "\n".join([title, *tables.render(["target %", "% weights", metric, "vs dense"], body)])


def save_one_shot_figures(table: pd.DataFrame, directory: str, dpi: int = 150) -> list[str]:
    """Writes :data:`ONE_SHOT_FIGURE` into ``directory``: the one-shot arm against weights remaining.

    The dense network (arm ``dense``) is the grey band (see
    :func:`jaxlth.drawing.accuracy_vs_weights`); other arms are left out. The directory is created; without final test
    accuracies of the one-shot arm nothing is drawn. Returns the paths written. Uses no pyplot state.
    """
    rows = table[table["arm"].isin([ONE_SHOT, DENSE, MAIN])]  # tables of older releases name the dense arm main
    jobs = []
    if (tables.summary(rows, arms=ARMS)["arm"] == ONE_SHOT).any():
        title = "One-shot magnitude pruning: test accuracy vs. weights remaining"
        jobs.append((ONE_SHOT_FIGURE, functools.partial(drawing.accuracy_vs_weights, rows, title=title, arms=ARMS)))
    return drawing.write_figures(directory, jobs, dpi)


def report(run, directory: str) -> tuple[str, list[str]]:
    """The table of the target densities and the figure."""
    table = run.table
    return format_one_shot(table), save_one_shot_figures(table, directory)
