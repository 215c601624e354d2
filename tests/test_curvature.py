"""Curvature: HVPs, Lanczos eigenpairs, Hutchinson traces and SLQ densities against dense Hessians."""

import functools
import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from matfree import decomp

from jaxlth.analysis import curvature as cv
from jaxlth.pruning import masks as mask_lib
from jaxlth.training import functions as fn
from jaxlth.training import setup as setup_lib
from tests.conftest import tiny_config


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(3)(jnp.tanh(nn.Dense(5)(x)))


def mlp_problem(seed=0):
    """``(loss, params)`` of a 6-5-3 tanh MLP on 64 random examples (53 parameters)."""
    key_x, key_y, key_init = jax.random.split(jax.random.PRNGKey(seed), 3)
    x = jax.random.normal(key_x, (64, 6), jnp.float32)
    y = jax.random.randint(key_y, (64,), 0, 3)
    model = MLP()
    params = jax.jit(lambda k: jax.tree.map(lambda p: 2.0 * p, model.init(k, x)["params"]))(key_init)

    def loss(p):
        return jnp.mean(fn.cross_entropy(model.apply({"params": p}, x), y))

    return loss, params


def dense_hessian(loss, params):
    flat, unravel = ravel_pytree(params)
    return np.asarray(jax.jit(jax.hessian(lambda z: loss(unravel(z))))(flat), np.float64)


def random_mask(params, density=0.6, seed=1):
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda m: jnp.asarray(rng.random(m.shape) < density), mask_lib.ones_like(params))


@pytest.fixture(scope="module")
def problem():
    loss, params = mlp_problem()
    mask = random_mask(params)
    kept = np.asarray(cv.subspace_vector(params, mask), bool)
    return loss, params, dense_hessian(loss, params), mask, kept


def test_hvp_matches_the_dense_hessian_with_and_without_a_mask(problem):
    loss, params, h, mask, kept = problem
    flat, unravel = ravel_pytree(params)
    v = jax.random.normal(jax.random.PRNGKey(3), flat.shape, jnp.float32)
    got = ravel_pytree(cv.hvp(loss, params, unravel(v)))[0]
    np.testing.assert_allclose(got, h @ np.asarray(v), rtol=1e-5, atol=1e-5)
    p = np.diag(kept.astype(np.float64))
    masked = ravel_pytree(cv.hvp(loss, params, unravel(v), mask))[0]
    np.testing.assert_allclose(masked, p @ h @ p @ np.asarray(v), rtol=1e-5, atol=1e-5)
    assert np.all(np.asarray(masked)[~kept] == 0.0)
    # Only kernel entries leave the subspace: the 5 + 3 biases are always kept.
    bias = ravel_pytree(jax.tree.map(lambda p: jnp.full(p.shape, p.ndim == 1), params))[0]
    assert 8 < kept.sum() < kept.size and np.all(kept[np.asarray(bias, bool)])
    matvec, dim, _ = cv.flat_operator(loss, params, mask)
    assert dim == int(kept.sum())
    np.testing.assert_allclose(jax.jit(matvec)(v), masked, rtol=1e-5, atol=1e-6)


def test_top_eigenpairs_match_numpy(problem):
    loss, params, h, mask, kept = problem
    matvec, dim, _ = cv.flat_operator(loss, params)
    eig = jax.jit(lambda k: cv.top_eigenpairs(matvec, dim, k, 3, 30))(jax.random.PRNGKey(4))
    want = np.linalg.eigvalsh(h)[::-1][:3]
    np.testing.assert_allclose(eig.values, want, rtol=1e-3)
    assert eig.vectors.shape == (3, dim) and eig.iterations == 30
    assert np.all(np.asarray(eig.residuals) < 1e-3 * abs(want[0]))
    for value, vector in zip(np.asarray(eig.values), np.asarray(eig.vectors, np.float64)):
        assert abs(np.linalg.norm(vector) - 1) < 1e-4
        assert np.linalg.norm(h @ vector - value * vector) < 1e-3 * abs(want[0])
    # Before convergence too, the residuals are the Ritz pairs' residual norms.
    early = jax.jit(lambda k: cv.top_eigenpairs(matvec, dim, k, 3, 12))(jax.random.PRNGKey(4))
    true = [np.linalg.norm(h @ v - lam * v) for lam, v in zip(np.asarray(early.values), np.asarray(early.vectors))]
    assert np.max(true) > 1e-3
    np.testing.assert_allclose(early.residuals, true, rtol=1e-3, atol=1e-6)


def lanczos_estimate(matvec, dim, key, k, iterations):
    """``(k,)`` Lanczos' own ``|beta_m s_{m,i}|`` for the top ``k`` Ritz pairs (what was reported before)."""
    v0 = jax.random.normal(key, (dim,), jnp.float32)
    result = decomp.tridiag_sym(iterations, reortho="full", materialize=True, custom_vjp=False)(matvec, v0)
    s = np.linalg.eigh(np.asarray(result.J_small, np.float64))[1][:, ::-1][:, :k]
    return np.abs(np.linalg.norm(np.asarray(result.residual, np.float64)) * s[-1])


def assert_residuals_bound_the_error(eig, exact, h, matvec):
    """Every returned pair: ``residual = ||H v - lambda v||`` (float32 and float64) bounds the error."""
    values, vectors = np.asarray(eig.values, np.float64), np.asarray(eig.vectors, np.float64)
    residuals = np.asarray(eig.residuals, np.float64)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    direct = [jnp.linalg.norm(matvec(v) - lam * v) for lam, v in zip(eig.values, eig.vectors)]
    rounding = 1e-7 * np.abs(exact).max()  # float32 products differ by their order of summation
    np.testing.assert_allclose(residuals, direct, rtol=1e-3, atol=rounding)
    in_float64 = np.linalg.norm(vectors @ h - values[:, None] * vectors, axis=1)
    np.testing.assert_allclose(residuals, in_float64, rtol=1e-3, atol=rounding)
    error = np.abs(values[:, None] - exact[None]).min(axis=1)
    assert np.all(error <= residuals), (error, residuals)
    return error


@pytest.mark.parametrize("iterations", [6, 30, 50])
def test_residuals_bound_the_eigenvalue_error_of_a_symmetric_matrix(iterations):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(60, 60)).astype(np.float32)
    a = (a + a.T) / 2
    h = a.astype(np.float64)
    exact = np.linalg.eigvalsh(h)
    matvec = lambda x: jnp.asarray(a) @ x  # noqa: E731
    key = jax.random.PRNGKey(0)
    eig = jax.jit(lambda k: cv.top_eigenpairs(matvec, 60, k, 5, iterations))(key)
    error = assert_residuals_bound_the_error(eig, exact, h, matvec)
    old = lanczos_estimate(matvec, 60, key, 5, iterations)
    if iterations == 50:
        # Converged in float32: Lanczos' estimate of the top 4 has fallen to 1e-16..1e-9, far below
        # their eigenvalues' errors (1e-7..1e-6): it bounds nothing; the residual does.
        assert np.all(old[:4] < 1e-8) and np.all(error[:4] > 10 * old[:4]), (old, error)
        assert np.all(np.asarray(eig.residuals) > 1e-6)
    else:  # before convergence they agree, down to the rounding level of the products
        np.testing.assert_allclose(old, eig.residuals, rtol=1e-3, atol=1e-5)


def test_residuals_bound_the_error_of_a_network_hessian_in_float64(problem):
    loss, params, _, mask, kept = problem
    flat, unravel = ravel_pytree(params)
    with jax.enable_x64(True):
        flat64 = jnp.asarray(flat, jnp.float64)
        h = np.asarray(jax.jit(jax.hessian(lambda z: loss(unravel(z))))(flat64), np.float64)
    assert h.dtype == np.float64
    matvec, _, _ = cv.flat_operator(loss, params, mask)
    s = cv.subspace_vector(params, mask)
    sub = np.diag(np.asarray(s, np.float64))
    exact = np.linalg.eigvalsh(sub @ h @ sub)  # M H M: the kept submatrix's eigenvalues and zeros
    for iterations in (5, 25, int(kept.sum())):
        eig = jax.jit(lambda k: cv.top_eigenpairs(matvec, s.size, k, 3, iterations, s))(jax.random.PRNGKey(5))
        assert_residuals_bound_the_error(eig, exact, sub @ h @ sub, matvec)


def test_masked_top_eigenpairs_are_those_of_the_kept_submatrix(problem):
    loss, params, h, mask, kept = problem
    matvec, dim, _ = cv.flat_operator(loss, params, mask)
    s = cv.subspace_vector(params, mask)
    eig = jax.jit(lambda k: cv.top_eigenpairs(matvec, s.size, k, 3, 25, s))(jax.random.PRNGKey(5))
    want = np.linalg.eigvalsh(h[np.ix_(kept, kept)])[::-1][:3]
    np.testing.assert_allclose(eig.values, want, rtol=1e-3)
    assert np.all(np.asarray(eig.vectors)[:, ~kept] == 0.0)
    sub = h[np.ix_(kept, kept)]
    for value, vector in zip(np.asarray(eig.values), np.asarray(eig.vectors, np.float64)):
        assert np.linalg.norm(sub @ vector[kept] - value * vector[kept]) < 1e-3 * abs(want[0])


def test_errors_name_the_bad_argument(problem):
    loss, params, _, mask, kept = problem
    matvec, dim, _ = cv.flat_operator(loss, params, mask)
    s = cv.subspace_vector(params, mask)
    with pytest.raises(ValueError, match=r"k \(5\) must not exceed iterations \(4\)"):
        cv.top_eigenpairs(matvec, s.size, jax.random.PRNGKey(0), 5, 4)
    with pytest.raises(ValueError, match="exceeds the subspace dimension"):
        cv.top_eigenpairs(matvec, s.size, jax.random.PRNGKey(0), 3, dim + 1, s)
    with pytest.raises(ValueError, match="exceeds the subspace dimension"):
        cv.spectral_density(matvec, s.size, jax.random.PRNGKey(0), 2, s.size + 1)


def test_hutchinson_is_exact_on_diagonal_operators_and_unbiased_on_the_hessian(problem):
    d = jnp.linspace(-3.0, 5.0, 40)
    s = (jnp.arange(40) % 3 != 0).astype(jnp.float32)
    est, _ = cv.hutchinson_trace(lambda x: d * x, 40, jax.random.PRNGKey(0), 7)
    np.testing.assert_allclose(est, jnp.sum(d), rtol=1e-5, atol=1e-5)
    est, _ = cv.hutchinson_trace(lambda x: s * d * x, 40, jax.random.PRNGKey(0), 7, s)
    np.testing.assert_allclose(est, jnp.sum(s * d), rtol=1e-5, atol=1e-5)

    loss, params, h, mask, kept = problem
    for m, trace in ((None, np.trace(h)), (mask, np.trace(h[np.ix_(kept, kept)]))):
        matvec, dim, _ = cv.flat_operator(loss, params, m)
        sub = cv.subspace_vector(params, m) if m is not None else None
        est, se = jax.jit(lambda k: cv.hutchinson_trace(matvec, h.shape[0], k, 2000, sub))(jax.random.PRNGKey(6))
        assert abs(est - trace) < 3 * se and abs(est - trace) < 0.1 * abs(trace), (est, se, trace)


def test_slq_density_and_trace():
    a = np.random.default_rng(0).normal(size=(24, 24))
    a = (a + a.T) / 2 + 6 * np.eye(24)  # distinct eigenvalues, trace far from 0
    matvec = lambda x: jnp.asarray(a, jnp.float32) @ x  # noqa: E731
    exact = np.linalg.eigvalsh(a)
    nodes, weights = jax.jit(lambda k: cv.spectral_density(matvec, 24, k, 3, 24))(jax.random.PRNGKey(0))
    assert nodes.shape == weights.shape == (3, 24)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.sort(nodes, axis=1), np.broadcast_to(exact, (3, 24)), atol=1e-3)

    key = jax.random.PRNGKey(1)
    nodes, weights = jax.jit(lambda k: cv.spectral_density(matvec, 24, k, 400, 8))(key)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    grid = jnp.linspace(exact[0] - 5, exact[-1] + 5, 4001)
    density = cv.density_on_grid(nodes, weights, grid, 0.3)
    assert density.shape == grid.shape and np.all(np.asarray(density) >= 0)
    np.testing.assert_allclose(np.trapezoid(density, grid), 1.0, atol=1e-3)
    trace = cv.slq_trace(nodes, weights, 24)
    assert abs(trace - np.trace(a)) < 0.03 * abs(np.trace(a))
    # With Rademacher probes the SLQ trace is Hutchinson's estimate on the same probes.
    hutchinson, _ = cv.hutchinson_trace(matvec, 24, key, 400)
    np.testing.assert_allclose(trace, hutchinson, rtol=1e-4)


def test_vmapped_replicates_equal_separate_calls():
    (loss_a, params_a), (_, params_b) = mlp_problem(0), mlp_problem(1)  # both on replicate a's data
    params = jax.tree.map(lambda x, y: jnp.stack([x, y]), params_a, params_b)
    masks = jax.tree.map(lambda x, y: jnp.stack([x, y]), random_mask(params_a, seed=2), random_mask(params_a, seed=3))
    keys = jax.random.split(jax.random.PRNGKey(7), 2)

    def measure(p, m, key):
        matvec, _, _ = cv.flat_operator(loss_a, p, m)
        s = cv.subspace_vector(p, m)
        eig = cv.top_eigenpairs(matvec, s.size, key, 3, 20, s)
        return eig, cv.hutchinson_trace(matvec, s.size, key, 50, s)

    eig, (trace, se) = jax.jit(jax.vmap(measure))(params, masks, keys)
    for r in range(2):
        pick = lambda t: jax.tree.map(lambda x: x[r], t)  # noqa: E731
        one_eig, (one_trace, one_se) = jax.jit(measure)(pick(params), pick(masks), keys[r])
        np.testing.assert_allclose(eig.values[r], one_eig.values, rtol=1e-4)
        np.testing.assert_allclose(eig.residuals[r], one_eig.residuals, atol=1e-4)
        np.testing.assert_allclose(trace[r], one_trace, rtol=1e-4)
        np.testing.assert_allclose(se[r], one_se, rtol=1e-4)
    assert not np.allclose(eig.values[0], eig.values[1])


def test_subset_loss_chunks_equal_one_pass_and_evaluation():
    setup = setup_lib.build(tiny_config())
    state = setup.init_state()
    params = jax.tree.map(lambda x: x[0], state.params)
    stats = jax.tree.map(lambda x: x[0], state.batch_stats)
    images, labels = setup.data.train_images, setup.data.train_labels  # 256 examples
    whole = cv.subset_loss(setup.program, stats, images, labels, chunk=256)(params)
    chunked = jax.jit(cv.subset_loss(setup.program, stats, images, labels, chunk=64))(params)
    np.testing.assert_allclose(chunked, whole, rtol=1e-5)
    evaluated, _ = setup.program.evaluate_one(params, stats, images, labels)
    np.testing.assert_allclose(whole, evaluated, rtol=1e-5)
    assert cv.subset_loss(setup.program, stats, images[:100], labels[:100], chunk=1000)(params).shape == ()
    with pytest.raises(ValueError, match=r"number of examples \(256\) must be a multiple of chunk \(100\)"):
        cv.subset_loss(setup.program, stats, images, labels, chunk=100)
    with pytest.raises(ValueError, match="bn_mode must be one of"):
        cv.subset_loss(setup.program, stats, images, labels, bn_mode="train")


class BatchNormMLP(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        x = nn.Dense(8)(x.reshape(x.shape[0], -1))
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        return nn.Dense(10, name="output")(nn.relu(x))


def test_subset_loss_batchnorm_modes():
    # A BatchNorm network bound like a Program (per_example_loss and preprocess), without building a run.
    spec = fn.Spec(16, 4, 64, (8, 8, 3), (0.5,) * 3, (0.25,) * 3, 255.0, "none", 64)
    model = BatchNormMLP()
    program = types.SimpleNamespace(
        per_example_loss=functools.partial(fn.per_example_loss, model),
        preprocess=functools.partial(fn.preprocess, spec=spec),
    )
    params, stats = jax.jit(lambda k: fn.init(model, spec, k))(jax.random.PRNGKey(0))
    stats = jax.tree.map(lambda s: s + 0.1, stats)  # running statistics unlike any batch's
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.integers(0, 256, (64, 8, 8, 3), dtype=np.uint8))
    labels = jnp.asarray(rng.integers(0, 10, 64), jnp.int32)
    evaluate = jax.jit(
        lambda p, c, mode: cv.subset_loss(program, stats, images, labels, mode, c)(p), static_argnums=(1, 2)
    )
    np.testing.assert_allclose(evaluate(params, 16, "eval"), evaluate(params, 64, "eval"), rtol=1e-5)
    # "batch": each chunk normalised with its own statistics.
    chunk_loss = jax.jit(
        lambda x, y: jnp.mean(program.per_example_loss(params, stats, program.preprocess(x), y, train=True)[0])
    )
    per_chunk = [chunk_loss(images[i : i + 16], labels[i : i + 16]) for i in range(0, 64, 16)]
    np.testing.assert_allclose(evaluate(params, 16, "batch"), np.mean(per_chunk), rtol=1e-5)
    assert not np.allclose(evaluate(params, 16, "batch"), evaluate(params, 16, "eval"))
    assert not np.allclose(evaluate(params, 16, "batch"), evaluate(params, 64, "batch"))
    # The HVP of the batch-mode loss runs (BatchNorm statistics are functions of params there).
    loss = cv.subset_loss(program, stats, images, labels, "batch", 16)
    out = jax.jit(cv.hvp, static_argnums=0)(loss, params, jax.tree.map(jnp.ones_like, params))
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(out))
