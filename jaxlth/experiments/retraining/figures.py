"""Figures and tables of the retraining experiment (Paul et al. 2023: retraining finds new small weights)."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from jaxlth import drawing, tables
from jaxlth.experiments.retraining.arms import ARMS, IMP, NO_RETRAIN

__all__ = [
    "SMALL_WEIGHTS_FIGURE",
    "NO_RETRAIN_FIGURE",
    "retraining_table",
    "format_retraining",
    "small_weights",
    "save_retraining_figures",
]
SMALL_WEIGHTS_FIGURE = "retraining_small_weights.png"
NO_RETRAIN_FIGURE = "no_retrain_accuracy.png"
MEASURES = {
    "pruned_were_smallest_trained": "pruned at L+1: among the smallest of w_{L-1}",
    "pruned_were_smallest_rewind": "pruned at L+1: among the smallest at the rewind point",
    "chance": "chance (random choice)",
    "rank_correlation": "Spearman rank correlation |w_{L-1}| vs |w_L|",
    "overlap_with_imp": "no-retraining mask vs IMP mask (Jaccard)",
}


def retraining_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per level: the mean over replicates of every measure of :data:`MEASURES`, and the final test
    accuracy of IMP and of the no-retraining control (NaN where absent)."""
    rows = table[(table["experiment"] == "retraining") & (table["split"] == "mask")]
    rows = rows[rows["metric"].isin(list(MEASURES))].astype({"level": int, "value": float})
    if rows.empty:
        return pd.DataFrame(columns=["level", *MEASURES])
    out = rows.pivot_table(index="level", columns="metric", values="value", aggfunc="mean")
    out = out.reindex(columns=list(MEASURES))
    stats = tables.summary(table, arms=ARMS)
    for arm in (IMP, NO_RETRAIN):
        accuracy = stats[stats["arm"] == arm].set_index("level")["mean"]
        out[f"{arm}_accuracy"] = accuracy.reindex(out.index)
    return out.reset_index()


def format_retraining(table: pd.DataFrame) -> str:
    """Text for the terminal: one row per level (fractions and accuracies in %)."""
    frame = retraining_table(table)
    if frame.empty:
        return "no retraining measurements yet"
    header = [
        "level",
        "smallest(w_L-1)",
        "smallest(rewind)",
        "chance",
        "rank corr",
        "overlap no-retrain",
        "acc imp",
        "acc no-retrain",
    ]

    def pct(value) -> str:
        return "-" if pd.isna(value) else f"{100 * value:.1f}"

    body = [
        [
            str(int(r["level"])),
            pct(r["pruned_were_smallest_trained"]),
            pct(r["pruned_were_smallest_rewind"]),
            pct(r["chance"]),
            "-" if pd.isna(r["rank_correlation"]) else f"{r['rank_correlation']:.3f}",
            pct(r["overlap_with_imp"]),
            pct(r[f"{IMP}_accuracy"]),
            pct(r[f"{NO_RETRAIN}_accuracy"]),
        ]
        for _, r in frame.iterrows()
    ]
    title = (
        "what retraining is for: % of the weights level L+1 prunes that were already among the smallest, "
        "rank correlation of |w| across retraining, and pruning without retraining (mean over replicates)"
    )
    return "\n".join([title, *tables.render(header, body)])


def small_weights(table: pd.DataFrame, ax=None):
    """The measures of :data:`MEASURES` against the level."""
    frame = retraining_table(table)
    if frame.empty:
        raise ValueError("the results table holds no retraining measurements")
    ax = drawing.new_axes(ax)
    for i, (metric, label) in enumerate(MEASURES.items()):
        values = frame[metric].to_numpy(float)
        if np.isnan(values).all():
            continue
        ax.plot(
            frame["level"],
            values,
            marker="o",
            color=f"C{i}",
            label=label,
            linestyle="--" if metric == "chance" else "-",
        )
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("Pruning level L")
    ax.set_ylabel("Fraction / correlation")
    ax.set_title("Retraining makes new small weights")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="x-small")
    return ax


def save_retraining_figures(table: pd.DataFrame, directory: str, dpi: int = 150) -> list[str]:
    """Writes :data:`SMALL_WEIGHTS_FIGURE` and, once the control is trained, :data:`NO_RETRAIN_FIGURE`."""
    jobs = []
    if not retraining_table(table).empty:
        jobs.append((SMALL_WEIGHTS_FIGURE, functools.partial(small_weights, table)))
    stats = tables.summary(table, arms=ARMS)
    if (stats["arm"] == NO_RETRAIN).any():
        jobs.append((NO_RETRAIN_FIGURE, functools.partial(drawing.accuracy_vs_weights, table, arms=ARMS)))
    return drawing.write_figures(directory, jobs, dpi)


def report(run, directory: str) -> tuple[str, list[str]]:
    """The table of the measures per level and the figures."""
    table = run.table
    return format_retraining(table), save_retraining_figures(table, directory)
