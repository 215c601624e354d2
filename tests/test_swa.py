"""Stochastic weight averaging inside a training run (jaxlth.training.swa): SWAMP's particles."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxlth.pruning import imp
from jaxlth.sharding import copy
from jaxlth.training import setup as setup_lib
from jaxlth.training import swa
from tests.conftest import tiny_config


def trained(program, state, mask, data, points):
    """``state`` trained through ``points`` (global steps); the params at each point."""
    snapshots, step = [], 0
    for point in points:
        state, _ = program.train_chunk(copy(state), mask, data, step, num_steps=point - step)
        snapshots.append(jax.tree.map(np.asarray, state.params))
        step = point
    return state, snapshots


def test_the_average_is_the_mean_of_the_iterates_at_every_epoch_end_after_the_start():
    setup = setup_lib.build(tiny_config("train", replicates=2))  # 8 steps per epoch, 24 steps
    state = setup.init_state()
    mask = setup.dense_mask(state.params)
    plain, snapshots = trained(setup.program, state, mask, setup.data, [8, 16, 24])
    for start, collected in ((4, snapshots), (8, snapshots[1:]), (16, snapshots[2:])):
        program = swa.SWAProgram(setup.program, start)
        averaged, _ = program.train_chunk(swa.with_average(copy(state)), mask, setup.data, 0, num_steps=24)
        for a, b in zip(jax.tree.leaves(plain.params), jax.tree.leaves(averaged.params)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # the iterates are the run's own
        np.testing.assert_array_equal(np.asarray(averaged.count), [len(collected)] * 2)
        expected = jax.tree.map(lambda *xs: np.mean(np.stack(xs), axis=0), *collected)
        for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(averaged.average)):
            np.testing.assert_allclose(np.asarray(b), a, rtol=1e-5, atol=1e-6)
    assert not np.allclose(jax.tree.leaves(expected)[0], jax.tree.leaves(snapshots[0])[0])


def test_a_chunked_run_averages_bitwise_as_one_chunk_and_pruned_weights_stay_zero():
    setup = setup_lib.build(tiny_config("train", replicates=2))
    state = setup.init_state()
    mask = jax.tree.map(
        lambda m: m & jax.random.bernoulli(jax.random.PRNGKey(m.size), 0.5, m.shape), setup.dense_mask(state.params)
    )
    state = state.replace(params=imp.on_mask(state.params, mask))
    program = swa.SWAProgram(setup.program, 4)
    whole, _ = program.train_chunk(swa.with_average(copy(state)), mask, setup.data, 0, num_steps=24)
    parts = swa.with_average(copy(state))
    for start, end in ((0, 10), (10, 16), (16, 24)):
        parts, _ = program.train_chunk(parts, mask, setup.data, start, num_steps=end - start)
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(parts)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    flat_average, flat_mask = (
        jax.tree_util.tree_flatten_with_path(whole.average)[0],
        dict(jax.tree_util.tree_flatten_with_path(mask)[0]),
    )
    checked = 0
    for path, value in flat_average:
        if path in flat_mask:
            assert np.all(np.asarray(value)[~np.asarray(flat_mask[path])] == 0.0)
            checked += 1
    assert checked == len(flat_mask) > 0


def test_the_swa_learning_rate_is_constant_from_the_start_on():
    setup = setup_lib.build(tiny_config("train", **{"train.schedule": "cosine"}))
    program = swa.SWAProgram(setup.program, 10, swa_lr=0.005)
    for step in (0, 5, 9):
        assert float(program.schedule(jnp.int32(step))) == float(setup.program.schedule(jnp.int32(step)))
    assert {float(program.schedule(jnp.int32(s))) for s in (10, 15, 23)} == {np.float32(0.005)}
    assert float(setup.program.schedule(jnp.int32(15))) != np.float32(0.005)


def test_every_level_reuses_one_swa_program_per_setting():
    setup = setup_lib.build(tiny_config("train"))
    program = swa.program_for(setup.program, 10, 0.005)
    assert swa.program_for(setup.program, 10, 0.005) is program  # compiled chunks reused across levels
    assert swa.program_for(setup.program, 12, 0.005) is not program
