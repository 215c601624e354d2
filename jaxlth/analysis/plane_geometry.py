"""The geometry of the plane through three networks (:mod:`jaxlth.analysis.plane`): its orthonormal basis
(Gram-Schmidt on ``theta_1 - theta_0`` and ``theta_2 - theta_0`` over every parameter leaf), the networks'
coordinates in it, the grid of points evaluated, and each point's barycentric weights on the three networks."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlth.errors import UserError

PyTree = Any
DEGENERATE = 1e-5  # |v'| below this fraction of |v| (or |u| of |theta_0|): the three networks span no plane


def _vdot(x: PyTree, y: PyTree) -> jax.Array:
    pairs = zip(jax.tree.leaves(x), jax.tree.leaves(y))
    return sum(jnp.vdot(p.astype(jnp.float32), q.astype(jnp.float32)) for p, q in pairs)


def basis(params0: PyTree, params1: PyTree, params2: PyTree) -> tuple[PyTree, PyTree, jax.Array]:
    """``(e_1, e_2, points (3, 2))`` of ONE replicate's three parameter pytrees (``jax.vmap`` it over
    replicates): the orthonormal basis of their plane (pytrees like the parameters) and the networks'
    coordinates in it. Degenerate planes give zero or non-finite entries: :func:`check_plane` says so."""
    u = jax.tree.map(jnp.subtract, params1, params0)
    v = jax.tree.map(jnp.subtract, params2, params0)
    norm_u = jnp.sqrt(_vdot(u, u))
    e1 = jax.tree.map(lambda x: x / norm_u, u)
    c1 = _vdot(v, e1)
    rest = jax.tree.map(lambda x, e: x - c1 * e, v, e1)
    rest = jax.tree.map(lambda x, e: x - _vdot(rest, e1) * e, rest, e1)  # again: orthogonal in float32
    c2 = jnp.sqrt(_vdot(rest, rest))
    e2 = jax.tree.map(lambda x: x / c2, rest)
    points = jnp.stack([jnp.zeros(2), jnp.stack([norm_u, 0.0]), jnp.stack([c1, c2])]).astype(jnp.float32)
    return e1, e2, points


stacked_basis = jax.jit(jax.vmap(basis))


@jax.jit
@jax.vmap
def scales(params0: PyTree, params2: PyTree) -> jax.Array:
    """``(|theta_0|, |theta_2 - theta_0|)`` per replicate: what :func:`check_plane` measures against."""
    v = jax.tree.map(jnp.subtract, params2, params0)
    return jnp.sqrt(jnp.stack([_vdot(params0, params0), _vdot(v, v)]))


def check_plane(points: np.ndarray, norms: np.ndarray) -> None:
    """One sentence when a replicate's three networks span no plane (``points (R, 3, 2)``; ``norms (R, 2)``:
    ``|theta_0|`` and ``|theta_2 - theta_0|``)."""
    for r, ((_, p1, p2), (size0, size_v)) in enumerate(zip(np.asarray(points, np.float64), norms)):
        if not p1[0] > DEGENERATE * max(size0, 1e-30):
            raise UserError(f"the three networks span no plane: networks 0 and 1 are the same (replicate {r})")
        if not p2[1] > DEGENERATE * max(size_v, 1e-30):
            raise UserError(
                f"the three networks span no plane: network 2 lies on the line through networks 0 and 1 (replicate {r})"
            )


def grid(points: np.ndarray, resolution: int, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """``(a (R, G), b (R, G))``: ``G = resolution`` evenly spaced coordinates per axis spanning the three
    points plus ``margin`` times the larger of their two spans on every side."""
    points = np.asarray(points, np.float64)
    low, high = points.min(axis=1), points.max(axis=1)  # (R, 2)
    pad = margin * (high - low).max(axis=1, keepdims=True)
    t = np.linspace(0.0, 1.0, resolution)
    spans = [(low[:, k, None] - pad) + t * ((high[:, k] - low[:, k])[:, None] + 2 * pad) for k in (0, 1)]
    return spans[0], spans[1]


def barycentric(points: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """``(..., P, 3)`` float64 weights of ``ab`` ``(..., P, 2)`` on the points ``(..., 3, 2)`` (the first
    at the origin, the second on the first axis): exactly one-hot at each point."""
    points, ab = np.asarray(points, np.float64), np.asarray(ab, np.float64)
    w2 = ab[..., 1] / points[..., None, 2, 1]
    w1 = (ab[..., 0] - points[..., None, 2, 0] * w2) / points[..., None, 1, 0]
    return np.stack([1.0 - w1 - w2, w1, w2], axis=-1)
