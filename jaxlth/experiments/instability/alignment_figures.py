"""Barriers before and after permutation alignment (``instability.align``; Ainsworth et al. 2023).

Instability rows carry ``align`` (``none``, ``weights``, ``activations``, each maybe ``+repair``;
rows written before the column existed count as ``none``). One path per copies' spawn step, pair of successive levels,
pair of seeds and ticket-vs-reinit level.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from jaxlth import drawing
from jaxlth.analysis.alignment import ENTRIES, parse
from jaxlth.experiments.instability.arms import BETWEEN_LEVELS, COPIES, SEEDS, TICKET_VS_REINIT
from jaxlth.experiments.instability.barrier_tables import BARRIERS, percent_pm, rows_of

ALIGNMENT_FIGURE = "barrier_alignment.png"


def alignment_table(table: pd.DataFrame, metric: str = "barrier_frankle", split: str = "test") -> pd.DataFrame:
    """Barrier mean and std per path and alignment: columns ``path`` (``"copies k=K"``,
    ``"levels L-1-L"``, ``"seeds"``, ``"ticket-reinit L=L"``), ``align``, ``mean``, ``std``, ``n`` (errors as
    fractions)."""
    frames = []
    for arm in (COPIES, BETWEEN_LEVELS, SEEDS, TICKET_VS_REINIT):
        rows = rows_of(table, arm, align=None)
        rows = rows[(rows["metric"] == metric) & (rows["split"] == split)].copy()
        if rows.empty:
            continue
        if arm == COPIES:
            steps = pd.to_numeric(rows["spawn_step"], errors="coerce")
            rows["path"] = ["copies" if pd.isna(k) else f"copies k={int(k)}" for k in steps]
        elif arm == BETWEEN_LEVELS:
            rows["path"] = "levels " + rows["pair"].astype(str)
        elif arm == TICKET_VS_REINIT:
            rows["path"] = "ticket-reinit L=" + rows["level"].astype(int).astype(str)
        else:
            rows["path"] = "seeds"
        frames.append(rows)
    if not frames:
        return pd.DataFrame(columns=["path", "align", "mean", "std", "n"])
    rows = pd.concat(frames)
    out = rows.groupby(["path", "align"], sort=False)["value"].agg(["mean", "std", "count"]).reset_index()
    return out.rename(columns={"count": "n"})


def format_alignment(table: pd.DataFrame, metric: str = "barrier_frankle", split: str = "test") -> str:
    """The barriers (% error) of each path before and after each alignment, as a text table."""
    frame = alignment_table(table, metric, split)
    modes = [m for m in ENTRIES if m in set(frame["align"])]
    if frame.empty or modes == ["none"]:
        return ""
    lines = [
        f"{split} error barrier ({BARRIERS[metric]}) before and after aligning the hidden units (%)",
        f"{'path':>16}  " + "  ".join(f"{m:>14}" for m in modes),
    ]
    for path, rows in frame.groupby("path", sort=False):
        cells = {r.align: percent_pm(r.mean, r.std) for r in rows.itertuples()}
        lines.append(f"{path:>16}  " + "  ".join(f"{cells.get(m, '-'):>14}" for m in modes))
    return "\n".join(lines)


def barrier_alignment(table: pd.DataFrame, ax=None, metric: str = "barrier_frankle", split: str = "test"):
    """Grouped bars: each path's barrier without alignment and after each alignment (mean ± std)."""
    ax = drawing.new_axes(ax)
    frame = alignment_table(table, metric, split)
    paths = list(dict.fromkeys(frame["path"]))
    modes = [m for m in ENTRIES if m in set(frame["align"])]
    width = 0.8 / max(len(modes), 1)
    for i, mode in enumerate(modes):
        rows = frame[frame["align"] == mode].set_index("path").reindex(paths)
        ax.bar(
            np.arange(len(paths)) + (i - (len(modes) - 1) / 2) * width,
            100 * rows["mean"],
            width,
            yerr=100 * rows["std"].fillna(0.0),
            label=label(mode),
            capsize=2,
        )
    ax.set_xticks(np.arange(len(paths)), paths, rotation=30, ha="right")
    ax.set_ylabel(f"{split.capitalize()} error barrier (%)")
    ax.set_title("Barriers before and after permutation alignment")
    ax.grid(alpha=0.3, axis="y")
    ax.legend()
    return ax


def label(entry: str) -> str:
    """The legend label of an ``instability.align`` entry."""
    mode, repaired = parse(entry)
    text = "not aligned" if mode == "none" else f"aligned by {mode}"
    return text + " + REPAIR" if repaired else text
