"""Scorers, the shared pruning rule, ERK densities and iterative pruning, on tiny networks."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from jaxlth.pruning import at_init, magnitude, scorers
from jaxlth.pruning import masks as mask_lib
from jaxlth.pruning import prune as prune_lib


def mlp(sizes, key, bias=True, scale=1.0):
    keys = jax.random.split(key, len(sizes) - 1)
    params = {}
    for i, (k, a, b) in enumerate(zip(keys, sizes[:-1], sizes[1:])):
        params[f"Dense_{i}"] = {"kernel": scale * jax.random.normal(k, (a, b)) / np.sqrt(a)}
        if bias:
            params[f"Dense_{i}"]["bias"] = 0.1 * jax.random.normal(jax.random.fold_in(k, 1), (b,))
    return params


def mlp_logits(params, batch_stats, x, train):
    h = x.reshape(x.shape[0], -1)
    names = sorted(params)
    for i, name in enumerate(names):
        h = h @ params[name]["kernel"] + params[name].get("bias", 0.0)
        if i < len(names) - 1:
            h = jax.nn.relu(h)
    return h


MODEL = scorers.Model(mlp_logits, (6,))


def data(n=8, classes=3, features=6, batches=1):
    x = jax.random.normal(jax.random.PRNGKey(5), (batches, n, features))
    y = jax.random.randint(jax.random.PRNGKey(6), (batches, n), 0, classes)
    return x, y


def test_snip_is_the_absolute_gradient_times_the_weight_of_a_linear_softmax_model():
    params = mlp([6, 3], jax.random.PRNGKey(0))
    mask = mask_lib.ones_like(params)
    x, y = data()
    scores = scorers.snip(params, {}, mask, MODEL, (x, y), None)
    w, b = params["Dense_0"]["kernel"], params["Dense_0"]["bias"]
    p = jax.nn.softmax(x[0] @ w + b)
    grad = x[0].T @ (p - jax.nn.one_hot(y[0], 3)) / x.shape[1]  # d mean CE / dW, by hand
    np.testing.assert_allclose(scores["Dense_0"]["kernel"], np.abs(grad * w), rtol=1e-5, atol=1e-7)
    assert set(scores["Dense_0"]) == {"kernel"}  # shaped like the mask: kernels only


def test_snip_over_several_batches_uses_the_mean_gradient():
    params = mlp([6, 5, 3], jax.random.PRNGKey(1))
    mask = mask_lib.ones_like(params)
    x, y = data(batches=3)
    scores = scorers.snip(params, {}, mask, MODEL, (x, y), None)

    def loss(p):
        logits = mlp_logits(p, {}, x.reshape(-1, 6), True)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y.reshape(-1)))

    g = jax.grad(loss)(params)
    for name in ("Dense_0", "Dense_1"):
        np.testing.assert_allclose(
            scores[name]["kernel"], np.abs(g[name]["kernel"] * params[name]["kernel"]), rtol=1e-4, atol=1e-7
        )


def test_grasp_hessian_gradient_product_equals_the_explicit_hessian_times_the_gradient():
    params = mlp([6, 4, 3], jax.random.PRNGKey(2))
    x, y = data(batches=2)
    temperature = 3.0
    flat, unravel = ravel_pytree(params)

    def loss(v):
        logits = mlp_logits(unravel(v), {}, x.reshape(-1, 6), True) / temperature
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y.reshape(-1)))

    expected = jax.jit(lambda v: jax.hessian(loss)(v) @ jax.grad(loss)(v))(flat)  # one program, not an eager op each
    hg = scorers.hessian_gradient(params, {}, MODEL, (x, y), temperature)
    np.testing.assert_allclose(ravel_pytree(hg)[0], expected, rtol=1e-4, atol=1e-8)
    mask = mask_lib.ones_like(params)
    scores = scorers.grasp(params, {}, mask, MODEL, (x, y), None, temperature)
    np.testing.assert_allclose(
        scores["Dense_1"]["kernel"], params["Dense_1"]["kernel"] * hg["Dense_1"]["kernel"], rtol=1e-6
    )


def test_grasp_keeps_the_weights_of_lowest_minus_w_hg():
    params = mlp([6, 4, 3], jax.random.PRNGKey(3))
    mask = mask_lib.ones_like(params)
    x, y = data()
    hg = scorers.hessian_gradient(params, {}, MODEL, (x, y))
    s = jnp.concatenate([(-params[n]["kernel"] * hg[n]["kernel"]).ravel() for n in ("Dense_0", "Dense_1")])
    new = prune_lib.prune(scorers.grasp(params, {}, mask, MODEL, (x, y), None), mask, 0.5)
    kept = jnp.concatenate([new[n]["kernel"].ravel() for n in ("Dense_0", "Dense_1")])
    assert float(jnp.max(s[kept])) <= float(jnp.min(s[~kept]))  # the highest -w*Hg were removed


def test_synflow_one_round_matches_the_hand_computed_path_flow():
    params = mlp([6, 4, 3], jax.random.PRNGKey(4))
    for layer in params.values():
        layer["bias"] = jnp.zeros_like(layer["bias"])
    mask = mask_lib.ones_like(params)
    scores = scorers.synflow(params, {}, mask, MODEL, None, None)
    w1, w2 = np.abs(params["Dense_0"]["kernel"]), np.abs(params["Dense_1"]["kernel"])
    hidden = np.ones(6) @ w1  # every path from the all-ones input, all weights positive
    np.testing.assert_allclose(scores["Dense_0"]["kernel"], w1 * w2.sum(axis=1)[None, :], rtol=1e-5)
    np.testing.assert_allclose(scores["Dense_1"]["kernel"], w2 * hidden[:, None], rtol=1e-5)


def test_synflow_rescales_a_network_whose_path_flow_overflows_without_changing_the_ranking():
    params = mlp([6, 6, 6, 6, 3], jax.random.PRNGKey(5), bias=False)
    mask = mask_lib.ones_like(params)
    model = scorers.Model(mlp_logits, (6,))
    plain = scorers.synflow(params, {}, mask, model, None, None)
    huge = jax.tree.map(lambda w: w * 1e12, params)  # R ~ 1e48 overflows float32
    rescaled = scorers.synflow(huge, {}, mask, model, None, None)
    assert all(bool(jnp.all(jnp.isfinite(s))) for s in jax.tree.leaves(rescaled))
    for density in (0.5, 0.2):
        a = prune_lib.prune_to_density(plain, mask, density)
        b = prune_lib.prune_to_density(rescaled, mask, density)
        assert jax.tree.all(jax.tree.map(lambda p, q: bool(jnp.all(p == q)), a, b))


def test_synflow_never_disconnects_a_layer_where_magnitude_pruning_does():
    """Tanaka et al. (2020): iterative SynFlow avoids layer collapse. A wide first layer has small
    weights (1/sqrt(fan_in) init), so global magnitude pruning empties it first; so does SynFlow in
    one round: the iteration is what conserves the flow."""
    params = mlp([200, 16, 16, 10], jax.random.PRNGKey(6), bias=False)
    mask = mask_lib.ones_like(params)
    model = scorers.Model(mlp_logits, (200,))
    key = jax.random.PRNGKey(0)

    def kept(scorer, density, rounds):
        how = at_init.Pruning(scorers.SCORERS[scorer], model, "global", rounds)
        m = at_init.mask_at_density(how, {"params": params}, mask, None, key, density)
        return [int(jnp.sum(v)) for v in jax.tree.leaves(m)]

    for density in (0.05, 0.02, 0.01):  # 180, 72, 36 of 3616 weights
        assert min(kept("synflow", density, 100)) > 0
        assert sum(kept("synflow", density, 100)) == int(np.floor(density * 3616))
    assert min(kept("magnitude", 0.02, 1)) == 0  # the test can fail: the others collapse
    assert min(kept("synflow", 0.02, 1)) == 0


def test_rounds_follow_the_exponential_schedule_and_nest():
    params = mlp([6, 8, 3], jax.random.PRNGKey(7))
    mask = mask_lib.ones_like(params)
    scorer = scorers.SCORERS["magnitude"]
    masks = [mask]
    for k in range(1, 4):  # one round at a time reproduces three rounds to 0.125 = 0.5 ** 3
        masks.append(
            at_init.mask_at_density(
                at_init.Pruning(scorer, MODEL, "global"),
                {"params": params},
                masks[-1],
                None,
                jax.random.PRNGKey(0),
                0.5**k,
            )
        )
    three = at_init.mask_at_density(
        at_init.Pruning(scorer, MODEL, "global", 3), {"params": params}, mask, None, jax.random.PRNGKey(0), 0.125
    )
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), three, masks[-1]))
    for outer, inner in zip(masks, masks[1:]):
        assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a | ~b)), outer, inner))


def test_masks_at_densities_equals_one_density_at_a_time_and_inverting_keeps_the_smallest():
    params = mlp([6, 8, 3], jax.random.PRNGKey(8))
    mask = mask_lib.ones_like(params)
    scorer = scorers.SCORERS["magnitude"]
    densities = jnp.asarray([0.5, 0.1])
    how, network = at_init.Pruning(scorer, MODEL, "global"), {"params": params}
    stacked = at_init.masks_at_densities(how, network, mask, None, jax.random.PRNGKey(0), densities)
    for i, d in enumerate(densities):
        one = at_init.mask_at_density(how, network, mask, None, jax.random.PRNGKey(0), d)
        assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a[i] == b)), stacked, one))
    inverted = at_init.mask_at_density(
        at_init.Pruning(scorer, MODEL, "global", invert=True), network, mask, None, jax.random.PRNGKey(0), 0.5
    )
    w = jnp.concatenate([jnp.abs(params[n]["kernel"]).ravel() for n in ("Dense_0", "Dense_1")])
    kept = jnp.concatenate([inverted[n]["kernel"].ravel() for n in ("Dense_0", "Dense_1")])
    assert float(jnp.max(w[kept])) <= float(jnp.min(w[~kept]))


def test_prune_keeps_exactly_the_intended_count_globally_and_per_layer():
    params = mlp([30, 20, 10], jax.random.PRNGKey(9))
    mask = mask_lib.ones_like(params)
    scores = jax.tree.map(lambda m: jax.random.normal(jax.random.PRNGKey(m.size), m.shape), mask)
    sizes = {"Dense_0": 600, "Dense_1": 200}
    once = prune_lib.prune(scores, mask, 0.3, "global")
    assert int(sum(jnp.sum(m) for m in jax.tree.leaves(once))) == 800 - int(np.ceil(0.3 * 800))
    twice = prune_lib.prune(scores, once, 0.3, "global")
    assert int(sum(jnp.sum(m) for m in jax.tree.leaves(twice))) == 560 - int(np.ceil(0.3 * 560))
    layerwise = prune_lib.prune(scores, mask, 0.3, "layerwise")
    for name, n in sizes.items():
        assert int(jnp.sum(layerwise[name]["kernel"])) == n - int(np.ceil(0.3 * n))
    to_density = prune_lib.prune_to_density(scores, mask, 0.05, "layerwise")
    for name, n in sizes.items():
        assert int(jnp.sum(to_density[name]["kernel"])) == n - int(np.ceil(0.95 * n))
    assert int(sum(jnp.sum(m) for m in jax.tree.leaves(prune_lib.prune_to_density(scores, mask, 0.05)))) == 40


def test_the_shared_rule_reproduces_magnitude_pruning_with_ties_and_negative_scores():
    mask = {"a": {"kernel": jnp.array([[True, True, False, True]])}}
    params = {"a": {"kernel": jnp.array([[0.5, -0.5, 9.0, 0.1]])}}
    new = magnitude.prune_global(params, mask, 0.5)  # removes 2: 0.1, then the first of the tied 0.5s
    assert new["a"]["kernel"].tolist() == [[False, True, False, False]]
    scores = {"a": {"kernel": jnp.array([[-3.0, -1.0, 5.0, jnp.nan]])}}
    assert prune_lib.prune(scores, mask, 0.5)["a"]["kernel"].tolist() == [[False, True, False, False]]


def erk_reference(shapes, density):
    """RigL's procedure, written out with Python sets (``include_kernel=True``, power 1)."""
    dense = set()
    while True:
        raw = {i: np.sum(s) / np.prod(s) for i, s in enumerate(shapes) if i not in dense}
        budget = density * sum(np.prod(s) for s in shapes) - sum(np.prod(shapes[i]) for i in dense)
        eps = budget / sum(raw[i] * np.prod(shapes[i]) for i in raw)
        top = max(raw.values())
        if top * eps <= 1:
            return [1.0 if i in dense else eps * raw[i] for i in range(len(shapes))]
        dense |= {i for i, r in raw.items() if r == top}


@pytest.mark.parametrize("density", [0.9, 0.5, 0.1, 0.01])
def test_erk_densities_match_the_formula_and_the_overall_target(density):
    shapes = [(3, 3, 3, 16), (3, 3, 16, 32), (3, 3, 32, 64), (64, 10)]
    got = np.asarray(prune_lib.erk_densities(shapes, density))
    np.testing.assert_allclose(got, erk_reference(shapes, density), rtol=1e-5)
    sizes = np.array([np.prod(s) for s in shapes])
    assert abs(np.sum(got * sizes) / sizes.sum() - density) < 1e-5
    assert np.all(got <= 1.0)
    mask = {f"l{i}": {"kernel": jnp.ones(s, bool)} for i, s in enumerate(shapes)}
    scores = jax.tree.map(lambda m: jax.random.uniform(jax.random.PRNGKey(m.size), m.shape), mask)
    erk = prune_lib.prune_to_density(scores, mask, density, "erk")
    kept = [int(jnp.sum(erk[f"l{i}"]["kernel"])) for i in range(len(shapes))]
    assert kept == [int(np.floor(np.float32(d) * n)) for d, n in zip(got, sizes)]
    assert density * sizes.sum() - len(shapes) <= sum(kept) <= density * sizes.sum()


def test_erk_makes_the_small_layers_dense_when_their_density_would_exceed_one():
    shapes = [(3, 3, 3, 16), (3, 3, 16, 256), (256, 10)]
    got = np.asarray(prune_lib.erk_densities(shapes, 0.5))
    assert got[0] == 1.0 and got[2] == 1.0 and got[1] < 0.5


def test_balanced_examples_take_each_class_equally_and_interleaved():
    labels = jnp.asarray(np.random.default_rng(0).integers(0, 4, 200))
    idx = at_init.balanced_examples(jax.random.PRNGKey(0), labels, 5, 4)
    assert idx.shape == (20,) and len(set(idx.tolist())) == 20
    assert labels[idx].tolist() == [0, 1, 2, 3] * 5
    assert at_init.chunking(10, 10) == (1, 100)
    assert at_init.chunking(10, 1000) == (10, 1000)
    assert at_init.chunking(10, 100) == (2, 500)


def sorted_keep_top(scores, keep, count):
    """The rule by a stable sort, as a reference: the last ``count`` of the ascending order survive."""
    scores = jnp.where(jnp.isnan(scores) | (scores == -jnp.inf), jnp.finfo(jnp.float32).min, scores)
    order = jnp.argsort(jnp.where(keep, scores, -jnp.inf), stable=True)
    rank = jnp.zeros_like(order).at[order].set(jnp.arange(order.size))
    return rank >= keep.size - jnp.minimum(count, jnp.sum(keep))


@pytest.mark.parametrize("seed", range(6))
def test_the_linear_time_selection_equals_a_stable_sort_with_ties_signs_and_pruned_entries(seed):
    rng_ = np.random.default_rng(seed)
    n = 500
    scores = (rng_.normal(size=n) * 10.0 ** rng_.integers(-3, 4)).astype(np.float32)
    scores[rng_.integers(0, n, 200)] = np.round(scores[rng_.integers(0, n, 200)])  # many ties
    scores[rng_.integers(0, n, 20)] = 0.0
    scores[rng_.integers(0, n, 5)] = -0.0
    scores[rng_.integers(0, n, 3)] = np.nan
    scores[rng_.integers(0, n, 3)] = -np.inf
    keep = rng_.random(n) < 0.7
    for count in (0, 1, 17, 250, int(keep.sum()), n):
        got = prune_lib._keep_top(jnp.asarray(scores), jnp.asarray(keep), count)
        want = sorted_keep_top(jnp.asarray(scores), jnp.asarray(keep), count)
        assert got.tolist() == want.tolist(), (seed, count)
