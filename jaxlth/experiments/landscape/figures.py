"""Figures and tables of the landscape experiment (Paul et al. 2023, Sec. 3.3).

``lambda_max_vs_sparsity``: the top Hessian eigenvalue at each level's trained network against the
weights remaining; ``projection_error``: the error of each level's network after a further fraction
``p`` is pruned (no retraining), against ``p``; ``predicted_vs_measured``: the Taylor prediction of
the loss change of a projection against the measured change; ``curvature_vs_fraction`` (sweep
sources): the prune fractions whose next level stays matching, against the curvature at the level;
``hessian_diagonal_histogram`` (``landscape.diagonal_probes > 0``, :mod:`.diagonal_figures`): the
distribution of the Hessian's diagonal over each level's kept weights.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from jaxlth import drawing, tables
from jaxlth.experiments.landscape.diagonal_figures import (
    DIAGONAL_FIGURE,
    diagonal_table,
    format_diagonal,
    hessian_diagonal_histogram,
)

__all__ = [
    "EIGENVALUE_FIGURE",
    "PROJECTION_FIGURE",
    "PREDICTION_FIGURE",
    "FRACTION_FIGURE",
    "curvature_table",
    "projection_table",
    "format_landscape",
    "lambda_max_vs_sparsity",
    "projection_error",
    "predicted_vs_measured",
    "curvature_vs_fraction",
    "save_landscape_figures",
    "DIAGONAL_FIGURE",
    "diagonal_table",
    "format_diagonal",
    "hessian_diagonal_histogram",
]
EIGENVALUE_FIGURE = "lambda_max_vs_sparsity.png"
PROJECTION_FIGURE = "projection_error.png"
PREDICTION_FIGURE = "predicted_vs_measured_loss.png"
FRACTION_FIGURE = "curvature_vs_prune_fraction.png"


def landscape_rows(table: pd.DataFrame, metric: str, split: str = "train") -> pd.DataFrame:
    """The landscape rows of ``metric`` on ``split``, ``prune_fraction`` -1 for a source without one."""
    rows = table[(table["experiment"] == "landscape") & (table["metric"] == metric) & (table["split"] == split)]
    rows = rows.astype({"level": int, "replicate": float, "density": float, "value": float})
    if "prune_fraction" not in rows.columns:
        rows = rows.assign(prune_fraction=np.nan)
    return rows.assign(prune_fraction=rows["prune_fraction"].fillna(-1.0).astype(float))


def curvature_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per (prune_fraction, level): ``density``, ``lambda_max`` (mean, ``lambda_max_std``) and
    ``trace`` (mean over replicates); ``prune_fraction`` is -1 for a source without ``prune_fraction``."""
    top = landscape_rows(table, "eigenvalue")
    top = top[top["rank"].astype(float) == 1]
    trace = landscape_rows(table, "trace")
    columns = ["prune_fraction", "level", "density", "lambda_max", "lambda_max_std", "trace"]
    if top.empty:
        return pd.DataFrame(columns=columns)
    keys = ["prune_fraction", "level"]
    out = (
        top.groupby(keys)
        .agg(density=("density", "mean"), lambda_max=("value", "mean"), lambda_max_std=("value", "std"))
        .reset_index()
    )
    out = out.merge(trace.groupby(keys)["value"].mean().rename("trace").reset_index(), on=keys, how="left")
    return out[columns].sort_values(keys).reset_index(drop=True)


def projection_table(table: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """Per (prune_fraction, level, projection): mean ``split`` error at the pruned end (alpha = 1)
    and ``max_error`` along the segment (its highest point, the path's worst network)."""
    rows = landscape_rows(table, "error", split)
    columns = ["prune_fraction", "level", "projection", "density", "error", "max_error"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    rows = rows.astype({"alpha": float, "projection": float})
    keys = ["prune_fraction", "level", "projection", "replicate"]
    end = rows[rows["alpha"] == 1.0].groupby(keys)["value"].mean().rename("error")
    worst = rows.groupby(keys)["value"].max().rename("max_error")
    density = rows.groupby(keys)["density"].mean()
    out = pd.concat([density, end, worst], axis=1).reset_index()
    out = out.groupby(keys[:-1])[["density", "error", "max_error"]].mean().reset_index()
    return out[columns].sort_values(keys[:-1]).reset_index(drop=True)


def format_landscape(table: pd.DataFrame) -> str:
    """Per level: weights remaining, lambda_max, trace and the test error (%) after each projection."""
    curv = curvature_table(table)
    if curv.empty:
        return "no landscape measurements yet"
    proj = projection_table(table)
    fractions = sorted(proj["projection"].unique())
    header = ["p_imp", "level", "% weights", "lambda_max", "trace", *(f"err@+{p:g}" for p in fractions)]
    body = []
    for r in curv.itertuples():
        mine = proj[(proj["prune_fraction"] == r.prune_fraction) & (proj["level"] == r.level)].set_index("projection")
        body.append(
            [
                "-" if r.prune_fraction < 0 else f"{r.prune_fraction:g}",
                str(r.level),
                f"{100 * r.density:.3g}",
                f"{r.lambda_max:.4g}",
                f"{r.trace:.4g}",
                *(f"{100 * mine['error'][p]:.2f}" if p in mine.index else "-" for p in fractions),
            ]
        )
    title = (
        "landscape: top Hessian eigenvalue and trace at each level's trained network (mean over replicates); "
        "test error (%) after pruning a further fraction p without retraining"
    )
    return "\n".join([title, *tables.render(header, body)])


def lambda_max_vs_sparsity(table: pd.DataFrame, ax=None):
    """The top Hessian eigenvalue against % weights remaining, one line per IMP prune fraction."""
    curv = curvature_table(table)
    if curv.empty:
        raise ValueError("the results table holds no landscape eigenvalues")
    ax = drawing.new_axes(ax)
    for i, (p, rows) in enumerate(curv.groupby("prune_fraction")):
        x, y = 100 * rows["density"].to_numpy(), rows["lambda_max"].to_numpy()
        s = np.nan_to_num(rows["lambda_max_std"].to_numpy())
        ax.plot(x, y, marker="o", color=f"C{i % 10}", label="IMP" if p < 0 else f"IMP, p = {p:g}")
        ax.fill_between(x, y - s, y + s, color=f"C{i % 10}", alpha=0.2, linewidth=0)
    drawing.weights_axis(ax, 100 * curv["density"])
    ax.set_ylabel(r"$\lambda_{max}$ of the training-loss Hessian")
    ax.set_title("Sharpness at the end of training, per level")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def projection_error(table: pd.DataFrame, ax=None, split: str = "test", prune_fraction: float | None = None):
    """Error after pruning a further fraction ``p`` of each level's trained network, against ``p``
    (one line per level; a sweep source shows ``prune_fraction``, default its smallest)."""
    proj = projection_table(table, split)
    if proj.empty:
        raise ValueError("the results table holds no landscape projections")
    chosen = proj["prune_fraction"].min() if prune_fraction is None else float(prune_fraction)
    proj = proj[proj["prune_fraction"] == chosen]
    ax = drawing.new_axes(ax)
    levels = sorted(proj["level"].unique())
    for level, color in zip(levels, drawing.layer_colors(len(levels))):
        rows = proj[proj["level"] == level]
        ax.plot(
            rows["projection"],
            100 * rows["error"],
            marker="o",
            markersize=3,
            color=color,
            label=f"level {level} ({100 * rows['density'].iloc[0]:.3g}%)",
        )
    ax.set_xlabel("Further fraction pruned, p (no retraining)")
    ax.set_ylabel(f"{split.capitalize()} error after projection (%)")
    ax.set_title("How far each level's trained network can be pruned")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="x-small", ncol=2)
    return ax


def predicted_vs_measured(table: pd.DataFrame, ax=None):
    """Measured loss change of each projection against ``g.delta + 1/2 delta' H delta`` (log-log
    when all are positive); the diagonal is a perfect quadratic model."""
    measured, first, second = (landscape_rows(table, m) for m in ("loss_change", "first_order", "second_order"))
    if measured.empty:
        raise ValueError("the results table holds no landscape loss changes")
    keys = ["prune_fraction", "level", "replicate", "projection"]
    merged = measured.merge(first[keys + ["value"]], on=keys, suffixes=("", "_first")).merge(
        second[keys + ["value"]].rename(columns={"value": "value_second"}), on=keys
    )
    predicted = merged["value_first"] + merged["value_second"]
    ax = drawing.new_axes(ax)
    points = ax.scatter(predicted, merged["value"], c=merged["projection"].astype(float), cmap="viridis", s=12)
    ax.figure.colorbar(points, ax=ax, label="further fraction pruned, p")
    values = np.concatenate([predicted.to_numpy(), merged["value"].to_numpy()])
    if (values > 0).all():
        ax.set_xscale("log")
        ax.set_yscale("log")
    low, high = values.min(), values.max()
    ax.plot([low, high], [low, high], color="0.4", linestyle="--", linewidth=1)
    ax.set_xlabel(r"predicted: $g\cdot\delta + \frac{1}{2}\delta^T H \delta$")
    ax.set_ylabel("measured loss change")
    ax.set_title("Quadratic model of pruning a trained network")
    ax.grid(True, alpha=0.3)
    return ax


def curvature_vs_fraction(table: pd.DataFrame, ax=None):
    """(sweep sources) Each (prune fraction, level L): lambda_max at level L against the fraction,
    filled where level L + 1 of that fraction is matching, hollow where it is not."""
    curv = curvature_table(table)
    matching = landscape_rows(table, "matching", "test")
    if curv.empty or matching.empty:
        raise ValueError("the results table holds no sweep matching rows and eigenvalues")
    nxt = matching.assign(level=matching["level"] - 1)[["prune_fraction", "level", "value"]]
    merged = curv.merge(nxt.rename(columns={"value": "next_matching"}), on=["prune_fraction", "level"])
    ax = drawing.new_axes(ax)
    ok = merged["next_matching"] > 0.5
    ax.scatter(merged["lambda_max"][ok], merged["prune_fraction"][ok], color="C2", label="next level matching")
    ax.scatter(
        merged["lambda_max"][~ok],
        merged["prune_fraction"][~ok],
        facecolors="white",
        edgecolors="C3",
        label="next level not matching",
    )
    ax.set_xscale("log")
    ax.set_xlabel(r"$\lambda_{max}$ at level L")
    ax.set_ylabel("Prune fraction per level")
    ax.set_title("Sharper minima tolerate smaller prune fractions")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def save_landscape_figures(table: pd.DataFrame, directory: str, dpi: int = 150, run=None) -> list[str]:
    """Writes the landscape figures whose rows exist (given the ``run``, the histogram of the Hessian's
    diagonal too: it reads the estimate's artifacts); returns their paths."""
    jobs = []
    if run is not None and not diagonal_table(table).empty:
        jobs.append((DIAGONAL_FIGURE, functools.partial(hessian_diagonal_histogram, run)))
    if not curvature_table(table).empty:
        jobs.append((EIGENVALUE_FIGURE, functools.partial(lambda_max_vs_sparsity, table)))
        jobs.append((PROJECTION_FIGURE, functools.partial(projection_error, table)))
        jobs.append((PREDICTION_FIGURE, functools.partial(predicted_vs_measured, table)))
        if not landscape_rows(table, "matching", "test").empty:
            jobs.append((FRACTION_FIGURE, functools.partial(curvature_vs_fraction, table)))
    return drawing.write_figures(directory, jobs, dpi)


def report(run, directory: str) -> tuple[str, list[str]]:
    """The curvature table and the figures."""
    table = run.table
    text = "\n\n".join(filter(None, [format_landscape(table), format_diagonal(table)]))
    return text, save_landscape_figures(table, directory, run=run)
