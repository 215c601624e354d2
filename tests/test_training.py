"""The compiled training program: masking, replicates as a vmap axis, chunking."""

import jax
import numpy as np
import pytest

from jaxlth import sharding
from jaxlth.pruning import masks
from jaxlth.training import setup as setup_lib
from tests.conftest import tiny_config as tiny


def tiny_config(**train):
    return tiny(**{f"train.{k}": v for k, v in train.items()})


def half_mask(params, key):
    """A random mask keeping about half of every prunable kernel."""
    dense = masks.ones_like(params, ["output"])
    leaves, tree = jax.tree.flatten(dense)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(tree, [jax.random.bernoulli(k, 0.5, m.shape) for k, m in zip(keys, leaves)])


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_pruned_weights_stay_exactly_zero(optimizer):
    config = tiny_config(optimizer=optimizer, lr=0.1 if optimizer == "sgd" else 1e-3, momentum=0.9, weight_decay=5e-4)
    config.replicates = 2
    setup = setup_lib.build(config)
    state = setup.init_state()
    initial = jax.tree.map(np.asarray, state.params)  # unmasked: pruned weights start non-zero
    mask = half_mask(state.params, jax.random.PRNGKey(0))
    state, _ = setup.program.train_chunk(state, mask, setup.data, 0, num_steps=60)
    flat_p = dict(jax.tree_util.tree_flatten_with_path(state.params)[0])
    for path, keep in jax.tree_util.tree_flatten_with_path(mask)[0]:
        weights = np.asarray(flat_p[path])
        assert np.all(weights[~np.asarray(keep)] == 0.0), path
        assert np.all(weights[np.asarray(keep)] != 0.0), path
    # Unpruned leaves (biases, the ignored output layer) did train.
    assert not np.allclose(state.params["output"]["kernel"], initial["output"]["kernel"])
    assert not np.allclose(state.params["hidden_0"]["bias"], initial["hidden_0"]["bias"])


def test_replicates_equal_separate_runs_with_the_same_seeds():
    config = tiny_config()
    config.replicates = 3
    config.seed, config.data_seed = 10, 20
    setup = setup_lib.build(config)
    together, _ = setup.program.train_chunk(setup.init_state(), {}, setup.data, 0, num_steps=20)
    for r in range(3):
        single = tiny_config()
        single.seed, single.data_seed = 10 + r, 20 + r
        s = setup_lib.build(single)
        alone, _ = s.program.train_chunk(s.init_state(), {}, s.data, 0, num_steps=20)
        for a, b in zip(jax.tree.leaves(alone.params), jax.tree.leaves(together.params)):
            # vmap reassociates float sums (and GPUs use TF32 matmuls): equal up to rounding.
            np.testing.assert_allclose(a[0], b[r], rtol=1e-4, atol=1e-5)


def test_replicates_differ_from_each_other():
    config = tiny_config()
    config.replicates = 2
    setup = setup_lib.build(config)
    state = setup.init_state()
    kernel = state.params["hidden_0"]["kernel"]
    assert not np.allclose(kernel[0], kernel[1])
    assert not np.array_equal(state.data_key[0], state.data_key[1])


def test_data_seed_changes_sgd_noise_not_initialisation():
    a, b = tiny_config(), tiny_config()
    b.data_seed = 7
    sa, sb = setup_lib.build(a), setup_lib.build(b)
    ia, ib = sa.init_state(), sb.init_state()
    np.testing.assert_array_equal(ia.params["hidden_0"]["kernel"], ib.params["hidden_0"]["kernel"])
    ta, _ = sa.program.train_chunk(ia, {}, sa.data, 0, num_steps=5)
    tb, _ = sb.program.train_chunk(ib, {}, sb.data, 0, num_steps=5)
    assert not np.allclose(ta.params["hidden_0"]["kernel"], tb.params["hidden_0"]["kernel"])


def test_chunks_compose_across_epoch_boundaries():
    setup = setup_lib.build(tiny_config())  # 8 steps per epoch
    whole, _ = setup.program.train_chunk(setup.init_state(), {}, setup.data, 0, num_steps=13)
    part = setup.init_state()
    for start, n in ((0, 5), (5, 6), (11, 2)):
        part, _ = setup.program.train_chunk(part, {}, setup.data, start, num_steps=n)
    for a, b in zip(jax.tree.leaves(whole.params), jax.tree.leaves(part.params)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_training_reduces_loss_and_evaluation_is_in_unit_range():
    setup = setup_lib.build(tiny_config())
    state = setup.init_state()
    loss0, acc0 = setup.program.evaluate(
        state.params, state.batch_stats, setup.data.test_images, setup.data.test_labels
    )
    state, _ = setup.program.train_chunk(state, {}, setup.data, 0, num_steps=48)
    loss1, acc1 = setup.program.evaluate(
        state.params, state.batch_stats, setup.data.test_images, setup.data.test_labels
    )
    assert float(loss1[0]) < float(loss0[0])
    assert 0.0 <= float(acc0[0]) <= 1.0 and float(acc1[0]) > float(acc0[0])


def test_evaluation_handles_a_remainder_batch():
    config = tiny_config()
    config.eval_batch_size = 50  # 128 test examples: batches of 50, 50, 28
    small = setup_lib.build(config)
    config.eval_batch_size = 128
    whole = setup_lib.build(config)
    state = small.init_state()
    a = small.program.evaluate(state.params, state.batch_stats, small.data.test_images, small.data.test_labels)
    b = whole.program.evaluate(state.params, state.batch_stats, whole.data.test_images, whole.data.test_labels)
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_state_copy_survives_donation():
    setup = setup_lib.build(tiny_config())
    state = setup.init_state()
    kept = sharding.copy(state)
    before = np.asarray(kept.params["hidden_0"]["kernel"])
    setup.program.train_chunk(state, {}, setup.data, 0, num_steps=2)
    np.testing.assert_array_equal(np.asarray(kept.params["hidden_0"]["kernel"]), before)
