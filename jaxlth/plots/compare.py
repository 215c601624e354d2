"""Several runs side by side: IMP accuracy of lottery runs against the weights remaining, and the
instability (error barrier) of each run's rewind point, e.g. rewind points pretrained on the full
data, on a random subset and on the easiest examples by EL2N (Paul et al. 2022).

Every function takes ``{label: table}`` (``jaxlth.results.load(workdir).table`` of each run).
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from jaxlth import arms  # noqa: F401  (used as @arms in a pandas query)
from jaxlth.plots.common import _new_axes, _render, _weights_axis, summary, write_figures
from jaxlth.plots.instability import barriers

COMPARE_FIGURE = "compare_accuracy_vs_weights.png"
BARRIER_COMPARE_FIGURE = "compare_rewind_barrier.png"


def comparison_table(lotteries: dict[str, pd.DataFrame], split: str = "test") -> pd.DataFrame:
    """One row per (run, level) of IMP: ``percent_remaining``, ``mean``, ``std``, ``n`` (accuracy as a fraction)."""
    parts = [summary(table, split).query("arm == @arms.IMP").assign(run=label) for label, table in lotteries.items()]
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame(columns=["run", "level", "percent_remaining", "mean", "std", "n"])
    return pd.concat(parts, ignore_index=True)[["run", "level", "percent_remaining", "mean", "std", "n"]]


def rewind_barrier_table(instabilities: dict[str, pd.DataFrame], split: str = "test",
                         metric: str = "barrier_frankle") -> pd.DataFrame:
    """One row per run: the error barrier between copies spawned at its (first) spawn step."""
    rows = []
    for label, table in instabilities.items():
        found = barriers(table)
        found = found[(found["split"] == split) & (found["metric"] == metric)]
        if not found.empty:
            first = found.sort_values("spawn_step").iloc[0]
            rows.append({"run": label, "spawn_step": first["spawn_step"], "mean": first["mean"],
                         "std": first["std"], "n": first["n"]})
    return pd.DataFrame(rows, columns=["run", "spawn_step", "mean", "std", "n"])


def format_comparison(lotteries: dict[str, pd.DataFrame], instabilities: dict[str, pd.DataFrame] | None = None) -> str:
    """Text: final IMP test accuracy (%) per level (rows) and run (columns), then the rewind barriers."""
    stats = comparison_table(lotteries)
    lines = []
    if not stats.empty:
        labels = list(lotteries)
        body = []
        for level, rows in stats.groupby("level"):
            cells = []
            for label in labels:
                hit = rows[rows["run"] == label]
                cells.append("-" if hit.empty else f"{100 * hit['mean'].iloc[0]:.2f}" + (
                    "" if pd.isna(hit["std"].iloc[0]) else f" ± {100 * hit['std'].iloc[0]:.2f}"))
            body.append([str(int(level)), f"{rows['percent_remaining'].mean():.2f}", *cells])
        lines += ["final IMP test accuracy (%), mean ± std over replicates",
                  *_render(["level", "% weights", *labels], body)]
    found = rewind_barrier_table(instabilities or {})
    if not found.empty:
        body = [[r["run"], str(int(r["spawn_step"])), f"{100 * r['mean']:.2f}" +
                 ("" if pd.isna(r["std"]) else f" ± {100 * r['std']:.2f}")] for _, r in found.iterrows()]
        lines += ["", "instability of the rewind point: test error barrier between copies (%)",
                  *_render(["run", "step", "barrier"], body)]
    return "\n".join(lines) if lines else "nothing to compare yet"


def accuracy_comparison(lotteries: dict[str, pd.DataFrame], split: str = "test", ax=None):
    """Final IMP ``split`` accuracy against the percentage of weights remaining, one line per run."""
    ax = _new_axes(ax)
    stats = comparison_table(lotteries, split)
    for i, label in enumerate(lotteries):
        rows = stats[stats["run"] == label].sort_values("level")
        if rows.empty:
            continue
        x, y, e = rows["percent_remaining"], 100 * rows["mean"], 100 * rows["std"].fillna(0)
        ax.plot(x, y, marker="o", color=f"C{i}", label=label)
        ax.fill_between(x, y - e, y + e, color=f"C{i}", alpha=0.15)
    _weights_axis(ax, stats["percent_remaining"])
    if not stats.empty:
        ax.legend()
    ax.set_ylabel(f"final {split} accuracy (%)")
    ax.set_title("IMP from each rewind point")
    return ax


def barrier_comparison(instabilities: dict[str, pd.DataFrame], ax=None):
    """The test error barrier of each run's rewind point, one bar per run (± std over replicates)."""
    ax = _new_axes(ax)
    found = rewind_barrier_table(instabilities)
    x = np.arange(len(found))
    ax.bar(x, 100 * found["mean"], yerr=100 * found["std"].fillna(0), color=[f"C{i}" for i in range(len(found))])
    ax.set_xticks(x, list(found["run"]))
    ax.set_ylabel("test error barrier between copies (%)")
    ax.set_title("instability of the rewind point")
    return ax


def save_comparison_figures(lotteries: dict[str, pd.DataFrame], directory: str,
                            instabilities: dict[str, pd.DataFrame] | None = None) -> list[str]:
    jobs = [(COMPARE_FIGURE, functools.partial(accuracy_comparison, lotteries))]
    if instabilities:
        jobs.append((BARRIER_COMPARE_FIGURE, functools.partial(barrier_comparison, instabilities)))
    return write_figures(directory, jobs)
