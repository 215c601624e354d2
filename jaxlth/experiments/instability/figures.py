"""Tables and figures of the instability experiment (linear mode connectivity): barriers against the
spawn step, interpolation curves, successive IMP levels, perturbation, alignment, the paths from each
network's start to its trained end; the terminal report."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from jaxlth import drawing, tables
from jaxlth.experiments.instability.alignment_figures import (
    ALIGNMENT_FIGURE,
    alignment_table,
    barrier_alignment,
    format_alignment,
)
from jaxlth.experiments.instability.arms import BETWEEN_LEVELS, COPIES, PERTURB
from jaxlth.experiments.instability.barrier_tables import (
    BARRIERS,
    barriers,
    curves,
    key_of,
    noise_scale,
    percent_pm,
    rows_of,
    sort_key,
)
from jaxlth.experiments.instability.init_to_final_figures import (
    INIT_TO_FINAL_ERROR_FIGURE,
    INIT_TO_FINAL_LOSS_FIGURE,
    format_init_to_final,
    init_to_final_curves,
    init_to_final_table,
)

BARRIER_FIGURE = "barrier_vs_spawn_step.png"
CURVES_FIGURE = "interpolation_curves.png"
LEVELS_FIGURE = "barrier_between_levels.png"
PERTURB_FIGURE = "barrier_vs_perturbation.png"
__all__ = [
    "BARRIER_FIGURE",
    "CURVES_FIGURE",
    "LEVELS_FIGURE",
    "PERTURB_FIGURE",
    "BARRIERS",
    "barriers",
    "format_barriers",
    "barrier_vs_spawn_step",
    "interpolation_curves",
    "barrier_between_levels",
    "barrier_vs_perturbation",
    "save_instability_figures",
    "ALIGNMENT_FIGURE",
    "alignment_table",
    "format_alignment",
    "barrier_alignment",
    "noise_scale",
    "INIT_TO_FINAL_LOSS_FIGURE",
    "INIT_TO_FINAL_ERROR_FIGURE",
    "init_to_final_table",
    "format_init_to_final",
    "init_to_final_curves",
]


def format_barriers(table: pd.DataFrame) -> str:
    """Terminal tables of the barriers (in % error) of each analysis present in ``table``; a
    hyper-parameter sweep's for each setting (``lr=0.1: ...``)."""
    settings = tables.by_setting(table)
    if len(settings) > 1:
        return "\n\n".join(
            f"{label}:\n{format_barriers(rows.drop(columns=tables.setting_columns(rows)))}" for label, rows in settings
        )
    out = []
    for arm, title in (
        (COPIES, "instability: error barrier between copies (%)"),
        (BETWEEN_LEVELS, "barrier between successive IMP levels (%)"),
        (PERTURB, "barrier to the unperturbed network, by noise scale (%)"),
    ):
        frame = barriers(table, arm)
        if frame.empty:
            continue
        key = {COPIES: "spawn_step", BETWEEN_LEVELS: "level"}.get(arm, "noise_scale")
        wide = {}
        for r in frame.itertuples():
            k = getattr(r, key)
            k = int(k) if key == "spawn_step" and np.isfinite(k) else k
            wide.setdefault(k, {})[f"{r.split} {r.metric.split('_')[1]}"] = percent_pm(r.mean, r.std)
        columns = sorted({c for v in wide.values() for c in v})
        header = {"spawn_step": "spawn step", "level": "level", "noise_scale": "scale"}[key]
        lines = [title, f"{header:>10}  " + "  ".join(f"{c:>16}" for c in columns)]
        if arm == BETWEEN_LEVELS:
            lines[1] += "  matching"
        ordered = sorted(wide, key=float) if key == "noise_scale" else sorted(wide, key=sort_key)
        for k in ordered:
            text = f"{k:g}" if key == "noise_scale" else str(k)
            line = f"{text:>10}  " + "  ".join(f"{wide[k].get(c, '-'):>16}" for c in columns)
            if arm == BETWEEN_LEVELS:
                matching = rows_of(table, arm)
                matching = matching[(matching["metric"] == "matching") & (matching["level"] == k)]["value"]
                line += f"  {matching.mean():.0%}" if len(matching) else "  -"
            lines.append(line)
        out.append("\n".join(lines))
    out += [text for text in (format_alignment(table), format_init_to_final(table)) if text]
    return "\n\n".join(out) if out else "no barriers measured yet"


def _barriers_by_split(table: pd.DataFrame, arm: str, metric: str, what: str):
    """:func:`barriers` of ``arm`` and ``metric`` grouped by split; raises ValueError when there are none."""
    frame = barriers(table, arm)
    frame = frame[frame["metric"] == metric]
    if frame.empty:
        raise ValueError(f"the table holds no {what}")
    return frame.groupby("split")


def barrier_vs_spawn_step(table: pd.DataFrame, ax=None, metric: str = "barrier_frankle"):
    """Instability (barrier between copies, %) against the spawn step (symmetric log x axis)."""
    ax = drawing.new_axes(ax)
    by_split = _barriers_by_split(table, COPIES, metric, "barriers between copies")
    steps = by_split.obj["spawn_step"]
    for i, (split, rows) in enumerate(by_split):
        rows = rows.sort_values("spawn_step")
        x, y, s = rows["spawn_step"], 100 * rows["mean"], 100 * rows["std"].fillna(0)
        ax.plot(x, y, marker="o", color=f"C{i}", label=f"{split} error")
        ax.fill_between(x, y - s, y + s, color=f"C{i}", alpha=0.2, linewidth=0)
    ax.set_xscale("symlog", linthresh=max(1.0, float(steps[steps > 0].min()) if (steps > 0).any() else 1.0))
    ax.axhline(2.0, color="grey", linestyle=":", linewidth=1, label="2% (stable below)")
    ax.set_xlabel("spawn step k (iterations)")
    ax.set_ylabel(f"error barrier (%), {BARRIERS[metric]}")
    ax.set_title("Instability to SGD noise")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def interpolation_curves(table: pd.DataFrame, ax=None, split: str = "test", arm: str = COPIES):
    """Error (%) along the path between two networks against alpha, one line per spawn step.

    For ``arm="perturb"`` one line per noise scale, for other arms one per ``pair``.
    """
    ax = drawing.new_axes(ax)
    rows = curves(table, arm, split)
    if rows.empty:
        raise ValueError(f"the table holds no {split} interpolation curves for {arm!r}")
    key = key_of(arm)
    numeric = key != "pair"
    label = {"spawn_step": lambda v: f"k = {int(float(v))}", "noise_scale": lambda v: f"{v:g}"}.get(key, str)
    groups = list(rows.groupby(key))
    for i, (value, group) in enumerate(sorted(groups, key=lambda g: float(g[0]) if numeric else 0)):
        curve = group.groupby("alpha")["value"].agg(["mean", "std"]).reset_index()
        color = drawing.layer_colors(len(groups))[i]
        ax.plot(curve["alpha"], 100 * curve["mean"], color=color, label=label(value))
        ax.fill_between(
            curve["alpha"],
            100 * (curve["mean"] - curve["std"].fillna(0)),
            100 * (curve["mean"] + curve["std"].fillna(0)),
            color=color,
            alpha=0.15,
            linewidth=0,
        )
    ax.set_xlabel("interpolation coefficient α")
    ax.set_ylabel(f"{split} error (%)")
    ax.set_title(f"Linear interpolation ({split})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def barrier_between_levels(table: pd.DataFrame, ax=None, metric: str = "barrier_frankle"):
    """Barrier between levels L and L+1 and the test accuracy of L+1 against % weights remaining."""
    ax = drawing.new_axes(ax)
    rows = rows_of(table, BETWEEN_LEVELS)
    barrier = rows[(rows["metric"] == metric) & (rows["split"] == "test")]
    if barrier.empty:
        raise ValueError("the table holds no barriers between levels")
    by_level = (
        barrier.groupby("level")
        .agg(density=("density", "mean"), mean=("value", "mean"), std=("value", "std"))
        .reset_index()
    )
    x = 100 * by_level["density"]
    ax.plot(x, 100 * by_level["mean"], marker="o", color="C3", label=f"barrier L→L+1 ({BARRIERS[metric]})")
    ax.fill_between(
        x,
        100 * (by_level["mean"] - by_level["std"].fillna(0)),
        100 * (by_level["mean"] + by_level["std"].fillna(0)),
        color="C3",
        alpha=0.2,
        linewidth=0,
    )
    drawing.weights_axis(ax, x, "weights remaining at level L+1 (%)")
    ax.set_ylabel("test error barrier (%)", color="C3")
    ends = curves(table, BETWEEN_LEVELS, "test")
    ends = ends[ends["alpha"] == 1.0]
    if not ends.empty:
        acc = ends.groupby("level").agg(density=("density", "mean"), value=("value", "mean")).reset_index()
        twin = ax.twinx()
        twin.plot(100 * acc["density"], 100 * (1 - acc["value"]), marker="s", color="C0", label="test accuracy")
        twin.set_ylabel("test accuracy of level L+1 (%)", color="C0")
    ax.set_title("Successive IMP levels (Paul et al. 2023)")
    ax.grid(alpha=0.3)
    return ax


def barrier_vs_perturbation(table: pd.DataFrame, ax=None, metric: str = "barrier_frankle"):
    """Barrier between perturbed-then-trained and trained networks against the noise scale."""
    ax = drawing.new_axes(ax)
    for i, (split, rows) in enumerate(_barriers_by_split(table, PERTURB, metric, "perturbation barriers")):
        rows = rows.sort_values("noise_scale")
        ax.errorbar(
            rows["noise_scale"],
            100 * rows["mean"],
            yerr=100 * rows["std"].fillna(0),
            marker="o",
            color=f"C{i}",
            label=f"{split} error",
            capsize=3,
        )
    ax.set_xscale("log")
    ax.set_xlabel("noise scale (× layer weight norm)")
    ax.set_ylabel(f"error barrier (%), {BARRIERS[metric]}")
    ax.set_title("Robustness of the rewind point to perturbation")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def save_instability_figures(table: pd.DataFrame, directory: str, dpi: int = 150) -> list[str]:
    """Writes the figures of the instability analyses present in ``table``; returns their paths."""
    jobs = []
    if not barriers(table, COPIES).empty:
        jobs.append((BARRIER_FIGURE, barrier_vs_spawn_step))
        if not curves(table, COPIES, "test").empty:
            jobs.append((CURVES_FIGURE, interpolation_curves))
    if not barriers(table, BETWEEN_LEVELS).empty:
        jobs.append((LEVELS_FIGURE, barrier_between_levels))
    if not barriers(table, PERTURB).empty:
        jobs.append((PERTURB_FIGURE, barrier_vs_perturbation))
    frame = alignment_table(table)
    if not frame.empty and set(frame["align"]) != {"none"}:
        jobs.append((ALIGNMENT_FIGURE, barrier_alignment))
    if not init_to_final_table(table).empty:
        jobs.append((INIT_TO_FINAL_LOSS_FIGURE, functools.partial(init_to_final_curves, metric="loss")))
        jobs.append((INIT_TO_FINAL_ERROR_FIGURE, functools.partial(init_to_final_curves, metric="error")))
    return drawing.write_figures(directory, [(name, functools.partial(draw, table)) for name, draw in jobs], dpi)


def report(run, directory: str) -> tuple[str, list[str]]:
    """The barrier tables and the figures of the analyses present (a sweep's for each setting:
    figures ``*_lr0.1.png``)."""
    table, figures = run.table, []
    settings = tables.by_setting(table)
    for label, rows in settings:
        paths = save_instability_figures(rows, directory)
        figures += drawing.with_suffix(paths, label) if len(settings) > 1 else paths
    return format_barriers(table), figures
