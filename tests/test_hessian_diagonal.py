"""Hutchinson's estimate of the Hessian's diagonal, and the landscape experiment's record of its distribution."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlth import experiments, plots, results
from jaxlth.analysis import curvature as cv
from jaxlth.errors import UserError
from jaxlth.experiments.landscape import diagonal
from tests.conftest import tiny_config
from tests.test_curvature import dense_hessian, mlp_problem, random_mask
from tests.test_landscape import NARROW, exact_hessian
from tests.test_landscape import landscape_config as full_landscape_config

CHEAP = {  # the rest of the landscape's measurements, as cheap as they go
    "landscape.top_k": 1,
    "landscape.lanczos_iterations": 4,
    "landscape.trace_probes": 2,
    "landscape.alphas": 2,
    "landscape.projection_fractions": (0.5,),
}


def landscape_config(source: str, **changes):
    return full_landscape_config(source, **{**CHEAP, **changes})


def test_exact_for_a_diagonal_operator_whatever_the_probes():
    d = jnp.linspace(-3.0, 5.0, 40)
    s = (jnp.arange(40) % 3 != 0).astype(jnp.float32)
    for probes in (2, 5):
        est, se = cv.hutchinson_diagonal(lambda x: d * x, 40, jax.random.PRNGKey(probes), probes)
        np.testing.assert_array_equal(est, d)  # z * (d * z) = d, exactly, for z = +-1
        np.testing.assert_array_equal(se, np.zeros(40))
    est, _ = cv.hutchinson_diagonal(lambda x: s * d * x, 40, jax.random.PRNGKey(0), 3, s)
    np.testing.assert_array_equal(est, s * d)  # outside the subspace: 0


def test_streamed_mean_and_standard_error_equal_the_samples():
    """The running (Welford) mean and spread equal those of the probes' samples ``z * H z`` taken at once."""
    a = np.random.default_rng(0).normal(size=(12, 12))
    h = jnp.asarray((a + a.T) / 2, jnp.float32)
    key, probes = jax.random.PRNGKey(3), 9
    est, se = cv.hutchinson_diagonal(lambda x: h @ x, 12, key, probes)
    z = jax.vmap(lambda k: jax.random.rademacher(k, (12,), jnp.float32))(jax.random.split(key, probes))
    samples = np.asarray(z * (z @ h.T), np.float64)
    np.testing.assert_allclose(est, samples.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(se, samples.std(0, ddof=1) / np.sqrt(probes), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("masked", [False, True])
def test_converges_to_the_diagonal_of_a_network_hessian(masked):
    """A dense Hessian (53 parameters): within 4 standard errors of ``diag(jax.hessian(f))`` per entry, and
    of ``diag(M H M)`` (zero where pruned) with a mask."""
    loss, params = mlp_problem()
    h = dense_hessian(loss, params)
    mask = random_mask(params) if masked else None
    matvec, _, _ = cv.flat_operator(loss, params, mask)
    sub = cv.subspace_vector(params, mask) if masked else None
    run = jax.jit(lambda k: cv.hutchinson_diagonal(matvec, h.shape[0], k, 3000, sub))
    est, se = (np.asarray(x, np.float64) for x in run(jax.random.PRNGKey(1)))
    exact = np.diag(h) * (np.asarray(sub) if masked else 1.0)
    assert np.all(np.abs(est - exact) <= 4 * se + 1e-6), np.max(np.abs(est - exact) / (se + 1e-12))
    assert np.abs(est - exact).max() < 0.1 * np.abs(exact).max()
    if masked:
        np.testing.assert_array_equal(est[np.asarray(sub) == 0], 0.0)


def test_vmapped_over_replicates_equals_each_alone():
    hs = jnp.asarray(np.random.default_rng(1).normal(size=(3, 8, 8)), jnp.float32)
    hs = (hs + hs.transpose(0, 2, 1)) / 2
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    both = jax.vmap(lambda h, k: cv.hutchinson_diagonal(lambda x: h @ x, 8, k, 6))(hs, keys)
    for r in range(3):
        alone = cv.hutchinson_diagonal(lambda x: hs[r] @ x, 8, keys[r], 6)
        np.testing.assert_allclose(both[0][r], alone[0], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(both[1][r], alone[1], rtol=1e-5, atol=1e-6)


def test_needs_a_probe():
    with pytest.raises(ValueError, match="probes >= 1"):
        cv.hutchinson_diagonal(lambda x: x, 4, jax.random.PRNGKey(0), 0)


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    base = tmp_path_factory.mktemp("diagonal")
    source = str(base / "source")
    experiments.run(tiny_config("lottery", **NARROW, **{"lottery.levels": 1, "lottery.branches": ()}), source)
    config = landscape_config(source, **{"landscape.diagonal_probes": 48})
    workdir = str(base / "landscape")
    experiments.run(config, workdir)
    return results.load(source), results.load(workdir), config


def test_the_distribution_is_over_the_kept_weights_of_the_exact_diagonal(measured):
    source, run, config = measured
    table = run.table
    for level in (0, 1):
        saved = run.load(diagonal.artifact_name(f"level_{level:02d}", 48))
        for replicate in (1,):
            hessian, keep, *_ = exact_hessian(config, source, level, replicate)
            est, se = saved["estimate"][replicate], saved["stderr"][replicate]
            np.testing.assert_array_equal(saved["kept"][replicate], keep)
            exact = np.diag(hessian)[keep]
            z = np.abs(est[keep] - exact) / np.maximum(se[keep], 1e-9)
            assert np.mean(z <= 3.0) > 0.97, np.mean(z <= 3.0)  # 48 probes: near-Gaussian errors
            rows = table[(table.level == level) & (table.replicate == replicate) & (table.layer.fillna("") == "")]
            value = {m: rows[rows.metric == m]["value"].item() for m in ("diagonal_mean", "diagonal_negative")}
            np.testing.assert_allclose(value["diagonal_mean"], est[keep].mean(), rtol=1e-5)
            np.testing.assert_allclose(value["diagonal_negative"], np.mean(est[keep] < 0))
            median = rows[(rows.metric == "diagonal_quantile") & (rows["quantile"].astype(float) == 0.5)]
            np.testing.assert_allclose(median["value"].item(), np.median(est[keep]), rtol=1e-5)
            layers = table[
                (table.level == level)
                & (table.replicate == replicate)
                & (table.metric == "diagonal_count")
                & (table.layer.fillna("") != "")
            ]
            assert layers["value"].sum() == keep.sum() and len(layers) == 6  # 3 Dense layers: kernel, bias


def test_table_report_and_histogram(measured):
    _, run, _ = measured
    frame = plots.diagonal_table(run.table)
    assert list(frame["level"]) == [0, 1] and (frame["negative"] >= 0).all()
    text, paths = experiments.registry.get("landscape").report(run, str(run.workdir) + "/plots")
    assert "Hessian's diagonal" in text
    assert os.path.join(run.workdir, "plots", plots.DIAGONAL_FIGURE) in paths


def test_a_rerun_adds_the_diagonal_to_a_measured_workdir(measured, tmp_path):
    source, run, config = measured
    workdir = str(tmp_path / "w")
    experiments.run(landscape_config(source.workdir, **{"landscape.levels": (1,)}), workdir)
    assert not results.load(workdir).table["metric"].str.startswith("diagonal_").any()
    before = len(results.load(workdir).table)
    experiments.run(
        landscape_config(source.workdir, **{"landscape.levels": (1,), "landscape.diagonal_probes": 48}), workdir
    )
    table = results.load(workdir).table
    mine = table[table["metric"].str.startswith("diagonal_")]
    assert len(table) - len(mine) == before
    theirs = run.table[(run.table.level == 1) & run.table["metric"].str.startswith("diagonal_")]
    np.testing.assert_allclose(np.sort(mine["value"].to_numpy()), np.sort(theirs["value"].to_numpy()), rtol=1e-6)


@pytest.mark.parametrize("probes", [1, -2])
def test_bad_probe_counts_are_one_sentence(measured, tmp_path, probes):
    source, _, _ = measured
    with pytest.raises(UserError, match="landscape.diagonal_probes must be 0"):
        experiments.run(landscape_config(source.workdir, **{"landscape.diagonal_probes": probes}), str(tmp_path / "w"))
    assert not (tmp_path / "w").exists()
