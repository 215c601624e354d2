"""Interpolation, barriers, BatchNorm recomputation, and copies that differ only in SGD noise."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlth import results, rng
from jaxlth.analysis import alpha_grid, barrier_frankle, barrier_paul, interpolate, recompute_batch_stats
from jaxlth.analysis.interpolation import bn_batches_from
from jaxlth.experiments.instability.streams import COPY
from jaxlth.training import copies as copies_lib
from jaxlth.training import setup as setup_lib
from tests.conftest import TINY, run_cli
from tests.conftest import tiny_config as tiny


def trained_pair(replicates=2, steps=24):
    setup = setup_lib.build(tiny(replicates=replicates))
    state = setup.init_state()
    a, _ = setup.program.train_chunk(state, {}, setup.data, 0, num_steps=steps)
    other = setup.init_state().replace(data_key=jnp.flip(setup.data_keys(), axis=0))
    other = other.replace(params=jax.tree.map(lambda x: jnp.flip(x, axis=0), other.params))
    b, _ = setup.program.train_chunk(other, {}, setup.data, 0, num_steps=steps)
    return setup, {"params": a.params, "batch_stats": a.batch_stats}, {"params": b.params, "batch_stats": b.batch_stats}


def test_alpha_grid_has_both_endpoints():
    grid = alpha_grid()
    assert len(grid) == 30 and grid[0] == 0.0 and grid[-1] == 1.0
    np.testing.assert_allclose(np.diff(grid), 1 / 29)


def test_both_barrier_definitions_on_a_hand_made_curve():
    alphas = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    errors = np.array([0.10, 0.30, 0.40, 0.35, 0.30])
    # Frankle: max error 0.40 minus the endpoints' mean 0.20.
    np.testing.assert_allclose(barrier_frankle(alphas, errors), 0.20)
    # Paul: the line runs 0.10 -> 0.30; largest excess 0.40 - 0.20 at alpha = 0.5.
    np.testing.assert_allclose(barrier_paul(alphas, errors), 0.20)
    tilted = np.array([0.10, 0.32, 0.30, 0.30, 0.30])  # excess 0.32 - 0.15 at 0.25 for Paul
    np.testing.assert_allclose(barrier_frankle(alphas, tilted), 0.12)
    np.testing.assert_allclose(barrier_paul(alphas, tilted), 0.17)
    linear = 0.1 + 0.2 * alphas
    assert barrier_paul(alphas, linear) == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(barrier_frankle(alphas, np.stack([errors, linear])), [0.20, 0.10])
    with pytest.raises(ValueError):
        barrier_paul(np.array([0.1, 1.0]), np.array([0.2, 0.3]))


def test_interpolation_endpoints_reproduce_each_networks_error_and_self_barrier_is_zero():
    setup, a, b = trained_pair()
    data = setup.data
    curve = interpolate(setup.program, a, b, alpha_grid(7), data.test_images, data.test_labels)
    assert curve["error"].shape == (2, 7)
    for net, column in ((a, 0), (b, -1)):
        loss, acc = setup.program.evaluate(net["params"], net["batch_stats"], data.test_images, data.test_labels)
        np.testing.assert_array_equal(curve["accuracy"][:, column], np.asarray(acc))
        np.testing.assert_allclose(curve["loss"][:, column], np.asarray(loss), rtol=1e-4, atol=1e-6)
    same = interpolate(setup.program, a, a, alpha_grid(7), data.test_images, data.test_labels)
    np.testing.assert_array_equal(barrier_frankle(alpha_grid(7), same["error"]), 0.0)
    np.testing.assert_array_equal(barrier_paul(alpha_grid(7), same["error"]), 0.0)
    chunked = interpolate(setup.program, a, b, alpha_grid(7), data.test_images, data.test_labels, chunk_size=3)
    np.testing.assert_allclose(chunked["loss"], curve["loss"], rtol=1e-5)


def test_copies_with_one_data_key_are_identical_and_with_different_keys_differ():
    setup = setup_lib.build(tiny(replicates=1))
    trunk, _ = setup.program.train_chunk(setup.init_state(), {}, setup.data, 0, num_steps=5)
    same = copies_lib.repeat(trunk, 3).replace(data_key=jnp.repeat(trunk.data_key, 3, axis=0))
    same, _ = setup.program.train_chunk(same, {}, setup.data, 5, num_steps=10)
    kernel = np.asarray(same.params["hidden_0"]["kernel"])
    np.testing.assert_array_equal(kernel[0], kernel[1])
    np.testing.assert_array_equal(kernel[0], kernel[2])
    different = copies_lib.repeat(trunk, 3).replace(data_key=rng.copy_keys(trunk.data_key, 3, COPY))
    different, _ = setup.program.train_chunk(different, {}, setup.data, 5, num_steps=10)
    kernel = np.asarray(different.params["hidden_0"]["kernel"])
    assert not np.allclose(kernel[0], kernel[1]) and not np.allclose(kernel[1], kernel[2])
    # Each vmapped copy equals that copy trained alone.
    for c in range(3):
        alone = jax.tree.map(
            lambda x: x[c : c + 1], copies_lib.repeat(trunk, 3).replace(data_key=rng.copy_keys(trunk.data_key, 3, COPY))
        )
        alone, _ = setup.program.train_chunk(alone, {}, setup.data, 5, num_steps=10)
        np.testing.assert_allclose(alone.params["hidden_0"]["kernel"][0], kernel[c], rtol=1e-5, atol=1e-6)


def test_bn_recomputation_changes_batch_statistics_not_params():
    config = tiny(replicates=1)
    config.data.synthetic_image_shape = (16, 16, 3)
    config.model.name = "resnet_cifar"
    config.model.options = {"depth": 8, "width": 4}
    setup = setup_lib.build(config)
    state = setup.init_state()
    batches = bn_batches_from(setup.data.train_images, 3, 16)
    params = jax.tree.map(lambda x: x[0], state.params)
    stats = jax.tree.map(lambda x: x[0], state.batch_stats)
    fresh = jax.jit(recompute_batch_stats, static_argnums=0)(setup.program, params, stats, batches)
    assert jax.tree.structure(fresh) == jax.tree.structure(stats)
    assert not all(np.allclose(x, y) for x, y in zip(jax.tree.leaves(fresh), jax.tree.leaves(stats)))
    # The recomputed mean of the first BN layer is the mean activation over the batches.
    first = fresh["stem_bn"]["mean"] if "stem_bn" in fresh else jax.tree.leaves(fresh)[0]
    assert np.all(np.isfinite(np.asarray(first)))
    net = {"params": state.params, "batch_stats": state.batch_stats}
    plain = interpolate(setup.program, net, net, [0.0, 1.0], setup.data.test_images, setup.data.test_labels)
    recomputed = interpolate(
        setup.program, net, net, [0.0, 1.0], setup.data.test_images, setup.data.test_labels, bn_batches=batches
    )
    assert not np.allclose(plain["loss"], recomputed["loss"])  # evaluated with other statistics
    np.testing.assert_allclose(recomputed["loss"][:, 0], recomputed["loss"][:, 1], rtol=1e-6)  # same params


def test_instability_run_writes_barriers_and_figures(tmp_path):
    workdir = tmp_path / "inst"
    proc = run_cli(
        "--config",
        f"{TINY}:instability",
        "--workdir",
        str(workdir),
        "--config.replicates=2",
        "--config.instability.perturb_scales=(0.5,)",
        check=True,
    )
    assert "instability: error barrier" in proc.stdout
    table = results.load(str(workdir)).table
    barrier = table[(table.arm == "copies") & (table.metric == "barrier_frankle")]
    assert sorted(barrier.spawn_step.unique()) == [0, 4]
    assert set(barrier.split) == {"test", "train"} and set(barrier.replicate) == {0, 1}
    curve = table[(table.arm == "copies") & (table.metric == "error") & (table.split == "test")]
    assert len(curve) == 2 * 2 * 5  # spawn steps x replicates x alphas
    copies = table[(table.arm == "copies") & (table.metric == "accuracy")]
    assert set(copies.replicate) == {0, 1, 2, 3}  # replicate * copies + copy
    assert len(table[(table.arm == "perturb") & (table.metric == "barrier_paul")]) == 2 * 2
    for name in ("barrier_vs_spawn_step.png", "interpolation_curves.png", "barrier_vs_perturbation.png"):
        assert (workdir / "plots" / name).stat().st_size > 5000
    rerun = run_cli(
        "--config",
        f"{TINY}:instability",
        "--workdir",
        str(workdir),
        "--config.replicates=2",
        "--config.instability.perturb_scales=(0.5,)",
        check=True,
    )
    assert len(results.load(str(workdir)).table) == len(table)  # nothing recomputed or duplicated
    assert rerun.returncode == 0
