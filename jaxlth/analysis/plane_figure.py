"""The figure of a loss plane (:mod:`jaxlth.analysis.plane`): filled contours of the loss or error over
the plane through three networks, the networks marked and labelled (matplotlib is imported when drawing)."""

from __future__ import annotations

import numpy as np

from jaxlth import drawing

__all__ = ["loss_plane"]
LABELS = ("θ₀", "θ₁", "θ₂")


def loss_plane(plane, ax=None, metric: str = "loss", replicate: int = 0, labels=LABELS, levels: int = 20):
    """Filled contours of ``metric`` (``loss`` in nats, log-spaced levels; ``error`` in %) over replicate
    ``replicate``'s plane, with each network marked, labelled (``labels``) and its own value given.
    Axes are distances in parameter space (L2), equal in scale. Returns the Axes."""
    from matplotlib import colors

    if metric not in ("loss", "error"):
        raise ValueError(f"metric must be 'loss' or 'error', got {metric!r}")
    if len(labels) != 3:
        raise ValueError(f"labels must name the three networks, got {len(labels)}")
    factor = 100.0 if metric == "error" else 1.0
    values = factor * np.asarray(getattr(plane, metric))[replicate]
    own = factor * np.asarray(getattr(plane, f"point_{metric}"))[replicate]
    a, b, points = plane.a[replicate], plane.b[replicate], plane.points[replicate]
    ax = drawing.new_axes(ax)
    finite = values[np.isfinite(values)]
    low, high = float(finite.min()), float(finite.max())
    if metric == "loss" and low > 0 and high > low:
        bounds, norm = np.geomspace(low, high, levels), colors.LogNorm(low, high)
    else:
        bounds, norm = np.linspace(low, high if high > low else low + 1.0, levels), None
    filled = ax.contourf(a, b, np.clip(values, low, high), levels=bounds, norm=norm, cmap="viridis", extend="max")
    ax.contour(a, b, values, levels=bounds[::4], colors="white", linewidths=0.4, alpha=0.6)
    unit = " (%)" if metric == "error" else " (nats)"
    ax.figure.colorbar(filled, ax=ax, label=f"{plane.split} {metric}{unit}")
    for (x, y), label, value in zip(points, labels, own):
        ax.plot(x, y, marker="o", color="white", markeredgecolor="black", markersize=7, zorder=3)
        text = f"{label}: {value:.2f}" if metric == "error" else f"{label}: {value:.3g}"
        right = x > (a.min() + a.max()) / 2  # below and to the left of a point in the right half: inside the axes
        ax.annotate(
            text,
            (x, y),
            xytext=(-6, -8) if right else (6, 6),
            textcoords="offset points",
            ha="right" if right else "left",
            va="top" if right else "baseline",
            color="white",
            fontsize="small",
        )
    ax.set_aspect("equal")
    ax.set_xlabel("a: distance along e₁ = (θ₁ − θ₀) / |θ₁ − θ₀|")
    ax.set_ylabel("b: distance along e₂")
    ax.set_title(f"{plane.split.capitalize()} {metric} over the plane through three networks")
    return ax
