"""Figures and the terminal report of a distill run: the synthetic images, the loss of the outer loop."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from jaxlth import drawing, tables
from jaxlth.experiments.distill.run import LOSS, ROWS

__all__ = ["distilled_images", "distill_loss", "mosaic"]
IMAGES_FIGURE = "distilled_r{replicate}.png"
LOSS_FIGURE = "distill_loss.png"


def mosaic(images: np.ndarray, images_per_class: int, gap: int = 1) -> np.ndarray:
    """``(K * (H + gap), ipc * (W + gap), C)``: a class-major set ``(N, H, W, C)`` tiled, one row per class,
    scaled to ``[0, 1]`` over the whole set (0.5th to 99.5th percentile; gaps white)."""
    n, h, w, c = images.shape
    k = n // images_per_class
    lo, hi = np.percentile(images, [0.5, 99.5])
    scaled = np.clip((images - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    out = np.ones((k * (h + gap), images_per_class * (w + gap), c), np.float32)
    for i, image in enumerate(scaled):
        row, col = divmod(i, images_per_class)
        out[row * (h + gap) : row * (h + gap) + h, col * (w + gap) : col * (w + gap) + w] = image
    return out


def distilled_images(run, replicate: int = 0, ax=None):
    """The synthetic set ``replicate`` of a finished run: one row per class (its learned soft labels not shown)."""
    ax = drawing.new_axes(ax)
    images = np.asarray(run.distilled(replicate)["images"])
    ipc = int(run.config["distill"]["images_per_class"])
    if images.ndim != 4:
        ax.text(0.5, 0.5, f"images of shape {images.shape[1:]} are not drawn", ha="center", va="center")
        ax.set_axis_off()
        return ax
    tiled = mosaic(images, ipc)
    ax.imshow(tiled[..., 0] if tiled.shape[-1] == 1 else tiled, cmap="gray" if tiled.shape[-1] == 1 else None)
    ax.set_xticks([])
    ax.set_yticks(np.arange(images.shape[0] // ipc) * (images.shape[1] + 1) + images.shape[1] / 2)
    ax.set_yticklabels([str(c) for c in range(images.shape[0] // ipc)])
    ax.set_ylabel("class")
    method = run.config["distill"]["method"].upper()
    ax.set_title(f"{method}: synthetic set {replicate}, {ipc} image(s) per class")
    return ax


def distill_loss(table: pd.DataFrame, ax=None):
    """The outer loop's loss (mean over each logging window) against the iteration, one line per set."""
    ax = drawing.new_axes(ax)
    rows = table[(table["arm"] == ROWS["arm"]) & (table["split"] == ROWS["split"])]
    rows = rows[rows["metric"].isin(tuple(LOSS.values()))]
    for replicate, part in rows.groupby("replicate"):
        part = part.sort_values("step")
        ax.plot(part["step"], part["value"], label=f"set {replicate}")
    if not rows.empty:
        ax.set_yscale("log")
        ax.set_ylabel(rows["metric"].iloc[0].replace("_", " "))
        ax.legend()
    ax.set_xlabel("outer iteration")
    return ax


def summary(run) -> str:
    """Per set: the last logged loss, the learned lr, and a fresh network's test accuracy at the start and end."""
    table = run.table
    rows = table[(table["arm"] == ROWS["arm"]) & (table["split"] == ROWS["split"])]
    if rows.empty:
        return "distill: no iteration logged yet"
    last = rows[rows["step"] == rows["step"].max()]
    tested = run.tested()
    body = []
    for r in sorted(last["replicate"].unique()):
        mine = last[last["replicate"] == r].set_index("metric")["value"]
        loss = next(v for m, v in mine.items() if m in LOSS.values())
        accuracy = tested[(tested["replicate"] == r) & (tested["metric"] == "accuracy")].set_index("step")["value"]
        start, end = (f"{accuracy[s]:.4f}" if s in accuracy.index else "-" for s in (0, accuracy.index.max()))
        body.append([str(r), str(int(last["step"].max())), f"{loss:.4g}", f"{mine.get('lr', np.nan):.4g}", start, end])
    header = ["set", "iteration", "loss", "lr", "test acc (start set)", "test acc (distilled)"]
    method = run.config["distill"]["method"].upper()
    title = f"distill ({method}): loss over the last logging window; a fresh network's test accuracy"
    return "\n".join([title, *tables.render(header, body)])


def report(run, directory: str) -> tuple[str, list[str]]:
    jobs = [(LOSS_FIGURE, functools.partial(distill_loss, run.table))]
    if run.finished_distilling():
        jobs += [
            (IMAGES_FIGURE.format(replicate=r), functools.partial(distilled_images, run, r))
            for r in range(int(run.config["replicates"]))
        ]
    return summary(run), drawing.write_figures(directory, jobs)
