"""The figures and tables researchers expect from a lottery run, from its tidy results table.

Every function takes the DataFrame of ``results.csv`` (``jaxlth.results.load(workdir).table``),
so the same code serves the command line and a notebook::

    run = jaxlth.results.load("runs/lenet_lottery")
    print(jaxlth.plots.format_summary(run.table))
    jaxlth.plots.accuracy_vs_weights(run.table)

Units: ``density`` columns are fractions of the prunable weights kept (1.0 = dense);
``percent_remaining`` and the axes show percentages; accuracies are fractions in the table and
percentages on axes and in :func:`format_summary`. Standard deviations are over replicates
(sample std, ``ddof=1``; NaN in :func:`summary` for a single replicate).

Functions given ``ax=None`` draw on a new pyplot figure (inline in a notebook; matplotlib falls
back to the Agg backend without a display). :func:`save_figures` never touches pyplot: it draws on
free-standing :class:`matplotlib.figure.Figure` objects, so it leaks no figures and needs no
display.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd

IMP = "imp"
PRETRAIN = "pretrain"

# Plotting order of the arms and their legend labels; unknown arms follow in alphabetical order.
ARM_LABELS = {
    "imp": "IMP",
    "random_prune": "random pruning",
    "random_reinit": "random reinitialisation",
    "shuffle": "shuffled weights",
    "sign_flip": "random signs",
    "reinit_keep_sign": "reinitialised, signs kept",
    "retrain": "retrained (other settings)",
}

ACCURACY_FIGURE = "accuracy_vs_weights.png"
LAYER_DENSITY_FIGURE = "layer_density.png"


# ----- tables -------------------------------------------------------------------------------------
def _arm_order(arms) -> list[str]:
    """``arms`` sorted: the known arms in :data:`ARM_LABELS` order (IMP first), then the rest."""
    known = [a for a in ARM_LABELS if a in set(arms)]
    return known + sorted(set(arms) - set(known))


def _sort_by_arm(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    rank = {arm: i for i, arm in enumerate(_arm_order(frame["arm"].unique()))}
    keyed = frame.assign(_rank=frame["arm"].map(rank))
    return keyed.sort_values(["_rank", *columns], kind="stable").drop(columns="_rank").reset_index(drop=True)


def _measurements(table: pd.DataFrame, split: str, metric: str) -> pd.DataFrame:
    """Rows of ``split``/``metric`` outside the pretraining arm, with clean dtypes."""
    rows = table[(table["split"] == split) & (table["metric"] == metric) & (table["arm"] != PRETRAIN)]
    if "layer" in rows.columns:
        rows = rows[rows["layer"].isna() | (rows["layer"].astype(str) == "")]
    rows = rows.dropna(subset=["level", "replicate", "step", "value"])
    return rows.astype({"level": int, "replicate": int, "step": int, "density": float, "value": float})


def final_metrics(table: pd.DataFrame, split: str = "test", metric: str = "accuracy") -> pd.DataFrame:
    """The last measurement (largest ``step``) of every (arm, level, replicate).

    Returns columns ``arm, level, replicate, density, value, step``; ``density`` is the fraction
    of prunable weights kept, ``value`` in the metric's own units (accuracy as a fraction).
    """
    columns = ["arm", "level", "replicate", "density", "value", "step"]
    rows = _measurements(table, split, metric)
    if rows.empty:
        return pd.DataFrame(columns=columns)
    last = rows.sort_values("step", kind="stable").groupby(["arm", "level", "replicate"], sort=False).tail(1)
    return _sort_by_arm(last[columns], "level", "replicate")


def summary(table: pd.DataFrame, split: str = "test", metric: str = "accuracy") -> pd.DataFrame:
    """Final values aggregated over replicates, one row per (arm, level).

    Returns columns ``arm, level, density`` (mean fraction kept), ``percent_remaining``
    (``100 * density``), ``mean``, ``std`` (over replicates, ``ddof=1``, NaN when ``n == 1``)
    and ``n`` (replicates), in the units of ``value`` (accuracy as a fraction).
    """
    final = final_metrics(table, split, metric)
    columns = ["arm", "level", "density", "percent_remaining", "mean", "std", "n"]
    if final.empty:
        return pd.DataFrame(columns=columns)
    grouped = final.groupby(["arm", "level"], sort=False)
    out = grouped.agg(density=("density", "mean"), mean=("value", "mean"), std=("value", "std"),
                      n=("value", "size")).reset_index()
    out["percent_remaining"] = 100.0 * out["density"]
    return _sort_by_arm(out[columns], "level")


def _scale(metric: str) -> float:
    """Display factor: accuracies are shown in percent, other metrics as they are."""
    return 100.0 if metric == "accuracy" else 1.0


def _metric_label(split: str, metric: str) -> str:
    unit = " (%)" if metric == "accuracy" else ""
    return f"{split.capitalize()} {metric}{unit}"


def format_summary(table: pd.DataFrame, split: str = "test", metric: str = "accuracy") -> str:
    """A text table for the terminal: one row per level, ``mean ± std`` of each arm as columns.

    Accuracies are printed in percent with two decimals; ``% weights`` is the mean percentage of
    prunable weights remaining (IMP's where present); ``-`` marks an arm without that level.
    """
    stats = summary(table, split, metric)
    if stats.empty:
        return f"no final {split} {metric} measurements yet"
    scale = _scale(metric)
    arms = _arm_order(stats["arm"].unique())
    levels = sorted(stats["level"].unique())
    reference = stats[stats["arm"] == IMP] if (stats["arm"] == IMP).any() else stats
    remaining = stats.groupby("level")["percent_remaining"].mean()
    remaining.update(reference.groupby("level")["percent_remaining"].mean())

    def cell(arm: str, level: int) -> str:
        row = stats[(stats["arm"] == arm) & (stats["level"] == level)]
        if row.empty:
            return "-"
        mean, std = scale * row["mean"].iloc[0], scale * row["std"].iloc[0]
        return f"{mean:.2f}" if math.isnan(std) else f"{mean:.2f} ± {std:.2f}"

    header = ["level", "% weights", *arms]
    body = [[str(level), f"{remaining[level]:.2f}", *(cell(arm, level) for arm in arms)] for level in levels]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(text.rjust(width) for text, width in zip(r, widths)) for r in [header, *body]]
    title = f"final {split} {metric}" + (" (%)" if metric == "accuracy" else "") + ", mean ± std over replicates"
    return "\n".join([title, *lines])


# ----- figures ------------------------------------------------------------------------------------
def _new_axes(ax):
    """``ax``, or the axes of a new pyplot figure (imported lazily)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt
    _, ax = plt.subplots(figsize=(7, 4.5))
    return ax


def _percent_ticks(ax, percents, max_ticks: int = 12) -> None:
    """Major ticks of a log axis at the measured percentages, thinned to at most ``max_ticks``."""
    from matplotlib import ticker
    values = sorted({round(float(p), 6) for p in percents}, reverse=True)
    if not values:
        return
    stride = math.ceil(len(values) / max_ticks)
    shown = values[::stride]
    ax.xaxis.set_major_locator(ticker.FixedLocator(shown))
    ax.xaxis.set_major_formatter(ticker.FixedFormatter([f"{v:.3g}" for v in shown]))
    ax.xaxis.set_minor_locator(ticker.NullLocator())


def accuracy_vs_weights(table: pd.DataFrame, ax=None, metric: str = "accuracy", split: str = "test",
                        title: str | None = None):
    """Final ``split`` ``metric`` against % of weights remaining, one line per arm.

    The x axis is logarithmic and reversed (100% on the left, as in the lottery-ticket papers);
    lines are means over replicates with ±1 std shaded; IMP is drawn first and on top; the dense
    network (IMP level 0, mean ± std) is a grey horizontal band. Returns the Axes.

    Raises:
      ValueError: when the table holds no final ``split``/``metric`` measurements.
    """
    stats = summary(table, split, metric)
    if stats.empty:
        raise ValueError(f"the results table holds no {split} {metric} measurements to plot")
    ax = _new_axes(ax)
    scale = _scale(metric)
    dense = stats[(stats["arm"] == IMP) & (stats["level"] == 0)]
    if not dense.empty:
        mean, std = scale * dense["mean"].iloc[0], scale * np.nan_to_num(dense["std"].iloc[0])
        ax.axhspan(mean - std, mean + std, color="0.85", zorder=0)
        ax.axhline(mean, color="0.4", linestyle="--", linewidth=1.0, zorder=1,
                   label=f"dense ({mean:.2f}" + (f" ± {std:.2f})" if std else ")"))
    for i, arm in enumerate(_arm_order(stats["arm"].unique())):
        rows = stats[stats["arm"] == arm].sort_values("level")
        x = rows["percent_remaining"].to_numpy()
        y = scale * rows["mean"].to_numpy()
        s = scale * np.nan_to_num(rows["std"].to_numpy())
        main = arm == IMP
        color = f"C{i % 10}"  # IMP, first in the order, gets matplotlib's first colour
        ax.plot(x, y, marker="o", markersize=5 if main else 3.5, linewidth=2.2 if main else 1.2,
                color=color, label=ARM_LABELS.get(arm, arm), zorder=4 if main else 3)
        ax.fill_between(x, y - s, y + s, color=color, alpha=0.25 if main else 0.15, linewidth=0,
                        zorder=2)
    ax.set_xscale("log")
    _percent_ticks(ax, stats["percent_remaining"])
    low, high = stats["percent_remaining"].min(), stats["percent_remaining"].max()
    ax.set_xlim(high * 1.15, low / 1.15)  # reversed: dense on the left
    ax.set_xlabel("Weights remaining (%)")
    ax.set_ylabel(_metric_label(split, metric))
    ax.set_title(title or f"{_metric_label(split, metric).replace(' (%)', '')} vs. weights remaining")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def _mask_rows(table: pd.DataFrame, arm: str = IMP) -> pd.DataFrame:
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
    rows = _mask_rows(table, arm)
    if rows.empty:
        raise ValueError(f"the results table holds no per-layer mask densities of arm {arm!r}")
    ax = _new_axes(ax)
    layers = list(pd.unique(rows["layer"]))
    colors = _layer_colors(len(layers))
    for layer, color in zip(layers, colors):
        by_level = rows[rows["layer"] == layer].groupby("level")["value"].mean().sort_index()
        name = str(layer).removesuffix("/kernel")
        ax.plot(by_level.index, 100.0 * by_level.to_numpy(), marker="o", markersize=3, linewidth=1.2,
                color=color, label=name)
    overall = rows.groupby("level")["density"].mean().sort_index()
    ax.plot(overall.index, 100.0 * overall.to_numpy(), color="black", linestyle="--", linewidth=1.8,
            label="all prunable")
    ax.set_yscale("log")
    from matplotlib.ticker import FormatStrFormatter  # noqa: PLC0415

    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    from matplotlib import ticker
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.set_xlabel("Pruning level")
    ax.set_ylabel("Weights remaining in layer (%)")
    ax.set_title(f"Per-layer density of the {ARM_LABELS.get(arm, arm)} mask")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize="x-small", ncol=max(1, math.ceil((len(layers) + 1) / 16)))
    return ax


def _layer_colors(n: int) -> list:
    """Distinct colours for few layers; a sequential colormap (input to output) for many."""
    if n <= 10:
        return [f"C{i}" for i in range(n)]
    from matplotlib import colormaps
    cmap = colormaps["viridis"]
    return [cmap(i / max(1, n - 1)) for i in range(n)]


def save_figures(table: pd.DataFrame, directory: str, dpi: int = 150) -> list[str]:
    """Writes :data:`ACCURACY_FIGURE` and :data:`LAYER_DENSITY_FIGURE` into ``directory``.

    The directory is created; a figure whose rows are absent (no test accuracy yet, no mask
    rows) is skipped silently. Returns the paths written. Uses no pyplot state.
    """
    from matplotlib.figure import Figure
    os.makedirs(directory, exist_ok=True)
    jobs = []
    if not summary(table).empty:
        jobs.append((ACCURACY_FIGURE, accuracy_vs_weights, (7, 4.5)))
    if not _mask_rows(table).empty:
        jobs.append((LAYER_DENSITY_FIGURE, layer_density, (7, 4.5)))
    written = []
    for name, draw, size in jobs:
        figure = Figure(figsize=size, layout="constrained")
        draw(table, ax=figure.add_subplot())
        path = os.path.join(directory, name)
        figure.savefig(path, dpi=dpi)
        written.append(path)
    return written


# ----- instability and linear mode connectivity ---------------------------------------------------
BARRIER_FIGURE = "barrier_vs_spawn_step.png"
CURVES_FIGURE = "interpolation_curves.png"
LEVELS_FIGURE = "barrier_between_levels.png"
PERTURB_FIGURE = "barrier_vs_perturbation.png"
BARRIERS = {"barrier_frankle": "Frankle et al. 2020", "barrier_paul": "Paul et al. 2022"}


def _instability(table: pd.DataFrame, arm: str) -> pd.DataFrame:
    rows = table[(table["arm"] == arm)]
    if "experiment" in rows:
        rows = rows[rows["experiment"] == "instability"]
    return rows


def barriers(table: pd.DataFrame, arm: str = "copies") -> pd.DataFrame:
    """Barrier mean and std (over replicates and pairs) per level, spawn step, pair kind and split.

    Columns: ``level, spawn_step, pair, split, metric, mean, std, n`` (errors as fractions).
    For ``arm="copies"`` pairs of copies are pooled (``pair`` is ``"all"``).
    """
    rows = _instability(table, arm)
    rows = rows[rows["metric"].isin(list(BARRIERS))].copy()
    if rows.empty:
        return pd.DataFrame(columns=["level", "spawn_step", "pair", "split", "metric", "mean", "std", "n"])
    if arm == "copies":
        rows["pair"] = "all"
    rows["spawn_step"] = pd.to_numeric(rows["spawn_step"], errors="coerce")
    keys = ["level", "spawn_step", "pair", "split", "metric"]
    grouped = rows.groupby(keys, dropna=False)["value"].agg(["mean", "std", "count"]).reset_index()
    return grouped.rename(columns={"count": "n"})


def _pm(mean: float, std: float) -> str:
    return f"{100 * mean:.2f}" if not np.isfinite(std) else f"{100 * mean:.2f} ± {100 * std:.2f}"


def format_barriers(table: pd.DataFrame) -> str:
    """Terminal tables of the barriers (in % error) of each analysis present in ``table``."""
    out = []
    for arm, key, title in (("copies", "spawn_step", "instability: error barrier between copies (%)"),
                            ("between_levels", "level", "barrier between successive IMP levels (%)"),
                            ("perturb", "pair", "barrier to the unperturbed network, by noise scale (%)")):
        frame = barriers(table, arm)
        if frame.empty:
            continue
        wide = {}
        for r in frame.itertuples():
            k = getattr(r, key)
            k = int(k) if key == "spawn_step" else k
            wide.setdefault(k, {})[f"{r.split} {r.metric.split('_')[1]}"] = _pm(r.mean, r.std)
        columns = sorted({c for v in wide.values() for c in v})
        header = {"spawn_step": "spawn step", "level": "level", "pair": "scale"}[key]
        lines = [title, f"{header:>10}  " + "  ".join(f"{c:>16}" for c in columns)]
        if arm == "between_levels":
            lines[1] += "  matching"
        for k in sorted(wide, key=lambda v: float(v) if str(v).replace(".", "", 1).isdigit() else str(v)):
            line = f"{str(k):>10}  " + "  ".join(f"{wide[k].get(c, '-'):>16}" for c in columns)
            if arm == "between_levels":
                matching = _instability(table, arm)
                matching = matching[(matching["metric"] == "matching") & (matching["level"] == k)]["value"]
                line += f"  {matching.mean():.0%}" if len(matching) else "  -"
            lines.append(line)
        out.append("\n".join(lines))
    return "\n\n".join(out) if out else "no barriers measured yet"


def _curves(table: pd.DataFrame, arm: str, split: str) -> pd.DataFrame:
    rows = _instability(table, arm)
    rows = rows[(rows["metric"] == "error") & (rows["split"] == split)].copy()
    rows["alpha"] = pd.to_numeric(rows["alpha"])
    return rows


def barrier_vs_spawn_step(table: pd.DataFrame, ax=None, metric: str = "barrier_frankle"):
    """Instability (barrier between copies, %) against the spawn step (symmetric log x axis)."""
    ax = _new_axes(ax)
    frame = barriers(table, "copies")
    frame = frame[frame["metric"] == metric]
    if frame.empty:
        raise ValueError("the table holds no barriers between copies")
    for i, (split, rows) in enumerate(frame.groupby("split")):
        rows = rows.sort_values("spawn_step")
        x, y, s = rows["spawn_step"], 100 * rows["mean"], 100 * rows["std"].fillna(0)
        ax.plot(x, y, marker="o", color=f"C{i}", label=f"{split} error")
        ax.fill_between(x, y - s, y + s, color=f"C{i}", alpha=0.2, linewidth=0)
    ax.set_xscale("symlog", linthresh=max(1.0, float(frame["spawn_step"][frame["spawn_step"] > 0].min())
                                           if (frame["spawn_step"] > 0).any() else 1.0))
    ax.axhline(2.0, color="grey", linestyle=":", linewidth=1, label="2% (stable below)")
    ax.set_xlabel("spawn step k (iterations)")
    ax.set_ylabel(f"error barrier (%), {BARRIERS[metric]}")
    ax.set_title("Instability to SGD noise")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def interpolation_curves(table: pd.DataFrame, ax=None, split: str = "test", arm: str = "copies"):
    """Error (%) along the path between two networks against alpha, one line per spawn step."""
    ax = _new_axes(ax)
    rows = _curves(table, arm, split)
    if rows.empty:
        raise ValueError(f"the table holds no {split} interpolation curves for {arm!r}")
    key = "spawn_step" if arm == "copies" else "pair"
    groups = list(rows.groupby(key))
    for i, (value, group) in enumerate(sorted(groups, key=lambda g: float(g[0]) if arm == "copies" else 0)):
        curve = group.groupby("alpha")["value"].agg(["mean", "std"]).reset_index()
        label = f"k = {int(float(value))}" if arm == "copies" else str(value)
        color = _layer_colors(len(groups))[i]
        ax.plot(curve["alpha"], 100 * curve["mean"], color=color, label=label)
        ax.fill_between(curve["alpha"], 100 * (curve["mean"] - curve["std"].fillna(0)),
                        100 * (curve["mean"] + curve["std"].fillna(0)), color=color, alpha=0.15, linewidth=0)
    ax.set_xlabel("interpolation coefficient α")
    ax.set_ylabel(f"{split} error (%)")
    ax.set_title(f"Linear interpolation ({split})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def barrier_between_levels(table: pd.DataFrame, ax=None, metric: str = "barrier_frankle"):
    """Barrier between levels L and L+1 and the test accuracy of L+1 against % weights remaining."""
    ax = _new_axes(ax)
    rows = _instability(table, "between_levels")
    barrier = rows[(rows["metric"] == metric) & (rows["split"] == "test")]
    if barrier.empty:
        raise ValueError("the table holds no barriers between levels")
    by_level = barrier.groupby("level").agg(density=("density", "mean"), mean=("value", "mean"),
                                            std=("value", "std")).reset_index()
    x = 100 * by_level["density"]
    ax.plot(x, 100 * by_level["mean"], marker="o", color="C3", label=f"barrier L→L+1 ({BARRIERS[metric]})")
    ax.fill_between(x, 100 * (by_level["mean"] - by_level["std"].fillna(0)),
                    100 * (by_level["mean"] + by_level["std"].fillna(0)), color="C3", alpha=0.2, linewidth=0)
    ax.set_xscale("log")
    ax.invert_xaxis()
    _percent_ticks(ax, x)
    ax.set_xlabel("weights remaining at level L+1 (%)")
    ax.set_ylabel("test error barrier (%)", color="C3")
    ends = _curves(table, "between_levels", "test")
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
    ax = _new_axes(ax)
    frame = barriers(table, "perturb")
    frame = frame[frame["metric"] == metric].copy()
    if frame.empty:
        raise ValueError("the table holds no perturbation barriers")
    frame["scale"] = pd.to_numeric(frame["pair"])
    for i, (split, rows) in enumerate(frame.groupby("split")):
        rows = rows.sort_values("scale")
        ax.errorbar(rows["scale"], 100 * rows["mean"], yerr=100 * rows["std"].fillna(0), marker="o",
                    color=f"C{i}", label=f"{split} error", capsize=3)
    ax.set_xscale("log")
    ax.set_xlabel("noise scale (× layer weight norm)")
    ax.set_ylabel(f"error barrier (%), {BARRIERS[metric]}")
    ax.set_title("Robustness of the rewind point to perturbation")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def save_instability_figures(table: pd.DataFrame, directory: str, dpi: int = 150) -> list[str]:
    """Writes the figures of the instability analyses present in ``table``; returns their paths."""
    from matplotlib.figure import Figure
    os.makedirs(directory, exist_ok=True)
    jobs = []
    if not barriers(table, "copies").empty:
        jobs += [(BARRIER_FIGURE, barrier_vs_spawn_step), (CURVES_FIGURE, interpolation_curves)]
    if not barriers(table, "between_levels").empty:
        jobs.append((LEVELS_FIGURE, barrier_between_levels))
    if not barriers(table, "perturb").empty:
        jobs.append((PERTURB_FIGURE, barrier_vs_perturbation))
    written = []
    for name, draw in jobs:
        figure = Figure(figsize=(7, 4.5), layout="constrained")
        draw(table, ax=figure.add_subplot())
        path = os.path.join(directory, name)
        figure.savefig(path, dpi=dpi)
        written.append(path)
    return written
