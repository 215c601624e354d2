"""Compare runs: ``python -m jaxlth.compare --out DIR LABEL=LOTTERY_WORKDIR ... [--instability LABEL=WORKDIR ...]``.

Prints the final IMP test accuracy of each lottery run per level, side by side, and the error
barrier of each instability run's first spawn step (with ``instability.spawn_from=source_rewind``:
the instability of that lottery run's rewind point), and writes the figures
``compare_accuracy_vs_weights.png`` and ``compare_rewind_barrier.png`` into ``DIR``; the tables and
figures are functions of ``{label: table}`` (``jaxlth.plots.format_comparison``, ...). E.g. rewind
points pretrained on the full data, a random subset and the easiest examples (Paul et al. 2022)::

    python -m jaxlth.compare --out runs/diet_compare full=runs/lenet_diet_full \\
        random=runs/lenet_diet_random el2n=runs/lenet_diet_el2n \\
        --instability full=runs/lenet_diet_full_lmc --instability el2n=runs/lenet_diet_el2n_lmc
"""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Sequence

import numpy as np
import pandas as pd

from jaxlth import drawing, results, tables
from jaxlth.errors import UserError
from jaxlth.experiments.instability.figures import barriers
from jaxlth.experiments.lottery.arms import ARMS, IMP

COMPARE_FIGURE = "compare_accuracy_vs_weights.png"
BARRIER_COMPARE_FIGURE = "compare_rewind_barrier.png"


def imp_rows(stats: pd.DataFrame) -> pd.DataFrame:
    """The IMP rows of a summary."""
    return stats[stats["arm"] == IMP]


def comparison_table(
    lotteries: dict[str, pd.DataFrame], split: str = "test", arms: Sequence[str] = (IMP,)
) -> pd.DataFrame:
    """One row per (run, arm, level) of ``arms`` (default IMP alone): ``percent_remaining``, ``mean``,
    ``std``, ``n`` (accuracy as a fraction)."""
    columns = ["run", "arm", "level", "percent_remaining", "mean", "std", "n"]
    parts = []
    for label, table in lotteries.items():
        stats = tables.summary(table, split, arms=ARMS)
        parts.append(stats[stats["arm"].isin(arms)].assign(run=label))
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns]


def rewind_barrier_table(
    instabilities: dict[str, pd.DataFrame], split: str = "test", metric: str = "barrier_frankle"
) -> pd.DataFrame:
    """One row per run: the error barrier between copies spawned at its (first) spawn step."""
    rows = []
    for label, table in instabilities.items():
        found = barriers(table)
        found = found[(found["split"] == split) & (found["metric"] == metric)]
        if not found.empty:
            first = found.sort_values("spawn_step").iloc[0]
            rows.append(
                {
                    "run": label,
                    "spawn_step": first["spawn_step"],
                    "mean": first["mean"],
                    "std": first["std"],
                    "n": first["n"],
                }
            )
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
                cells.append(
                    "-"
                    if hit.empty
                    else f"{100 * hit['mean'].iloc[0]:.2f}"
                    + ("" if pd.isna(hit["std"].iloc[0]) else f" ± {100 * hit['std'].iloc[0]:.2f}")
                )
            body.append([str(int(level)), f"{rows['percent_remaining'].mean():.2f}", *cells])
        lines += [
            "final IMP test accuracy (%), mean ± std over replicates",
            *tables.render(["level", "% weights", *labels], body),
        ]
    found = rewind_barrier_table(instabilities or {})
    if not found.empty:
        body = [
            [
                r["run"],
                str(int(r["spawn_step"])),
                f"{100 * r['mean']:.2f}" + ("" if pd.isna(r["std"]) else f" ± {100 * r['std']:.2f}"),
            ]
            for _, r in found.iterrows()
        ]
        lines += [
            "",
            "instability of the rewind point: test error barrier between copies (%)",
            *tables.render(["run", "step", "barrier"], body),
        ]
    return "\n".join(lines) if lines else "nothing to compare yet"


def accuracy_comparison(lotteries: dict[str, pd.DataFrame], split: str = "test", ax=None, arms: Sequence[str] = (IMP,)):
    """Final ``split`` accuracy against the percentage of weights remaining: one colour per run, a
    solid line for IMP and a dashed one per other arm of ``arms`` (e.g. ``random_reinit``), each ± std
    over replicates; a dotted line and band at each run's dense accuracy (level 0) ± std."""
    ax = drawing.new_axes(ax)
    stats = comparison_table(lotteries, split, arms=(IMP, *arms))
    styles = {arm: ("-" if arm == IMP else "--", "o" if arm == IMP else "x") for arm in (IMP, *arms)}
    for i, label in enumerate(lotteries):
        mine = stats[stats["run"] == label]
        dense = mine[(mine["arm"] == IMP) & (mine["level"] == 0)]
        if not dense.empty:
            mean, std = 100 * dense["mean"].iloc[0], 100 * np.nan_to_num(dense["std"].iloc[0])
            ax.axhline(mean, color=f"C{i}", linestyle=":", linewidth=1)
            ax.axhspan(mean - std, mean + std, color=f"C{i}", alpha=0.08)
        for arm in dict.fromkeys((IMP, *arms)):
            rows = mine[mine["arm"] == arm].sort_values("level")
            if rows.empty:
                continue
            x, y, e = rows["percent_remaining"], 100 * rows["mean"], 100 * rows["std"].fillna(0)
            line, marker = styles[arm]
            name = label if arm == IMP else f"{label}: {ARMS.label(arm)}"
            ax.plot(x, y, marker=marker, linestyle=line, color=f"C{i}", label=name)
            ax.fill_between(x, y - e, y + e, color=f"C{i}", alpha=0.15)
    drawing.weights_axis(ax, stats["percent_remaining"])
    if not stats.empty:
        ax.legend()
    ax.set_ylabel(f"final {split} accuracy (%)")
    ax.set_title("IMP from each rewind point")
    return ax


def barrier_comparison(instabilities: dict[str, pd.DataFrame], ax=None):
    """The test error barrier of each run's rewind point, one bar per run (± std over replicates)."""
    ax = drawing.new_axes(ax)
    found = rewind_barrier_table(instabilities)
    x = np.arange(len(found))
    ax.bar(x, 100 * found["mean"], yerr=100 * found["std"].fillna(0), color=[f"C{i}" for i in range(len(found))])
    ax.set_xticks(x, list(found["run"]))
    ax.set_ylabel("test error barrier between copies (%)")
    ax.set_title("instability of the rewind point")
    return ax


def save_comparison_figures(
    lotteries: dict[str, pd.DataFrame],
    directory: str,
    instabilities: dict[str, pd.DataFrame] | None = None,
    arms: Sequence[str] = (IMP,),
) -> list[str]:
    jobs = [(COMPARE_FIGURE, functools.partial(accuracy_comparison, lotteries, arms=arms))]
    if instabilities:
        jobs.append((BARRIER_COMPARE_FIGURE, functools.partial(barrier_comparison, instabilities)))
    return drawing.write_figures(directory, jobs)


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        label, sep, workdir = item.partition("=")
        if not sep or not label or not workdir:
            raise UserError(f"{what} {item!r} is not of the form LABEL=WORKDIR")
        if label in out:
            raise UserError(f"{what} label {label!r} is given twice")
        out[label] = workdir
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m jaxlth.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="LABEL=WORKDIR of a lottery run")
    parser.add_argument("--instability", action="append", default=[], help="LABEL=WORKDIR of an instability run")
    parser.add_argument("--out", required=True, help="folder for the figures")
    parser.add_argument(
        "--arms", default=IMP, help="comma-separated arms drawn per run, e.g. imp,random_reinit (default: imp)"
    )
    args = parser.parse_args(argv)
    try:
        arms = tuple(a.strip() for a in args.arms.split(",") if a.strip())
        unknown = [a for a in arms if a not in ARMS.labels]
        if unknown:
            raise UserError(f"--arms names {', '.join(unknown)}; a lottery run's arms are {', '.join(ARMS.labels)}")
        lotteries, instabilities = {}, {}
        for label, workdir in _pairs(args.runs, "run").items():
            run = results.load(workdir)
            if run.experiment != "lottery":
                raise UserError(f"{workdir} holds a {run.experiment!r} run; give lottery runs as LABEL=WORKDIR")
            lotteries[label] = run.table
        for label, workdir in _pairs(args.instability, "--instability").items():
            run = results.load(workdir)
            if run.experiment != "instability":
                raise UserError(f"{workdir} holds a {run.experiment!r} run, not an instability run")
            instabilities[label] = run.table
    except UserError as e:
        print(f"jaxlth: error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    print(format_comparison(lotteries, instabilities), flush=True)
    paths = save_comparison_figures(lotteries, args.out, instabilities, arms=arms)
    print("figures: " + ", ".join(paths), flush=True)


if __name__ == "__main__":
    main()
