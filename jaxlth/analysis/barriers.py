"""Error barriers along a linear path, from errors measured on a grid of alphas (numpy).

``errors[..., i]`` is the error of ``(1 - alphas[i]) * a + alphas[i] * b``; the grid must hold
both endpoints (``alphas[0] == 0``, ``alphas[-1] == 1``).

* Frankle et al. 2020 (instability): ``max_alpha E(alpha) - (E(0) + E(1)) / 2``.
* Paul et al. 2022/2023: ``max_alpha E(alpha) - ((1 - alpha) E(0) + alpha E(1))``, the height above
  the straight line between the endpoint errors (0 when the curve is linear).

The path from a network's start ``a = theta_0`` to its trained ``b = theta_T`` has its own summaries
(:func:`start_to_end_statistics`), of a curve ``f`` of loss or error: Goodfellow et al. (2015) found
the loss along it monotonically decreasing for the networks of their day, the property Lucas et al.
(2021) call monotonic linear interpolation (MLI); Frankle (2020, "Revisiting 'Qualitatively
characterizing neural network optimization problems'") found it roughly monotonically non-increasing
for modern CIFAR-10 and ImageNet networks (100 points of the path) yet staying high until close to
``theta_T``; Vlaar & Frankle (ICML 2022, "What can linear interpolation of neural network loss
landscapes tell us?") ask what a barrier along it says of the training and find its shape no guide to
the test accuracy. The definitions below are this module's (on the measured grid of alphas):

* ``rise``: ``max_alpha f(alpha) - f(0)`` (>= 0), the largest rise above the start: > 0 when some
  point of the path is worse than ``theta_0`` itself;
* ``bump``: ``max_j (f(alpha_j) - min_{i <= j} f(alpha_i))`` (>= ``rise``), the largest rise above
  any earlier point: 0 exactly when the curve is monotonically non-increasing;
* ``monotonic``: 1.0 when ``bump <= tolerance`` (default :data:`MONOTONIC_TOLERANCE`, in the curve's
  units: nats of loss, or a fraction of examples for the error), else 0.0;
* ``peak_alpha``: the alpha where ``f`` is highest (the first on ties; 0 for a non-increasing curve).
"""

from __future__ import annotations

import numpy as np

# A start-to-end curve is monotonic when it never rises by more than this (0.1% of the examples for
# an error, 0.001 nats for a loss): float noise and single examples near the decision boundary on a
# plateau (Frankle 2020's loss stays near its initial value for much of the path) are not a barrier.
MONOTONIC_TOLERANCE = 1e-3
START_TO_END = ("rise", "bump", "monotonic", "peak_alpha")  # the statistics of start_to_end_statistics


def alpha_grid(num: int = 30) -> np.ndarray:
    """``num`` evenly spaced coefficients in [0, 1], both endpoints included."""
    if num < 2:
        raise ValueError(f"an alpha grid needs at least 2 points, got {num}")
    return np.linspace(0.0, 1.0, num)


def _check(alphas: np.ndarray, errors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    alphas, errors = np.asarray(alphas, np.float64), np.asarray(errors, np.float64)
    if alphas[0] != 0.0 or alphas[-1] != 1.0:
        raise ValueError("the alpha grid must start at 0 and end at 1")
    if errors.shape[-1] != alphas.shape[0]:
        raise ValueError(f"{errors.shape[-1]} errors for {alphas.shape[0]} alphas")
    return alphas, errors


def barrier_frankle(alphas, errors) -> np.ndarray:
    """Max error along the path minus the mean endpoint error; shape ``errors.shape[:-1]``."""
    alphas, errors = _check(alphas, errors)
    return errors.max(axis=-1) - 0.5 * (errors[..., 0] + errors[..., -1])


def barrier_paul(alphas, errors) -> np.ndarray:
    """Max over alpha of the error minus the linear interpolation of the endpoint errors."""
    alphas, errors = _check(alphas, errors)
    line = (1.0 - alphas) * errors[..., :1] + alphas * errors[..., -1:]
    return (errors - line).max(axis=-1)


def rise_above_start(alphas, values) -> np.ndarray:
    """``max_alpha f(alpha) - f(0)``: the largest rise above the start (>= 0); shape ``values.shape[:-1]``."""
    alphas, values = _check(alphas, values)
    return values.max(axis=-1) - values[..., 0]


def largest_bump(alphas, values) -> np.ndarray:
    """``max_j (f(alpha_j) - min_{i <= j} f(alpha_i))``: the largest rise above any earlier point of the
    path (>= 0, and 0 exactly when ``f`` is non-increasing along the grid)."""
    alphas, values = _check(alphas, values)
    return (values - np.minimum.accumulate(values, axis=-1)).max(axis=-1)


def peak_alpha(alphas, values) -> np.ndarray:
    """The alpha at which ``f`` is highest (the first such on ties)."""
    alphas, values = _check(alphas, values)
    return alphas[np.argmax(values, axis=-1)]


def start_to_end_statistics(alphas, values, tolerance: float = MONOTONIC_TOLERANCE) -> dict[str, np.ndarray]:
    """The summaries of a start-to-end curve (module docstring): ``{"rise", "bump", "monotonic",
    "peak_alpha"}``, each of shape ``values.shape[:-1]``; ``monotonic`` is 1.0 or 0.0."""
    if not tolerance >= 0:
        raise ValueError(f"the tolerance of monotonicity must be >= 0, got {tolerance}")
    bump = largest_bump(alphas, values)
    return {
        "rise": rise_above_start(alphas, values),
        "bump": bump,
        "monotonic": (bump <= tolerance).astype(np.float64),
        "peak_alpha": peak_alpha(alphas, values),
    }
