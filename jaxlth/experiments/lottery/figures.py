"""Tables and figures of the lottery experiment: accuracy against weights remaining (and against
FLOPs: what the masks cost, :meth:`~jaxlth.experiments.lottery.reader.LotteryRun.costs`), per-layer
mask density, a prune-fraction sweep's matching levels (:mod:`.sweep_figures`), the terminal report."""

from __future__ import annotations

import functools
import math
import os

import pandas as pd

from jaxlth import drawing, processes, tables
from jaxlth.errors import UserError
from jaxlth.experiments.lottery.arms import ARMS, IMP
from jaxlth.experiments.lottery.sweep_figures import (
    MATCHING_FIGURE,
    SWEEP_FIGURE,
    format_prune_sweep,
    largest_matching_fraction,
    matching_grid,
    prune_sweep_table,
    save_sweep_figures,
    sweep_accuracy,
)

ACCURACY_FIGURE = "accuracy_vs_weights.png"
FLOPS_FIGURE = "accuracy_vs_flops.png"
LAYER_DENSITY_FIGURE = "layer_density.png"
__all__ = [
    "ACCURACY_FIGURE",
    "FLOPS_FIGURE",
    "LAYER_DENSITY_FIGURE",
    "layer_density",
    "save_figures",
    "SWEEP_FIGURE",
    "MATCHING_FIGURE",
    "prune_sweep_table",
    "largest_matching_fraction",
    "format_prune_sweep",
    "sweep_accuracy",
    "matching_grid",
    "save_sweep_figures",
]


def mask_rows(table: pd.DataFrame, arm: str = IMP) -> pd.DataFrame:
    """The per-layer mask density rows of ``arm`` (``layer`` set), with clean dtypes."""
    if "layer" not in table.columns:
        return table.iloc[0:0]
    rows = table[(table["split"] == "mask") & (table["metric"] == "density") & (table["arm"] == arm)]
    rows = rows[rows["layer"].notna() & (rows["layer"].astype(str) != "")]
    return rows.astype({"level": int, "density": float, "value": float})


def layer_density(table: pd.DataFrame, ax=None, arm: str = IMP):
    """Percentage of weights kept in each prunable layer of ``arm``'s mask against the level.

    One line per layer (mean over replicates), the overall density dashed in black, log y axis.
    Returns the Axes.

    Raises:
      ValueError: when the table holds no per-layer mask density rows of ``arm``.
    """
    from matplotlib import ticker

    rows = mask_rows(table, arm)
    if rows.empty:
        raise ValueError(f"the results table holds no per-layer mask densities of arm {arm!r}")
    ax = drawing.new_axes(ax)
    layers = list(pd.unique(rows["layer"]))
    colors = drawing.layer_colors(len(layers))
    for layer, color in zip(layers, colors):
        by_level = rows[rows["layer"] == layer].groupby("level")["value"].mean().sort_index()
        name = str(layer).removesuffix("/kernel")
        ax.plot(
            by_level.index,
            100.0 * by_level.to_numpy(),
            marker="o",
            markersize=3,
            linewidth=1.2,
            color=color,
            label=name,
        )
    overall = rows.groupby("level")["density"].mean().sort_index()
    ax.plot(
        overall.index, 100.0 * overall.to_numpy(), color="black", linestyle="--", linewidth=1.8, label="all prunable"
    )
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.set_xlabel("Pruning level")
    ax.set_ylabel("Weights remaining in layer (%)")
    ax.set_title(f"Per-layer density of the {ARMS.label(arm)} mask")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize="x-small", ncol=max(1, math.ceil((len(layers) + 1) / 16)))
    return ax


def start_notes(config: dict) -> tuple[str, str | None]:
    """``(dense label, title)`` of the accuracy figure of a run with ``config`` (a ``config.json`` dict):
    a run from ``model.pretrained`` names its dense level the fine-tuned pretrained network and its
    title says what the levels rewind to and where their masks came from; other runs: ``("dense", None)``."""
    pretrained = config.get("model", {}).get("pretrained", "")
    lottery = config.get("lottery", {})
    notes = []
    if pretrained:
        rewind = lottery.get("rewind", "0it")
        notes.append(f"rewound to {'the pretrained weights' if rewind == 'pretrained' else rewind}")
    if lottery.get("mask_source", ""):
        notes.append(f"masks of {os.path.basename(lottery['mask_source'].rstrip('/')) or lottery['mask_source']}")
    title = f"Test accuracy vs. weights remaining ({', '.join(notes)})" if notes else None
    return ("pretrained, fine-tuned" if pretrained else "dense"), title


def save_figures(
    table: pd.DataFrame,
    directory: str,
    dpi: int = 150,
    config: dict | None = None,
    costs: pd.DataFrame | None = None,
) -> list[str]:
    """Writes :data:`ACCURACY_FIGURE` and :data:`LAYER_DENSITY_FIGURE` into ``directory``, and with
    ``costs`` (``run.costs()``) :data:`FLOPS_FIGURE`: the accuracy against each arm's FLOPs.

    The directory is created; a figure whose rows are absent (no test accuracy yet, no mask
    rows) is skipped silently. ``config`` (the run's ``config.json``) marks a pretrained start and
    carried masks (:func:`start_notes`). Returns the paths written. Uses no pyplot state.
    """
    jobs, metric = [], tables.main_metric(table)
    stats = tables.summary(table, metric=metric, arms=ARMS, costs=costs)
    if not stats.empty:
        dense_label, title = start_notes(config or {})
        if title and metric != "accuracy":
            title = title.replace("Test accuracy", f"Test {metric}")
        draw = functools.partial(
            drawing.accuracy_vs, table, metric=metric, arms=ARMS, title=title, dense_label=dense_label
        )
        jobs.append((ACCURACY_FIGURE, draw))
        if costs is not None and stats["flops"].notna().any():
            flops_title = title.replace("weights remaining", "FLOPs") if title else None
            jobs.append((FLOPS_FIGURE, functools.partial(draw, x="flops", costs=costs, title=flops_title)))
    if not mask_rows(table).empty:
        jobs.append((LAYER_DENSITY_FIGURE, functools.partial(layer_density, table)))
    return drawing.write_figures(directory, jobs, dpi)


def report(run, directory: str) -> tuple[str, list[str]]:
    """The accuracy table (with each level's nonzero parameters, compression and FLOPs) and figures;
    for a prune-fraction sweep, which levels of each fraction are matching, then each fraction's table
    (figures ``*_p<fraction>.png``); for a hyper-parameter sweep, all of it for each setting
    (``lr=0.1: ...``, figures ``*_lr0.1.png``). Costs that cannot be counted (a model the config
    does not rebuild) leave the tables without them, with one line that says why."""
    if processes.count() > 1:  # only this process reports: reading the masks (Orbax) would wait for the others
        costs, note = None, "\n(costs not counted in a run of several processes: jaxlth.results.load(WORKDIR).costs())"
    else:
        try:
            costs, note = run.costs(), ""
        except UserError as e:
            costs, note = None, f"\n(costs not counted: {e})"
    settings = tables.by_setting(run.table)
    if len(settings) == 1:
        text, figures = report_of(settings[0][1], run.config, directory, costs)
        return text + note, figures
    texts, figures = [], []
    for label, rows in settings:
        text, paths = report_of(rows, run.config, directory, costs)
        texts.append(f"{label}:\n{text}")
        figures += drawing.with_suffix(paths, label)
    return "\n\n".join(texts) + note, figures


def report_of(
    table: pd.DataFrame, config: dict, directory: str, costs: pd.DataFrame | None = None
) -> tuple[str, list[str]]:
    """:func:`report` of the rows of one setting (``costs``: every network's, matched to these rows)."""
    fractions = sorted(table["prune_fraction"].dropna().unique()) if "prune_fraction" in table else []
    if len(fractions) <= 1:
        text = tables.format_summary(table, metric=tables.main_metric(table), arms=ARMS, costs=costs)
        return text, save_figures(table, directory, config=config, costs=costs)
    texts, figures = [format_prune_sweep(table)], save_sweep_figures(table, directory)
    for p in fractions:
        rows = table[table["prune_fraction"] == p]
        texts.append(f"prune fraction {p:g}: " + tables.format_summary(rows, arms=ARMS, costs=costs))
        figures += drawing.with_suffix(save_figures(rows, directory, config=config, costs=costs), f"p={p:g}")
    return "\n\n".join(texts), figures
