"""Tables and figures of per-example scores (the scores experiment): distributions and agreement.

These take a loaded run (``jaxlth.results.load(workdir)``), not its table: the scores are array
artifacts, one value per training example.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pandas as pd
from scipy import stats

from jaxlth import drawing, subsets, tables

__all__ = [
    "SCORE_FIGURE",
    "score_table",
    "format_scores",
    "score_histogram",
    "replicate_agreement",
    "save_score_figures",
]
SCORE_FIGURE = "score_histogram_{name}.png"  # name: el2n_step0000123, grand_step..., forgetting


def available(run) -> list[tuple[str, str, int | None]]:
    """``[(name, kind, step)]`` of every score the run has saved."""
    kinds = tuple(run.config.get("scores", {}).get("kinds", ()))
    out = [
        (f"{kind}_step{step:07d}", kind, step)
        for step in run.score_steps()
        for kind in subsets.STEP_KINDS
        if kind in kinds
    ]
    if "forgetting" in kinds and run.has_forgetting():
        out.append(("forgetting", "forgetting", None))
    return out


def replicate_agreement(per_replicate: np.ndarray) -> float:
    """Mean Spearman rank correlation between the replicates' scores (``(R, N)``); NaN for R < 2."""
    pairs = list(itertools.combinations(range(per_replicate.shape[0]), 2))
    if not pairs:
        return float("nan")
    finite = np.where(
        np.isfinite(per_replicate), per_replicate, np.nanmax(per_replicate[np.isfinite(per_replicate)], initial=0) + 1
    )
    return float(np.mean([stats.spearmanr(finite[i], finite[j])[0] for i, j in pairs]))


def score_table(run) -> pd.DataFrame:
    """One row per saved score: kind, step, examples, mean, median, 90th percentile (finite values),
    the fraction that is infinite (never learned) and the replicates' rank agreement."""
    rows = []
    for _, kind, step in available(run):
        per_replicate = run.scores(kind, step=step, replicates=True)
        mean = run.scores(kind, step=step)
        finite = mean[np.isfinite(mean)]
        rows.append(
            {
                "kind": kind,
                "step": step if step is not None else -1,
                "examples": mean.size,
                "mean": float(np.mean(finite)) if finite.size else np.nan,
                "median": float(np.median(finite)) if finite.size else np.nan,
                "p90": float(np.percentile(finite, 90)) if finite.size else np.nan,
                "infinite": float(np.mean(~np.isfinite(mean))),
                "replicate_agreement": replicate_agreement(per_replicate),
            }
        )
    return pd.DataFrame(
        rows, columns=["kind", "step", "examples", "mean", "median", "p90", "infinite", "replicate_agreement"]
    )


def format_scores(run) -> str:
    """Text for the terminal: the distribution of every saved score (mean over replicates)."""
    frame = score_table(run)
    if frame.empty:
        return "no per-example scores saved yet"
    body = [
        [
            r["kind"],
            "end" if r["step"] < 0 else str(int(r["step"])),
            str(int(r["examples"])),
            f"{r['mean']:.4g}",
            f"{r['median']:.4g}",
            f"{r['p90']:.4g}",
            f"{100 * r['infinite']:.1f}",
            "-" if pd.isna(r["replicate_agreement"]) else f"{r['replicate_agreement']:.3f}",
        ]
        for _, r in frame.iterrows()
    ]
    header = ["score", "step", "examples", "mean", "median", "p90", "% never learned", "replicate rank corr"]
    title = "per-example scores (mean over replicates; larger = harder)"
    return "\n".join([title, *tables.render(header, body)])


def score_histogram(run, kind: str, step: int | None = None, ax=None, bins: int = 60):
    """Histogram of one score over the training examples (mean over replicates); never-learned
    examples (forgetting = inf) are counted in the title, not drawn."""
    ax = drawing.new_axes(ax)
    values = run.scores(kind, step=step)
    finite = values[np.isfinite(values)]
    if kind == "forgetting":
        edges = np.arange(
            -0.5,
            (finite.max() if finite.size else 0) + 1.5,
            1.0 if finite.size and np.allclose(finite, np.round(finite)) else 0.25,
        )
        ax.hist(finite, bins=edges if edges.size < 200 else bins, color="C3")
        ax.set_xlabel("forgetting events (mean over replicates)")
        ax.set_title(f"forgetting: {int(np.sum(~np.isfinite(values)))} of {values.size} examples never learned")
    else:
        ax.hist(finite, bins=bins, color="C0" if kind == "el2n" else "C1")
        ax.set_xlabel(f"{kind.upper() if kind == 'el2n' else 'GraNd'} (mean over replicates)")
        ax.set_title(f"{kind} at step {step}: {values.size} training examples")
    ax.set_ylabel("examples")
    return ax


def save_score_figures(run, directory: str) -> list[str]:
    """One histogram per saved score (:data:`SCORE_FIGURE`)."""
    jobs = [
        (SCORE_FIGURE.format(name=name), functools.partial(score_histogram, run, kind, step))
        for name, kind, step in available(run)
    ]
    return drawing.write_figures(directory, jobs)


def report(run, directory: str) -> tuple[str, list[str]]:
    """The distribution of every saved score and its histogram."""
    return format_scores(run), save_score_figures(run, directory)
