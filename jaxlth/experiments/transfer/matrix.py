"""Several transfer runs, one per target task, gathered into the paper's matrix (Chen et al. 2020, Table 5):
rows the sources whose masks were trained (and the baselines), columns the targets (each run's ``data.name``).

A cell is the final main metric of a source's arm in a target's run, mean ± std over replicates, and
*matching* when at least that target's dense mean minus one dense std. Targets may use other metrics
(accuracy, a text task's ``mcc`` or ``pearson``): every cell is in its own target's units.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import pandas as pd

from jaxlth import drawing, tables
from jaxlth.errors import UserError
from jaxlth.experiments.transfer.arms import ARMS, BASELINES, DENSE
from jaxlth.experiments.transfer.reader import TransferRun, final_by_arm, main_metric, matching

STATS = ("mean", "std", "n", "matching")


def open_runs(workdirs) -> list[TransferRun]:
    """The transfer run of each workdir (UserError, one sentence, for none or another experiment's)."""
    found = []
    for workdir in workdirs:
        run = TransferRun(str(workdir), ARMS.main)
        if run.experiment != "transfer":
            raise UserError(f"{workdir} holds a {run.experiment!r} run, not a transfer run")
        found.append(run)
    if not found:
        raise UserError("give the workdirs of one or more transfer runs")
    return found


def target_names(found: list[TransferRun]) -> list[str]:
    """Each run's ``data.name``; runs that share one are told apart by their workdir's basename."""
    names = [run.target for run in found]
    return [
        name if names.count(name) == 1 else f"{name} ({os.path.basename(run.workdir.rstrip('/'))})"
        for name, run in zip(names, found)
    ]


def transfer_table(workdirs, split: str = "test") -> pd.DataFrame:
    """The matrix of several transfer runs: index ``source`` (``dense`` first, then the sources in the
    order first seen, then the other baselines), columns ``(target, stat)`` with stats ``mean``, ``std``,
    ``n`` and ``matching`` (``None`` for the dense row, or without a dense arm in that target's run).

    ``frame.attrs["metrics"]``: ``{target: the main metric of its run}``; ``frame.attrs["split"]``.
    """
    found = open_runs(workdirs)
    cells, metrics, seen = {}, {}, []
    for run, target in zip(found, target_names(found)):
        table = run.table
        metrics[target] = main_metric(table, split)
        stats = final_by_arm(table, run.arms, split, metrics[target])
        dense = stats[stats["arm"] == DENSE]
        for row in stats.itertuples():
            seen.append(row.arm)
            match = None
            if not dense.empty and row.arm != DENSE:
                match = matching(row.mean, float(dense["mean"].iloc[0]), float(dense["std"].iloc[0]))
            values = {"mean": float(row.mean), "std": float(row.std), "n": float(row.n), "matching": match}
            for stat, value in values.items():
                cells.setdefault((target, stat), {})[row.arm] = value
    seen = list(dict.fromkeys(seen))
    order = [a for a in [DENSE] if a in seen] + [a for a in seen if a not in BASELINES]
    order += [b for b in BASELINES if b in seen and b != DENSE]
    columns = pd.MultiIndex.from_product([target_names(found), STATS], names=["target", "stat"])
    frame = pd.DataFrame({key: pd.Series(cells.get(key, {}), dtype=object) for key in columns}, index=order)
    for key in columns:
        if key[1] != "matching":
            frame[key] = pd.to_numeric(frame[key])
    frame.index.name, frame.columns.names = "source", ["target", "stat"]
    frame.attrs.update(metrics=metrics, split=split)
    return frame


def format_transfer_table(frame: pd.DataFrame) -> str:
    """The matrix of :func:`transfer_table` as text: ``mean ± std`` per cell (accuracy in percent),
    ``*`` marking a matching cell, ``-`` a source a target's run did not train."""
    metrics = frame.attrs.get("metrics", {})
    targets = list(dict.fromkeys(frame.columns.get_level_values(0)))

    def cell(source: str, target: str) -> str:
        mean, std = frame.loc[source, (target, "mean")], frame.loc[source, (target, "std")]
        if pd.isna(mean):
            return "-"
        factor = tables.scale(metrics.get(target, ""))
        mark = " *" if frame.loc[source, (target, "matching")] is True else ""
        return tables.pm_cell(factor * mean, factor * std) + mark

    def heading(target: str) -> str:
        metric = metrics.get(target, "?")
        return f"{target} ({metric}{' %' if metric == 'accuracy' else ''})"

    header = ["source", *(heading(t) for t in targets)]
    body = [[str(source), *(cell(source, t) for t in targets)] for source in frame.index]
    title = f"masks transferred: final {frame.attrs.get('split', 'test')} value, mean ± std over replicates"
    note = "* matching: at least the target's dense mean minus one dense std (Chen et al. 2020)"
    return "\n".join([title, *tables.render(header, body), note])


def transfer_heatmap(frame: pd.DataFrame, ax=None):
    """The matrix of :func:`transfer_table` as a heatmap: colour the difference to the target's dense
    mean (in its display units), text ``mean ± std``, matching cells in bold. Returns the Axes."""
    ax = drawing.new_axes(ax)
    metrics = frame.attrs.get("metrics", {})
    targets = list(dict.fromkeys(frame.columns.get_level_values(0)))
    sources = list(frame.index)
    difference = np.full((len(sources), len(targets)), np.nan)
    for j, target in enumerate(targets):
        factor = tables.scale(metrics.get(target, ""))
        means = frame[(target, "mean")].astype(float)
        if DENSE in frame.index and not pd.isna(means[DENSE]):
            difference[:, j] = factor * (means.to_numpy() - means[DENSE])
    reach = float(np.nanmax(np.abs(difference))) if np.isfinite(difference).any() else 1.0
    image = ax.imshow(np.ma.masked_invalid(difference), cmap="RdBu", vmin=-reach or -1, vmax=reach or 1, aspect="auto")
    for i, source in enumerate(sources):
        for j, target in enumerate(targets):
            mean, std = frame.loc[source, (target, "mean")], frame.loc[source, (target, "std")]
            if pd.isna(mean):
                continue
            factor = tables.scale(metrics.get(target, ""))
            bold = frame.loc[source, (target, "matching")] is True
            text = tables.pm_cell(factor * mean, factor * std).replace(" ± ", "\n± ")
            dark = abs(difference[i, j]) > 0.6 * reach  # False for NaN
            weight, colour = "bold" if bold else "normal", "white" if dark else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=8, fontweight=weight, color=colour)
    ax.set_xticks(range(len(targets)), [f"{t}\n({metrics.get(t, '?')})" for t in targets])
    ax.set_yticks(range(len(sources)), [ARMS.label(s) for s in sources])
    ax.set_xlabel("target task")
    ax.set_ylabel("mask from")
    ax.figure.colorbar(image, ax=ax, label="difference to the target's dense mean")
    ax.set_title("Masks transferred (bold: matching the dense network)")
    return ax


def transfer_figure(workdirs, path: str, split: str = "test", dpi: int = 150) -> str:
    """Writes the heatmap of :func:`transfer_table` of ``workdirs`` to ``path`` (no pyplot state); returns it."""
    frame = transfer_table(workdirs, split)
    directory, name = os.path.split(path)
    return drawing.write_figures(directory or ".", [(name, functools.partial(transfer_heatmap, frame))], dpi)[0]
