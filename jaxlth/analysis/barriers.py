"""Error barriers along a linear path, from errors measured on a grid of alphas (numpy).

``errors[..., i]`` is the error of ``(1 - alphas[i]) * a + alphas[i] * b``; the grid must hold
both endpoints (``alphas[0] == 0``, ``alphas[-1] == 1``).

* Frankle et al. 2020 (instability): ``max_alpha E(alpha) - (E(0) + E(1)) / 2``.
* Paul et al. 2022/2023: ``max_alpha E(alpha) - ((1 - alpha) E(0) + alpha E(1))``, the height above
  the straight line between the endpoint errors (0 when the curve is linear).
"""

from __future__ import annotations

import numpy as np


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
