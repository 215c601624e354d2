"""Table and figures of pruning at initialisation (Frankle et al. 2021's figures).

Rows carry ``method`` (``random``, ``magnitude``, ``snip``, ``grasp``, ``synflow``, ``uniform``,
``erk``; references ``imp``, ``lr_rewind``, ``finetune`` copied from lottery runs) and ``ablation``
(``none``, ``shuffle``, ``reinit``, ``invert``); level ``i`` is the ``i``-th target density.
"""

from __future__ import annotations

import math
import os

import pandas as pd

from jaxlth import drawing, storage, tables
from jaxlth.experiments.prune_at_init.arms import ARMS, METHOD_LABELS, REFERENCES

__all__ = [
    "PRUNE_AT_INIT_FIGURE",
    "ABLATIONS_FIGURE",
    "prune_at_init_table",
    "format_prune_at_init",
    "accuracy_vs_density",
    "save_prune_at_init_figures",
]
PRUNE_AT_INIT_FIGURE = "prune_at_init.png"
ABLATIONS_FIGURE = "prune_at_init_ablations.png"
ABLATION_STYLES = {"none": "-", "shuffle": "--", "reinit": ":", "invert": "-."}
ABLATION_LABELS = {"none": "", "shuffle": "layerwise shuffled", "reinit": "reinitialised", "invert": "inverted"}


def label(method: str, ablation: str = "none") -> str:
    """``"SNIP, layerwise shuffled"``: the legend label of a method under an ablation."""
    name = METHOD_LABELS.get(method, method)
    return name if ablation == "none" else f"{name}, {ABLATION_LABELS.get(ablation, ablation)}"


def prune_at_init_table(table: pd.DataFrame, split: str = "test", metric: str = "accuracy") -> pd.DataFrame:
    """Final ``metric`` per (method, ablation, level): columns ``method, ablation, level, density``
    (mean fraction kept), ``percent_remaining``, ``mean``, ``std`` (over replicates), ``n``."""
    rows = tables.with_columns(table, "method", "ablation")
    rows = rows[rows["method"].notna() & (rows["method"].astype(str) != "")]
    stats = tables.summary(rows, split, metric, ARMS)
    columns = ["method", "ablation", "level", "density", "percent_remaining", "mean", "std", "n"]
    if stats.empty:
        return pd.DataFrame(columns=columns)
    names = rows.drop_duplicates("arm").set_index("arm")
    stats["method"] = stats["arm"].map(names["method"])
    stats["ablation"] = stats["arm"].map(names["ablation"]).fillna("none").replace("", "none")
    order = {m: i for i, m in enumerate(METHOD_LABELS)}
    stats["_order"] = stats["method"].map(lambda m: order.get(m, len(order)))
    stats["_ablation"] = stats["ablation"].map(lambda a: list(ABLATION_STYLES).index(a) if a in ABLATION_STYLES else 9)
    stats = stats.sort_values(["_order", "method", "_ablation", "level"], kind="stable")
    return stats[columns].reset_index(drop=True)


def format_prune_at_init(table: pd.DataFrame, split: str = "test", metric: str = "accuracy") -> str:
    """A text table: one row per method (and ablation), one column per percentage of weights remaining,
    ``mean ± std`` of the final ``metric`` over replicates (accuracy in percent)."""
    stats = prune_at_init_table(table, split, metric)
    if stats.empty:
        return f"no final {split} {metric} measurements of pruning at initialisation yet"
    scale = tables.scale(metric)
    stats = stats.assign(
        percent=stats["percent_remaining"].map(lambda p: float(f"{p:.3g}")),
        row=[label(m, a) for m, a in zip(stats["method"], stats["ablation"])],
    )
    methods = stats[~stats["method"].isin(REFERENCES)]
    percents = sorted(set((methods if not methods.empty else stats)["percent"]), reverse=True)  # references: there
    body = []
    for name, rows in stats.groupby("row", sort=False):
        cells = {r.percent: tables.pm_cell(scale * r.mean, scale * r.std) for r in rows.itertuples()}
        body.append([name] + [cells.get(p, "-") for p in percents])
    title = f"pruning at initialisation: final {tables.metric_label(split, metric).lower()}, mean ± std over replicates"
    return "\n".join([title, *tables.render(["% weights remaining", *(f"{p:g}" for p in percents)], body)])


def _line(ax, rows: pd.DataFrame, scale: float, **style) -> None:
    rows = rows[rows["level"] > 0] if (rows["level"] > 0).any() else rows
    rows = rows.sort_values("density", ascending=False)
    x, mean, std = rows["percent_remaining"], scale * rows["mean"], scale * rows["std"].fillna(0.0)
    ax.plot(x, mean, marker=style.pop("marker", "o"), markersize=3, **style)
    if (rows["n"] > 1).any():
        ax.fill_between(x, mean - std, mean + std, color=style.get("color"), alpha=0.12, linewidth=0)


def accuracy_vs_density(
    table: pd.DataFrame,
    ax=None,
    split: str = "test",
    metric: str = "accuracy",
    ablations: bool = False,
    methods=None,
    title: str | None = None,
):
    """Final ``metric`` against weights remaining (log axis, dense on the left): one line per method,
    the references (IMP, LR rewinding) in black and grey; with ``ablations`` the ablated variants
    dashed/dotted in their method's colour. ``methods`` limits the PaI methods drawn."""
    ax = drawing.new_axes(ax)
    stats, scale = prune_at_init_table(table, split, metric), tables.scale(metric)
    pai = [m for m in dict.fromkeys(stats["method"]) if m not in REFERENCES]
    colors = {m: f"C{i % 10}" for i, m in enumerate(pai)}
    if ablations:  # the panels of one method: random pruning is the grey baseline
        colors["random"] = "0.7"
    for i, reference in enumerate(r for r in REFERENCES if r in set(stats["method"])):
        _line(
            ax,
            stats[stats["method"] == reference],
            scale,
            color=("black", "0.45", "0.7")[i],
            marker="s",
            label=label(reference),
            linestyle="-",
            linewidth=1.8,
        )
    for method in methods or pai:
        for ablation, rows in stats[stats["method"] == method].groupby("ablation", sort=False):
            if ablation != "none" and not ablations:
                continue
            _line(
                ax,
                rows,
                scale,
                color=colors.get(method, "C9"),
                linestyle=ABLATION_STYLES.get(ablation, "--"),
                label=label(method, ablation),
                marker="x" if ablations and method == "random" else "o",
            )
    pruned = stats[stats["level"] > 0]
    drawing.weights_axis(ax, pruned["percent_remaining"])
    ticks = pruned[~pruned["method"].isin(REFERENCES)]["percent_remaining"]
    if not ticks.empty:  # ticks at the methods' densities; the references' many levels only set the range
        drawing.percent_ticks(ax, ticks)
    ax.set_ylabel(tables.metric_label(split, metric))
    ax.set_title(title or "Pruning at initialisation")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return ax


def save_prune_at_init_figures(table: pd.DataFrame, directory: str, dpi: int = 150) -> list[str]:
    """Writes :data:`PRUNE_AT_INIT_FIGURE` (every method, no ablations) and, when ablations were run,
    :data:`ABLATIONS_FIGURE` (one panel per method: it, its ablations, random pruning and the
    references). Returns the paths written; uses no pyplot state."""
    from matplotlib.figure import Figure

    storage.makedirs(directory)
    stats = prune_at_init_table(table)
    if stats.empty:
        return []
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    accuracy_vs_density(table, ax=figure.add_subplot())
    written = [os.path.join(directory, PRUNE_AT_INIT_FIGURE)]
    storage.save_figure(figure, written[0], dpi=dpi)
    ablated = [m for m in dict.fromkeys(stats["method"]) if (stats[stats["method"] == m]["ablation"] != "none").any()]
    if ablated:
        columns = min(3, len(ablated))
        rows = math.ceil(len(ablated) / columns)
        figure = Figure(figsize=(4.2 * columns, 3.4 * rows), layout="constrained")
        for i, method in enumerate(ablated):
            baseline = [m for m in ("random",) if m in set(stats["method"]) and m != method]
            accuracy_vs_density(
                table,
                ax=figure.add_subplot(rows, columns, i + 1),
                ablations=True,
                methods=[method, *baseline],
                title=label(method),
            )
        written.append(os.path.join(directory, ABLATIONS_FIGURE))
        storage.save_figure(figure, written[-1], dpi=dpi)
    return written


def report(run, directory: str) -> tuple[str, list[str]]:
    """The accuracy of every method and ablation per density, and the figures."""
    table = run.table
    return format_prune_at_init(table), save_prune_at_init_figures(table, directory)
