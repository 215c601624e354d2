"""Linear mode connectivity of pairs of networks: error curves, both barriers, matching.

Pure functions over stacked replicates; the instability experiment records what they return,
and a notebook can call them on any networks (``jaxlth.analysis.for_run`` gives the program and
data of a saved run).
"""

from __future__ import annotations

import numpy as np

from jaxlth.analysis.barriers import barrier_frankle, barrier_paul
from jaxlth.analysis.interpolation import interpolate


def path(program, net_a: dict, net_b: dict, alphas, eval_sets: dict, bn_batches=None, repair=None) -> dict:
    """The path ``(1 - alpha) a + alpha b`` measured on every split of ``eval_sets``.

    Args:
      net_a, net_b: ``{"params", "batch_stats"}`` with a leading replicate axis ``R``.
      alphas: ``(A,)`` grid with both endpoints; ``eval_sets``: ``{split: (images, labels)}``.
      bn_batches: ``None`` or training images ``(num_batches, B, ...)`` to recompute BatchNorm
        statistics from at every alpha.
      repair: ``None`` or ``(training images (N, ...), sites)``: REPAIR at every alpha
        (:func:`jaxlth.analysis.interpolation.interpolate`).

    Returns:
      ``{split: {"error": (R, A), "loss": (R, A), "barrier_frankle": (R,), "barrier_paul": (R,)}}``
      (errors as fractions).
    """
    out = {}
    for split, (images, labels) in eval_sets.items():
        curve = interpolate(program, net_a, net_b, alphas, images, labels, bn_batches=bn_batches, repair=repair)
        out[split] = {
            "error": curve["error"],
            "loss": curve["loss"],
            "barrier_frankle": barrier_frankle(alphas, curve["error"]),
            "barrier_paul": barrier_paul(alphas, curve["error"]),
        }
    return out


def matching_epsilon(dense_errors, epsilon: float) -> float:
    """The tolerance of "matching": ``epsilon`` if ``>= 0``, else one sample standard deviation
    of the dense network's test error over replicates (0 with a single replicate)."""
    dense = np.asarray(dense_errors, np.float64)
    if epsilon < 0:
        return float(np.std(dense, ddof=1)) if dense.size > 1 else 0.0
    return float(epsilon)


def is_matching(errors, dense_errors, epsilon: float) -> np.ndarray:
    """Per replicate: test error within ``matching_epsilon`` of the dense network's mean test error
    (Frankle et al. 2020; Paul et al. 2023)."""
    dense = np.asarray(dense_errors, np.float64)
    return np.asarray(errors, np.float64) <= dense.mean() + matching_epsilon(dense, epsilon)
