"""The paths from each network's start to its trained end (``init_to_final``): a table of their
statistics, its terminal text and the curves.

Rows of arm ``init_to_final`` (:mod:`.init_to_final`): ``pair`` ``trunk`` (this run's dense network
from its initialisation) or ``imp`` (an IMP level of the source run from its starting network),
``level``, ``split``; the curves ``loss`` and ``error`` with ``alpha``, and per replicate the
statistics ``<loss|error>_<rise|bump|monotonic|peak_alpha>``
(:func:`jaxlth.analysis.barriers.start_to_end_statistics`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from jaxlth import drawing, tables
from jaxlth.analysis.barriers import MONOTONIC_TOLERANCE, START_TO_END
from jaxlth.experiments.instability.arms import INIT_TO_FINAL
from jaxlth.experiments.instability.barrier_tables import rows_of

INIT_TO_FINAL_LOSS_FIGURE = "init_to_final_loss.png"
INIT_TO_FINAL_ERROR_FIGURE = "init_to_final_error.png"
CURVES = ("loss", "error")
KEYS = ("pair", "level", "split")


def init_to_final_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per path and split (after a sweep's setting columns): ``pair, level, split, density``,
    then for ``loss`` and ``error`` the means over replicates of the value at the start (``_start``,
    ``alpha = 0``) and the end (``_end``) and of each statistic (``_rise``, ``_bump``, ``_monotonic``:
    the share of replicates whose curve is monotonic, ``_peak_alpha``), ``_rise_std``, and ``n``
    replicates. Errors as fractions, losses in nats; empty (with these columns) without such rows."""
    keys = [*tables.setting_columns(table), *KEYS]
    stats = [f"{c}_{s}" for c in CURVES for s in ("start", "end", *START_TO_END, "rise_std")]
    rows = rows_of(table, INIT_TO_FINAL)
    rows = rows[rows["metric"].isin([*CURVES, *(f"{c}_{s}" for c in CURVES for s in START_TO_END)])].copy()
    if rows.empty:
        return pd.DataFrame(columns=[*keys, "density", *stats, "n"])
    rows["level"] = rows["level"].astype(int)
    rows["alpha"] = pd.to_numeric(rows["alpha"], errors="coerce")
    curve = rows["metric"].isin(CURVES)
    ends = rows[curve & rows["alpha"].isin([0.0, 1.0])].copy()
    ends["metric"] = ends["metric"] + np.where(ends["alpha"] == 0.0, "_start", "_end")
    measured = pd.concat([ends, rows[~curve]])
    grouped = measured.groupby([*keys, "metric"], sort=False)["value"]
    wide = grouped.mean().unstack("metric")
    for c in CURVES:
        rise = f"{c}_rise"
        if rise in wide:
            wide[f"{c}_rise_std"] = grouped.std().unstack("metric")[rise]
    wide["density"] = rows.groupby(keys, sort=False)["density"].mean()
    wide["n"] = rows[rows["metric"] == f"{CURVES[0]}_rise"].groupby(keys, sort=False)["value"].count()
    out = wide.reset_index().reindex(columns=[*keys, "density", *stats, "n"])
    order = out["pair"].map({"trunk": 0}).fillna(1)  # this run's dense network first, then the levels
    return out.assign(_order=order).sort_values(["_order", "level", "split"]).drop(columns="_order")


def path_label(pair: str, level: int) -> str:
    """``"dense, 0 -> T"`` for this run's network, ``"IMP level L"`` for a source level."""
    return "dense, 0 → T" if pair == "trunk" else f"IMP level {int(level)}"


def format_init_to_final(table: pd.DataFrame) -> str:
    """The paths' statistics as a text table (``""`` without such rows): the loss (nats) and error (%)
    at ``theta_0`` and ``theta_T``, the largest rise above the start (mean ± std over replicates),
    the share of replicates whose curve is monotonically non-increasing, and the alpha of the peak."""
    frame = init_to_final_table(table)
    if frame.empty:
        return ""

    def pm(mean, std, factor, digits):
        spread = "" if not np.isfinite(std) else f" ± {factor * std:.{digits}f}"
        return f"{factor * mean:.{digits}f}{spread}"

    header = ["path", "% weights", "split"]
    for c, unit in (("loss", ""), ("error", " (%)")):
        header += [f"{c} θ₀ → θ_T{unit}", f"{c} rise{unit}", f"{c} monotonic", f"{c} peak α"]
    body = []
    for r in frame.itertuples():
        line = [path_label(r.pair, r.level), f"{100 * r.density:.2f}", r.split]
        for c, factor, digits in (("loss", 1.0, 3), ("error", 100.0, 2)):
            start, end = getattr(r, f"{c}_start"), getattr(r, f"{c}_end")
            line += [
                f"{factor * start:.{digits}f} → {factor * end:.{digits}f}",
                pm(getattr(r, f"{c}_rise"), getattr(r, f"{c}_rise_std"), factor, digits),
                f"{getattr(r, f'{c}_monotonic'):.0%}",
                f"{getattr(r, f'{c}_peak_alpha'):.2f}",
            ]
        body.append(line)
    title = (
        "from the start to the trained network, (1 − α)θ₀ + αθ_T (Frankle 2020; Vlaar & Frankle 2022): "
        "rise = largest rise above θ₀'s value; monotonic = share of replicates never rising by more than "
        f"{MONOTONIC_TOLERANCE:g}"
    )
    return "\n".join([title, *tables.render(header, body)])


def _split(rows: pd.DataFrame, preferred: str) -> str:
    splits = set(rows["split"])
    return preferred if preferred in splits else sorted(splits)[0]


def init_to_final_curves(table: pd.DataFrame, ax=None, metric: str = "loss", split: str | None = None):
    """``metric`` (``loss`` in nats, or ``error`` in %) along ``(1 - alpha) theta_0 + alpha theta_T``,
    one line per path (this run's dense network dashed, each IMP level of the source coloured), mean
    ± std over replicates. ``split``: default ``train`` for the loss (the objective the papers draw)
    and ``test`` for the error, else the split measured."""
    ax = drawing.new_axes(ax)
    rows = rows_of(table, INIT_TO_FINAL)
    rows = rows[rows["metric"] == metric].copy()
    if rows.empty:
        raise ValueError(f"the table holds no {metric} along paths from the start to the trained network")
    split = split or _split(rows, "train" if metric == "loss" else "test")
    rows = rows[rows["split"] == split].assign(alpha=lambda f: pd.to_numeric(f["alpha"], errors="coerce"))
    factor = 100.0 if metric == "error" else 1.0
    paths = sorted(rows.groupby(["pair", "level"]), key=lambda g: (g[0][0] != "trunk", int(g[0][1])))
    colors = iter(drawing.layer_colors(sum(pair != "trunk" for (pair, _), _ in paths)))
    for (pair, level), group in paths:
        curve = group.groupby("alpha")["value"].agg(["mean", "std"]).reset_index()
        mean, std = factor * curve["mean"], factor * curve["std"].fillna(0.0)
        label = f"{path_label(pair, level)} ({100 * group['density'].mean():.3g}% weights)"
        style = {"color": "black", "linestyle": "--", "zorder": 3} if pair == "trunk" else {"color": next(colors)}
        ax.plot(curve["alpha"], mean, label=label, **style)
        ax.fill_between(curve["alpha"], mean - std, mean + std, color=style["color"], alpha=0.15, linewidth=0)
    ax.set_xlabel("α: (1 − α)θ₀ + αθ_T")
    ax.set_ylabel(f"{split} {metric}" + (" (%)" if metric == "error" else " (nats)"))
    ax.set_title(f"From the start θ₀ to the trained network θ_T ({split} {metric})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return ax
