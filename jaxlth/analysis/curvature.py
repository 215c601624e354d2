"""Curvature of the loss landscape: Hessian-vector products, top eigenpairs, trace, diagonal, spectral density.

Every function here is a pure function of ONE network (no replicate axis): the caller
``jax.vmap``-s it over stacked replicates (params, masks and keys each with a leading axis).
Nothing is jitted here; wrap the call in ``jax.jit`` (the Lanczos and probe loops are
``lax`` loops, so one call compiles to one program).

Masked networks (a pruned ticket) are studied in the subspace the mask keeps: ``M H M`` with
``M`` the 0/1 projection onto kept kernel entries plus every leaf the mask does not cover (biases,
BatchNorm parameters). The flat operators live in the FULL flat parameter space (``dim_full``
coordinates, ``jax.flatten_util.ravel_pytree`` order) and multiply by the 0/1 ``subspace`` vector
(:func:`subspace_vector`): shapes do not depend on the mask, so replicates with different masks
vmap together. Pruned coordinates are exact zero eigen-directions of ``M H M``; the Krylov methods
start inside the subspace (random start vectors times ``subspace``) so those zeros never enter
their results, and ``dim`` (the kept count) is what a trace or density is normalised by.

Lanczos (full reorthogonalisation) comes from ``matfree.decomp.tridiag_sym``. Keep ``iterations``
below the number of distinct eigenvalues of the operator (always true for real networks): past
an invariant Krylov subspace the iteration breaks down.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree
from matfree import decomp

from jaxlth.pruning import masks as mask_lib

PyTree = Any
BN_MODES = ("eval", "batch")


def subset_loss(
    program, batch_stats: PyTree, images: jax.Array, labels: jax.Array, bn_mode: str = "eval", chunk: int = 1000
) -> Callable[[PyTree], jax.Array]:
    """``params -> ()`` mean cross-entropy (nats/example) on a fixed set of examples.

    ``images`` ``(N, ...)`` are stored images (uint8 pixels or floats), preprocessed with
    ``program.preprocess`` (no augmentation); ``labels`` int ``(N,)``. The loss is summed over
    chunks of ``chunk`` examples in a ``lax.map`` (each chunk rematerialised under
    ``jax.checkpoint``, so gradients and HVPs of 10,000 examples hold one chunk's activations);
    ``N`` must be a multiple of ``chunk`` (``chunk = N`` when ``N < chunk``).

    ``bn_mode``: ``"eval"``: BatchNorm normalises with the running statistics ``batch_stats``
    (``train=False``), so the loss is a fixed function of the parameters, the one evaluation
    reports. ``"batch"``: every chunk is normalised with its own batch statistics (``train=True``,
    the updated running statistics are discarded), the function SGD differentiates; it then
    depends on ``chunk``. Models without BatchNorm give the same loss in both modes.
    """
    if bn_mode not in BN_MODES:
        raise ValueError(f"bn_mode must be one of {BN_MODES}, got {bn_mode!r}")
    n = images.shape[0]
    size = min(int(chunk), n)
    if size <= 0 or n % size:
        raise ValueError(f"the number of examples ({n}) must be a multiple of chunk ({chunk})")
    batches = (images.reshape(n // size, size, *images.shape[1:]), labels.reshape(n // size, size))
    train = bn_mode == "batch"

    def loss(params: PyTree) -> jax.Array:
        @jax.checkpoint
        def one(batch):
            x, y = batch
            losses, _, _ = program.per_example_loss(params, batch_stats, program.preprocess(x), y, train=train)
            return jnp.sum(losses)

        return jnp.sum(lax.map(one, batches)) / n

    return loss


def hvp(loss: Callable[[PyTree], jax.Array], params: PyTree, v: PyTree, mask: PyTree | None = None) -> PyTree:
    """Hessian-vector product ``H v`` of scalar ``loss`` at ``params`` (a pytree like ``params``).

    Forward-over-reverse: ``jax.jvp`` of ``jax.grad``, one forward and one backward pass of
    ``loss`` with tangents. With a ``mask``, ``M H M v``: masked-out kernel entries are zeroed in
    ``v`` and in the result; leaves the mask does not hold are always kept. ``params`` are used as
    given (a pruned network's weights are already zero where the mask is False).
    """
    if mask is not None:
        v = mask_lib.apply(v, mask)
    out = jax.jvp(jax.grad(loss), (params,), (v,))[1]
    return out if mask is None else mask_lib.apply(out, mask)


def subspace_vector(params: PyTree, mask: PyTree | None = None) -> jax.Array:
    """``(dim_full,)`` float32 0/1: the coordinates (``ravel_pytree`` order) the mask keeps."""
    ones = jax.tree.map(lambda p: jnp.ones(jnp.shape(p), jnp.float32), params)
    return ravel_pytree(ones if mask is None else mask_lib.apply(ones, mask))[0]


def _count(subspace: jax.Array | None, dim_full: int) -> int | None:
    """Kept coordinates as a Python int; ``None`` when ``subspace`` is traced (under vmap/jit)."""
    if subspace is None:
        return dim_full
    try:
        return int(jnp.sum(subspace))
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerIntegerConversionError):
        return None


def flat_operator(loss: Callable[[PyTree], jax.Array], params: PyTree, mask: PyTree | None = None):
    """``(matvec, dim, unravel)``: the (masked) Hessian as a map of flat float32 vectors.

    ``matvec: (dim_full,) -> (dim_full,)`` is ``x -> s * H (s * x)`` with ``s`` =
    :func:`subspace_vector` (``s = 1`` without a mask), on the full flat parameter space
    (jittable, vmappable over replicates whatever their masks). ``dim`` is the number of kept
    coordinates (a Python int for a concrete mask, a traced int32 under vmap);
    ``dim_full = subspace_vector(params, mask).size``. ``unravel`` maps a flat vector to a pytree.
    """
    flat, unravel = ravel_pytree(params)
    s = subspace_vector(params, mask)
    count = _count(s, flat.size)
    dim = count if count is not None else jnp.sum(s).astype(jnp.int32)

    def matvec(x: jax.Array) -> jax.Array:
        return s * ravel_pytree(hvp(loss, params, unravel((s * x).astype(flat.dtype))))[0]

    return matvec, dim, unravel


@dataclasses.dataclass(frozen=True)
class Eigen:
    """Ritz pairs of the largest eigenvalues: ``values (k,)`` descending, ``vectors (k, dim_full)``
    (unit norm, flat), ``residuals (k,)`` the true residual norms ``||H v - lambda v||`` of the returned
    pairs (one more product with ``H`` each; for a symmetric ``H`` some exact eigenvalue lies within
    ``residual`` of ``lambda``, eigenvalue units), ``iterations`` (static): Lanczos steps."""

    values: jax.Array
    vectors: jax.Array
    residuals: jax.Array
    iterations: int


jax.tree_util.register_dataclass(Eigen, data_fields=["values", "vectors", "residuals"], meta_fields=["iterations"])


def _check_krylov(iterations: int, dim_full: int, subspace, what: str) -> None:
    if iterations < 1:
        raise ValueError(f"{what} needs iterations >= 1, got {iterations}")
    available = _count(subspace, dim_full)
    if available is not None and iterations > available:
        raise ValueError(f"iterations ({iterations}) exceeds the subspace dimension ({available})")


def _start(key: jax.Array, dim_full: int, subspace, rademacher: bool) -> jax.Array:
    shape = (dim_full,)
    z = jax.random.rademacher(key, shape, jnp.float32) if rademacher else jax.random.normal(key, shape, jnp.float32)
    return z if subspace is None else z * subspace


def _tridiagonal(matvec: Callable, v0: jax.Array, iterations: int):
    """``(Q (m, dim_full), T (m, m))`` of ``m`` Lanczos steps from ``v0``."""
    tridiag = decomp.tridiag_sym(iterations, reortho="full", materialize=True, custom_vjp=False)
    result = tridiag(matvec, v0)
    return result.Q_tall, result.J_small


def top_eigenpairs(
    matvec: Callable, dim_full: int, key: jax.Array, k: int, iterations: int, subspace: jax.Array | None = None
) -> Eigen:
    """The ``k`` largest eigenpairs of a symmetric ``matvec`` by Lanczos (``iterations`` steps).

    Full reorthogonalisation, a Gaussian start vector from ``key`` (times ``subspace``, the 0/1
    float ``(dim_full,)`` vector of :func:`subspace_vector`, when given), and ``jnp.linalg.eigh``
    of the ``(iterations, iterations)`` tridiagonal matrix. One ``lax`` loop, no host round trips.

    Each residual is ``||matvec(v) - lambda v||`` of the returned unit pair, from one more product
    per pair (``k`` in a ``lax.map``, one at a time): a bound on the eigenvalue's error, unlike
    Lanczos' ``|beta_m s_{m,i}|``, which in floating point keeps shrinking past the rounding level
    of the products once a pair has converged.
    """
    if k > iterations:
        raise ValueError(f"k ({k}) must not exceed iterations ({iterations})")
    _check_krylov(iterations, dim_full, subspace, "top_eigenpairs")
    q, t = _tridiagonal(matvec, _start(key, dim_full, subspace, rademacher=False), iterations)
    theta, s = jnp.linalg.eigh(t)
    theta, s = theta[::-1][:k], s[:, ::-1][:, :k]
    vectors = s.T @ q
    vectors = vectors / jnp.linalg.norm(vectors, axis=1, keepdims=True)
    residuals = lax.map(lambda pair: jnp.linalg.norm(matvec(pair[1]) - pair[0] * pair[1]), (theta, vectors))
    return Eigen(theta, vectors, residuals, iterations)


def hutchinson_trace(
    matvec: Callable, dim_full: int, key: jax.Array, probes: int, subspace: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    """``(estimate, standard_error)`` of ``trace(matvec)`` (of ``M H M`` on the subspace).

    Hutchinson's estimator with ``probes`` Rademacher vectors (times ``subspace``), one after the
    other in a ``lax.map`` (memory of one HVP at a time). The standard error is the sample
    standard deviation (``ddof=1``) over ``sqrt(probes)``. Exact for diagonal operators.
    """
    if probes < 1:
        raise ValueError(f"hutchinson_trace needs probes >= 1, got {probes}")

    def one(probe_key):
        z = _start(probe_key, dim_full, subspace, rademacher=True)
        return jnp.vdot(z, matvec(z))

    samples = lax.map(one, jax.random.split(key, probes))
    spread = jnp.std(samples, ddof=1) if probes > 1 else jnp.float32(jnp.nan)
    return jnp.mean(samples), spread / jnp.sqrt(probes)


def hutchinson_diagonal(
    matvec: Callable, dim_full: int, key: jax.Array, probes: int, subspace: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    """``(estimate (dim_full,), standard_error (dim_full,))`` of ``diag(matvec)`` (of ``M H M``).

    Bekas, Kokiopoulou & Saad (2007): ``diag(H) ~ mean_k z_k * H z_k`` over ``probes`` Rademacher
    vectors ``z_k`` (times ``subspace``); unbiased, since ``E[z_i z_j] = delta_ij``, and exact for a
    diagonal operator whatever the probes. The probes run one after the other in a ``lax.scan``
    holding a running mean and sum of squared deviations (Welford): memory of one HVP and two flat
    vectors, whatever ``probes``. The standard error is the per-coordinate sample standard deviation
    (``ddof=1``) over ``sqrt(probes)`` (NaN for one probe). Coordinates outside ``subspace`` are 0.
    Its key should not be the trace's: the two would share probes (draw it from its own stream).
    """
    if probes < 1:
        raise ValueError(f"hutchinson_diagonal needs probes >= 1, got {probes}")

    def step(carry, indexed):
        mean, squares = carry
        k, probe_key = indexed
        z = _start(probe_key, dim_full, subspace, rademacher=True)
        sample = z * matvec(z)
        delta = sample - mean
        mean = mean + delta / (k + 1.0)
        return (mean, squares + delta * (sample - mean)), None

    zeros = jnp.zeros((dim_full,), jnp.float32)
    indexed = (jnp.arange(probes, dtype=jnp.float32), jax.random.split(key, probes))
    (mean, squares), _ = lax.scan(step, (zeros, zeros), indexed)
    spread = jnp.sqrt(squares / (probes - 1)) if probes > 1 else jnp.full_like(mean, jnp.nan)
    return mean, spread / jnp.sqrt(probes)


def spectral_density(
    matvec: Callable, dim_full: int, key: jax.Array, probes: int, iterations: int, subspace: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    """``(nodes, weights)``, each ``(probes, iterations)``: stochastic Lanczos quadrature.

    For each of ``probes`` Rademacher start vectors (times ``subspace``), ``iterations`` Lanczos
    steps; the nodes are the Ritz values (eigenvalues of the tridiagonal, ascending) and the
    weights the squared first components of its eigenvectors (each probe's weights sum to 1).
    The spectral density of the ``dim`` eigenvalues is ``~ mean_p sum_i w_pi delta(x - node_pi)``.
    """
    _check_krylov(iterations, dim_full, subspace, "spectral_density")
    if probes < 1:
        raise ValueError(f"spectral_density needs probes >= 1, got {probes}")

    def one(probe_key):
        _, t = _tridiagonal(matvec, _start(probe_key, dim_full, subspace, rademacher=True), iterations)
        theta, s = jnp.linalg.eigh(t)
        return theta, s[0, :] ** 2

    return lax.map(one, jax.random.split(key, probes))


def density_on_grid(nodes: jax.Array, weights: jax.Array, grid: jax.Array, sigma: float) -> jax.Array:
    """``(G,)`` spectral density on ``grid`` ``(G,)``: SLQ nodes smoothed by Gaussians of width
    ``sigma`` (eigenvalue units), averaged over probes; integrates to 1 over a grid covering the
    nodes by a few ``sigma`` (units: 1 / eigenvalue)."""
    z = (grid[:, None, None] - nodes[None]) / sigma
    kernel = jnp.exp(-0.5 * z**2) / (sigma * jnp.sqrt(2.0 * jnp.pi))
    return jnp.mean(jnp.sum(weights[None] * kernel, axis=-1), axis=-1)


def slq_trace(nodes: jax.Array, weights: jax.Array, dim) -> jax.Array:
    """``()`` trace estimate from SLQ: ``dim * mean_p sum_i w_pi node_pi`` (``dim``: kept coordinates).

    With Rademacher probes in the subspace it equals Hutchinson's estimate on the same probes."""
    return dim * jnp.mean(jnp.sum(weights * nodes, axis=-1))
