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


def confident(params, boost):
    """``(params, labels)``: class 0's output bias raised by ``boost`` (logits' margin, not their
    scale: their float32 rounding stays ~1e-6) and every example labelled 0 (256 labels)."""
    output = {**params["output"], "bias": params["output"]["bias"].at[0].add(boost)}
    return {**params, "output": output}, jnp.zeros(256, jnp.int32)


def float64_scores(setup, params, images, labels):
    """``(EL2N, GraNd, 1 − p_y)`` in float64 of the network's float32 logits (the scores' input).

    ``1 − p_y = exp(logsumexp_{j≠y} z_j − logsumexp z)``; GraNd is the float64 network's pullback of
    ``softmax(z) − onehot(y)`` with that label entry (the cross-entropy's gradient in the logits).
    """
    model, x = setup.program.model, setup.program.preprocess(images)
    z = np.asarray(fn.logits(model, params, {}, x)[0], np.float64)
    rows, y = np.arange(len(z)), np.asarray(labels)
    others = z.copy()
    others[rows, y] = -np.inf
    lse = np.logaddexp.reduce(z, axis=1)
    error = np.exp(others - lse[:, None])
    error[rows, y] = -np.exp(np.logaddexp.reduce(others, axis=1) - lse)
    with jax.enable_x64(True):
        wide = jax.tree.map(lambda w: jnp.asarray(w, jnp.float64), params)

        def squared_norm(xi, ei):
            _, pullback = jax.vjp(lambda p: fn.logits(model, p, {}, xi[None])[0][0], wide)
            return sum(jnp.sum(g**2) for g in jax.tree.leaves(pullback(ei)[0]))

        grand = np.sqrt(np.asarray(jax.jit(jax.vmap(squared_norm))(jnp.asarray(x, jnp.float64), jnp.asarray(error))))
    return np.linalg.norm(error, axis=1), grand, -error[rows, y]


def float64_autodiff_grand(setup, params, images, labels):
    """``(N,)`` GraNd by ``jax.grad`` of the plain cross-entropy of the float64 network, its logits
    shifted to the float32 ones (exact to ~1e-16 / (1 − p_y): a check of the reference above)."""
    model, x = setup.program.model, setup.program.preprocess(images)
    z = fn.logits(model, params, {}, x)[0]
    with jax.enable_x64(True):
        wide = jax.tree.map(lambda w: jnp.asarray(w, jnp.float64), params)
        x64 = jnp.asarray(x, jnp.float64)
        shift = jnp.asarray(z, jnp.float64) - fn.logits(model, wide, {}, x64)[0]

        def squared_norm(xi, si, yi):
            loss = lambda p: fn.cross_entropy(fn.logits(model, p, {}, xi[None])[0] + si, yi[None])[0]  # noqa: E731
            return sum(jnp.sum(g**2) for g in jax.tree.leaves(jax.grad(loss)(wide)))

        return np.sqrt(np.asarray(jax.jit(jax.vmap(squared_norm))(x64, shift, jnp.asarray(labels))))


def test_scores_of_confident_examples_keep_their_digits_in_float32(tiny):
    setup, params = tiny
    params, labels = confident(params, 18.0)
    images = setup.data.train_images
    want_el2n, want_grand, wrong = float64_scores(setup, params, images, labels)
    near = (wrong > 1e-7) & (wrong < 1e-5)  # p_y ~ 1 − 1e-6
    assert near.sum() >= 20
    images, labels = images[near], labels[near]
    el2n = np.asarray(jax.jit(lambda p: es.el2n(setup.program, p, {}, images, labels, chunk=8))(params))
    grand = np.asarray(jax.jit(lambda p: es.grand(setup.program, p, {}, images, labels, chunk=8))(params))
    np.testing.assert_allclose(el2n, want_el2n[near], rtol=5e-5)
    np.testing.assert_allclose(grand, want_grand[near], rtol=5e-5)
    np.testing.assert_allclose(float64_autodiff_grand(setup, params, images, labels), want_grand[near], rtol=1e-5)
    # The textbook float32 forms, softmax − onehot and the gradient of the cross-entropy, lose them.
    out, _ = fn.logits(setup.program.model, params, {}, setup.program.preprocess(images))
    naive_el2n = jnp.linalg.norm(jax.nn.softmax(out) - jax.nn.one_hot(labels, 10), axis=-1)
    assert np.max(np.abs(naive_el2n / want_el2n[near] - 1)) > 1e-2
    naive_grand = [grad_norm(setup, params, images[i], labels[i]) for i in range(3)]
    assert np.max(np.abs(np.asarray(naive_grand) / want_grand[near][:3] - 1)) > 1e-3


def test_scores_of_tiny_errors_do_not_underflow(tiny):
    setup, params = tiny
    params, labels = confident(params, 60.0)
    want_el2n, want_grand, wrong = float64_scores(setup, params, setup.data.train_images, labels)
    tiny_error = (wrong > 1e-30) & (wrong < 1e-20)  # squares below float32's smallest number
    assert tiny_error.sum() >= 5
    images, labels = setup.data.train_images[tiny_error], labels[tiny_error]
    el2n = np.asarray(es.el2n(setup.program, params, {}, images, labels))
    grand = np.asarray(es.grand(setup.program, params, {}, images, labels))
    np.testing.assert_allclose(el2n, want_el2n[tiny_error], rtol=1e-4)
    np.testing.assert_allclose(grand, want_grand[tiny_error], rtol=1e-4)


def test_scores_of_unconfident_examples_are_the_textbook_forms(tiny):
    setup, params = tiny
    images, labels = setup.data.train_images[:64], setup.data.train_labels[:64]
    out, _ = fn.logits(setup.program.model, params, {}, setup.program.preprocess(images))
    unsure = np.asarray(jnp.max(jax.nn.softmax(out), axis=-1) < 0.99)
    assert unsure.sum() >= 32
    textbook = jnp.linalg.norm(jax.nn.softmax(out) - jax.nn.one_hot(labels, 10), axis=-1)
    el2n = es.el2n(setup.program, params, {}, images, labels)
    np.testing.assert_allclose(np.asarray(el2n)[unsure], np.asarray(textbook)[unsure], rtol=1e-5)
    grand = np.asarray(es.grand(setup.program, params, {}, images, labels))
    textbook = [grad_norm(setup, params, images[i], labels[i]) for i in np.flatnonzero(unsure)[:8]]
    np.testing.assert_allclose(grand[np.flatnonzero(unsure)[:8]], textbook, rtol=1e-5)


def grad_norm(setup, params, image, label):
    """The float32 gradient of the training cross-entropy of one example, its norm (float64)."""
    g = jax.grad(lambda p: direct_loss(setup, p, image, label)[1])(params)
    return np.sqrt(sum(float(np.sum(np.asarray(leaf, np.float64) ** 2)) for leaf in jax.tree.leaves(g)))


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
    """An ExampleState over indices ``idx`` of the full data trains like a TrainState on the dataset
    cut to ``idx`` (same init, same data key); replicates may hold different subsets. Bitwise on the
    Intel Xeon where it was written; a program of two replicates and one of a single replicate are
    vectorised differently by XLA:CPU on an AMD EPYC without AVX-512 (3.7e-9 apart after 12 steps)."""
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
            np.testing.assert_allclose(np.asarray(a)[0], np.asarray(b)[r], rtol=1e-5, atol=1e-7)


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
