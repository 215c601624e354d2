"""Tables and figures of the data diet experiment: final test accuracy against the fraction of the
training set pruned, one line per score (Paul et al. 2021, Fig. 1)."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from jaxlth import drawing, tables

__all__ = [
    "DATA_DIET_FIGURE",
    "diet_final",
    "data_diet_table",
    "format_data_diet",
    "data_diet_curve",
    "save_data_diet_figures",
]
DATA_DIET_FIGURE = "data_diet.png"
FULL = "none"  # the score of the full-data reference rows
LABELS = {"el2n": "EL2N", "grand": "GraNd", "forgetting": "forgetting", "random": "random pruning"}


def diet_final(table: pd.DataFrame, split: str = "test", metric: str = "accuracy") -> pd.DataFrame:
    """The last ``split``/``metric`` value of every (score, pruned_fraction, replicate)."""
    columns = ["score", "pruned_fraction", "replicate", "value", "step"]
    if "score" not in table.columns:
        return pd.DataFrame(columns=columns)
    rows = table[(table["experiment"] == "data_diet") & (table["split"] == split) & (table["metric"] == metric)]
    rows = rows.dropna(subset=["score", "pruned_fraction", "replicate", "value"])
    if rows.empty:
        return pd.DataFrame(columns=columns)
    rows = rows.astype({"pruned_fraction": float, "replicate": int, "step": int, "value": float})
    last = rows.sort_values("step", kind="stable").groupby(["score", "pruned_fraction", "replicate"]).tail(1)
    return last[columns].sort_values(["score", "pruned_fraction", "replicate"]).reset_index(drop=True)


def data_diet_table(table: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """One row per (score, pruned_fraction): mean and sample std over replicates of the final
    ``split`` accuracy (a fraction) and ``n``; the full-data reference (``score="none"``, fraction 0)
    is repeated into every score's line at fraction 0."""
    final = diet_final(table, split)
    columns = ["score", "pruned_fraction", "mean", "std", "n"]
    if final.empty:
        return pd.DataFrame(columns=columns)
    full = final[final["score"] == FULL]
    parts = [final[final["score"] != FULL]]
    parts += [full.assign(score=s) for s in final["score"].unique() if s != FULL]
    stats = (
        pd.concat(parts)
        .groupby(["score", "pruned_fraction"])["value"]
        .agg(mean="mean", std=lambda v: v.std(ddof=1) if len(v) > 1 else np.nan, n="size")
        .reset_index()
    )
    if stats.empty and not full.empty:
        stats = (
            full.groupby("pruned_fraction")["value"]
            .agg(mean="mean", n="size")
            .reset_index()
            .assign(score=FULL, std=np.nan)
        )
    return stats[columns].sort_values(["score", "pruned_fraction"]).reset_index(drop=True)


def format_data_diet(table: pd.DataFrame, split: str = "test") -> str:
    """Text for the terminal: final accuracy (%) per pruned fraction (rows) and score (columns)."""
    stats = data_diet_table(table, split)
    if stats.empty:
        return "no data diet results yet"
    scores = [s for s in ("el2n", "grand", "forgetting", "random") if s in set(stats["score"])]
    scores += sorted(set(stats["score"]) - set(scores))
    body = []
    for fraction in sorted(stats["pruned_fraction"].unique()):
        cells = []
        for score in scores:
            hit = stats[(stats["score"] == score) & (stats["pruned_fraction"] == fraction)]
            if hit.empty:
                cells.append("-")
            else:
                r = hit.iloc[0]
                cells.append(f"{100 * r['mean']:.2f}" + ("" if pd.isna(r["std"]) else f" ± {100 * r['std']:.2f}"))
        body.append([f"{100 * fraction:.0f}", *cells])
    title = f"data diet: final {split} accuracy (%) by % of the training set pruned (mean ± std over replicates)"
    return "\n".join([title, *tables.render(["% pruned", *[LABELS.get(s, s) for s in scores]], body)])


def data_diet_curve(table: pd.DataFrame, split: str = "test", ax=None):
    """Final ``split`` accuracy against the percentage of training data pruned, one line per score."""
    ax = drawing.new_axes(ax)
    stats = data_diet_table(table, split)
    for i, (score, rows) in enumerate(stats.groupby("score", sort=True)):
        rows = rows.sort_values("pruned_fraction")
        x, y, e = 100 * rows["pruned_fraction"], 100 * rows["mean"], 100 * rows["std"].fillna(0)
        style = "--" if score == "random" else "-"
        ax.plot(x, y, style, marker="o", color=f"C{i}", label=LABELS.get(score, score))
        ax.fill_between(x, y - e, y + e, color=f"C{i}", alpha=0.15)
    ax.set_xlabel("% of the training set pruned")
    ax.set_ylabel(f"final {split} accuracy (%)")
    ax.set_title("training on a data diet")
    if not stats.empty:
        ax.legend()
    return ax


def save_data_diet_figures(table: pd.DataFrame, directory: str) -> list[str]:
    return drawing.write_figures(directory, [(DATA_DIET_FIGURE, functools.partial(data_diet_curve, table))])


def report(run, directory: str) -> tuple[str, list[str]]:
    """The accuracy per pruned fraction and score, and the figure."""
    table = run.table
    return format_data_diet(table), save_data_diet_figures(table, directory)
