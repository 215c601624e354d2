"""Per-example scores (EL2N, GraNd, forgetting) against direct computations, and training on chosen examples."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlth.analysis import example_scores as es
from jaxlth.pruning import masks as mask_lib
from jaxlth.training import functions as fn
from jaxlth.training import history as history_lib
from jaxlth.training import setup as setup_lib
from jaxlth.training.state import with_examples
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def tiny():
    """A tiny BatchNorm-free LeNet on synthetic data, one network (no replicate axis), perturbed
    away from initialisation so no score is degenerate."""
    setup = setup_lib.build(tiny_config())
    state = setup.init_state()
    params = jax.tree.map(lambda x: x[0] * 1.5, state.params)
    return setup, params


def direct_loss(setup, params, image, label):
    x = setup.program.preprocess(image[None])
    out, _ = fn.logits(setup.program.model, params, {}, x, train=False)
    return out[0], fn.cross_entropy(out, label[None])[0]


def test_el2n_equals_the_norm_of_softmax_minus_onehot_per_example(tiny):
    setup, params = tiny
    images, labels = setup.data.train_images[:37], setup.data.train_labels[:37]
    got = np.asarray(jax.jit(lambda p: es.el2n(setup.program, p, {}, images, labels, chunk=8))(params))
    want = []
    for i in range(37):
        out, _ = direct_loss(setup, params, images[i], labels[i])
        p = np.asarray(jax.nn.softmax(out), np.float64)
        p[int(labels[i])] -= 1.0
        want.append(np.linalg.norm(p))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert got.shape == (37,) and np.ptp(got) > 0.05


def test_grand_with_vmap_of_grad_equals_a_loop_of_single_example_gradients(tiny):
    setup, params = tiny
    images, labels = setup.data.train_images[:21], setup.data.train_labels[:21]
    got = np.asarray(jax.jit(lambda p: es.grand(setup.program, p, {}, images, labels, chunk=4))(params))
    one = jax.jit(jax.grad(lambda p, x, y: direct_loss(setup, p, x, y)[1]))
    want = []
    for i in range(21):
        g = one(params, images[i], labels[i])
        want.append(np.sqrt(sum(float(np.sum(np.asarray(leaf, np.float64) ** 2)) for leaf in jax.tree.leaves(g))))
    np.testing.assert_allclose(got, want, rtol=1e-4)
    # every trainable parameter counts: biases included
    kernels_only = [
        np.sqrt(
            sum(
                float(jnp.sum(leaf**2))
                for path, leaf in jax.tree_util.tree_leaves_with_path(one(params, images[i], labels[i]))
                if "kernel" in jax.tree_util.keystr(path)
            )
        )
        for i in range(3)
    ]
    assert np.all(got[:3] > np.asarray(kernels_only) + 1e-6)


def test_grand_of_a_pruned_network_leaves_out_the_pruned_weights(tiny):
    setup, params = tiny
    images, labels = setup.data.train_images[:6], setup.data.train_labels[:6]
    rng = np.random.default_rng(0)
    mask = jax.tree.map(lambda m: jnp.asarray(rng.random(m.shape) < 0.3), mask_lib.ones_like(params))
    got = np.asarray(es.grand(setup.program, params, {}, images, labels, chunk=6, mask=mask))
    one = jax.grad(lambda p, x, y: direct_loss(setup, p, x, y)[1])
    want = [
        np.sqrt(
            sum(float(jnp.sum(g**2)) for g in jax.tree.leaves(mask_lib.apply(one(params, images[i], labels[i]), mask)))
        )
        for i in range(6)
    ]
    np.testing.assert_allclose(got, want, rtol=1e-4)


def test_forgetting_counts_a_hand_made_trajectory():
    # 4 examples, presented in batches; correctness per presentation:
    # ex0: 1 0 1 0  -> 2 events;  ex1: 0 0 0 -> never learned;  ex2: 1 1 1 -> 0;  ex3: 0 1 0 1 0 -> 2
    batches = [
        ([0, 1, 2, 3], [1, 0, 1, 0]),
        ([0, 3], [0, 1]),
        ([0, 1, 2, 3], [1, 0, 1, 0]),
        ([0, 1, 3], [0, 0, 1]),
        ([2, 3], [1, 0]),
    ]
    history = history_lib.empty(4)
    update = jax.jit(history_lib.update)
    for idx, correct in batches:
        history = update(history, jnp.asarray(idx), jnp.asarray(correct, bool))
    np.testing.assert_array_equal(history["forgetting_events"], [2, 0, 0, 2])
    np.testing.assert_array_equal(history["learned"], [True, False, True, True])
    np.testing.assert_array_equal(history["presentations"], [4, 3, 3, 5])
    scores = es.forgetting(history)
    assert scores[1] == np.inf and list(scores[[0, 2, 3]]) == [2, 0, 2]
    assert es.average(np.stack([scores, np.zeros(4)]))[1] == np.inf  # never learned anywhere -> inf


def test_training_on_chosen_examples_equals_training_on_the_subset_itself():
    """An ExampleState over indices ``idx`` of the full data trains bitwise like a TrainState on
    the dataset cut to ``idx`` (same init, same data key); replicates may hold different subsets."""
    config = tiny_config(replicates=2)
    full = setup_lib.build(config)
    rng = np.random.default_rng(0)
    subsets = np.stack([np.sort(rng.permutation(256)[:160]) for _ in range(2)]).astype(np.int32)
    chosen = full.for_examples(160)
    state = full.init_state()
    got, _ = chosen.program.train_chunk(with_examples(state, subsets), {}, full.data, 0, num_steps=12)
    for r in range(2):
        cut = full.dataset.replace(
            train_images=full.dataset.train_images[subsets[r]], train_labels=full.dataset.train_labels[subsets[r]]
        )
        alone = setup_lib.build(config, dataset=cut)
        one = jax.tree.map(lambda x: x[r : r + 1], setup_lib.build(config).init_state())
        want, _ = alone.program.train_chunk(one, {}, alone.data, 0, num_steps=12)
        for a, b in zip(jax.tree.leaves(want.params), jax.tree.leaves(got.params)):
            np.testing.assert_array_equal(np.asarray(a)[0], np.asarray(b)[r])


def test_tracking_the_history_changes_nothing_else_and_counts_every_presentation():
    config = tiny_config(replicates=2)
    setup = setup_lib.build(config)
    n = setup.dataset.num_train
    plain, (loss_a, acc_a) = setup.program.train_chunk(setup.init_state(), {}, setup.data, 0, num_steps=20)
    start = setup.init_state()
    tracked = with_examples(start, jnp.tile(jnp.arange(n), (2, 1)), history_lib.empty(n, 2))
    tracked, (loss_b, acc_b) = setup.program.train_chunk(tracked, {}, setup.data, 0, num_steps=20)
    for a, b in zip(jax.tree.leaves(plain.params), jax.tree.leaves(tracked.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(acc_a), np.asarray(acc_b))
    presentations = np.asarray(tracked.history["presentations"])
    assert presentations.sum(axis=1).tolist() == [20 * 32, 20 * 32]  # 20 steps of batch 32
    # 256 examples, 8 steps an epoch: 2.5 epochs -> every example seen 2 or 3 times
    assert set(np.unique(presentations)) <= {2, 3}
    events, learned = np.asarray(tracked.history["forgetting_events"]), np.asarray(tracked.history["learned"])
    assert np.all(events[~learned] == 0) and np.all(events <= presentations // 2)


def test_a_setup_for_chosen_examples_counts_epochs_of_the_subset_only_when_asked():
    full = setup_lib.build(tiny_config(**{"train.steps": "3ep", "eval_every": "1ep", "checkpoint_every": "1ep"}))
    same = full.for_examples(96)  # 3 steps an epoch over 96 examples, but the full run's iterations
    assert (same.total_steps, same.eval_every, same.program.spec.steps_per_epoch) == (24, 8, 3)
    own = full.for_examples(96, keep_iterations=False)
    assert (own.total_steps, own.eval_every, own.checkpoint_every, own.steps_per_epoch) == (9, 3, 3, 3)
    with pytest.raises(Exception, match="smaller than one batch"):
        full.for_examples(31)
