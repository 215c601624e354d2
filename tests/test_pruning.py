"""Magnitude and random pruning, and the branch transforms, on hand-made trees."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxlth.pruning import branches, imp, magnitude, masks


def toy(seed=0):
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(seed), 3)
    params = {
        "hidden_0": {"kernel": jax.random.normal(k1, (30, 20)), "bias": jnp.ones(20)},
        "hidden_1": {"kernel": jax.random.normal(k2, (20, 10)) * 3, "bias": jnp.ones(10)},
        "output": {"kernel": jax.random.normal(k3, (10, 4)), "bias": jnp.ones(4)},
    }
    return params, masks.ones_like(params, ["output"])


def count(mask):
    return {k: int(v["kernel"].sum()) for k, v in mask.items()}


def stack(tree, n=2):
    return jax.tree.map(lambda x: jnp.stack([x] * n), tree)


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_density_after_levels_is_0_8_to_the_l(scope):
    params, mask = toy()
    sizes = {"hidden_0": 600, "hidden_1": 200}
    for level in range(1, 4):  # OpenLTH's ceil rule drifts by < 1 weight per layer per level
        params = jax.tree.map(lambda p: p + 0.01 * level, params)  # new weights each level
        mask = (
            magnitude.prune_global(params, mask, 0.2)
            if scope == "global"
            else magnitude.prune_layerwise(params, mask, 0.2)
        )
        kept = count(mask)
        assert abs(sum(kept.values()) - 0.8**level * 800) <= len(kept), (level, kept)
        if scope == "layerwise":
            for layer, n in sizes.items():
                assert abs(kept[layer] - 0.8**level * n) <= 1, (level, layer, kept)
    assert "output" not in mask  # the ignored layer is never pruned


def test_masks_are_nested_level_to_level():
    params, mask = toy()
    for level in range(4):
        params = jax.tree.map(lambda p: p * jax.random.uniform(jax.random.PRNGKey(level), p.shape), params)
        new = magnitude.prune_global(params, mask, 0.3)
        for old_leaf, new_leaf in zip(jax.tree.leaves(mask), jax.tree.leaves(new)):
            assert not np.any(np.asarray(new_leaf) & ~np.asarray(old_leaf))
        mask = new


def test_global_pruning_removes_exactly_the_smallest_surviving_magnitudes():
    params, mask = toy()
    mask = magnitude.prune_global(params, mask, 0.5)  # 400 survive
    new = magnitude.prune_global(params, mask, 0.25)  # removes ceil(0.25 * 400) = 100
    surviving = np.concatenate(
        [np.abs(np.asarray(params[k]["kernel"]))[np.asarray(mask[k]["kernel"])] for k in ("hidden_0", "hidden_1")]
    )
    removed = np.concatenate(
        [
            np.abs(np.asarray(params[k]["kernel"]))[np.asarray(mask[k]["kernel"] & ~new[k]["kernel"])]
            for k in ("hidden_0", "hidden_1")
        ]
    )
    assert len(removed) == 100
    np.testing.assert_array_equal(np.sort(removed), np.sort(surviving)[:100])
    # Global ranking prunes the small-scale layer harder than the 3x-scaled one.
    kept = count(new)
    assert kept["hidden_0"] / 600 < kept["hidden_1"] / 200


def test_layerwise_prunes_each_layer_by_the_fraction():
    params, mask = toy()
    new = magnitude.prune_layerwise(params, mask, 0.2)
    assert count(new) == {"hidden_0": 480, "hidden_1": 160}
    w = np.abs(np.asarray(params["hidden_0"]["kernel"]))
    assert w[~np.asarray(new["hidden_0"]["kernel"])].max() <= w[np.asarray(new["hidden_0"]["kernel"])].min()


def test_prune_is_vmapped_over_replicates_independently():
    params, mask = toy()
    other, _ = toy(seed=1)
    stacked = jax.tree.map(lambda a, b: jnp.stack([a, b]), params, other)
    new = imp.prune(stacked, stack(mask), fraction=0.2, scope="global")
    for r, p in enumerate((params, other)):
        expected = magnitude.prune_global(p, mask, 0.2)
        for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(new)):
            np.testing.assert_array_equal(a, b[r])
    assert not np.array_equal(new["hidden_0"]["kernel"][0], new["hidden_0"]["kernel"][1])


def pruned_level(seed=0):
    params, mask = toy(seed)
    return params, magnitude.prune_layerwise(params, mask, 0.6)


OPTIONS = ml_collections.ConfigDict({"random_prune_scope": "layerwise"})


def network(params):
    return {"params": params, "batch_stats": {}}


def test_random_prune_keeps_per_layer_density_but_not_the_mask():
    params, mask = pruned_level()
    new_mask, net = branches.random_prune(jax.random.PRNGKey(0), mask, network(params), None, OPTIONS)
    assert count(new_mask) == count(mask)
    assert not np.array_equal(new_mask["hidden_0"]["kernel"], mask["hidden_0"]["kernel"])
    w = np.asarray(net["params"]["hidden_0"]["kernel"])
    keep = np.asarray(new_mask["hidden_0"]["kernel"])
    np.testing.assert_array_equal(w[keep], np.asarray(params["hidden_0"]["kernel"])[keep])
    assert np.all(w[~keep] == 0)
    options = ml_collections.ConfigDict({"random_prune_scope": "global"})
    global_mask, _ = branches.random_prune(jax.random.PRNGKey(0), mask, network(params), None, options)
    assert sum(count(global_mask).values()) == sum(count(mask).values())


def test_random_reinit_keeps_the_mask_not_the_weights():
    params, mask = pruned_level()
    fresh, _ = toy(seed=9)
    new_mask, net = branches.random_reinit(jax.random.PRNGKey(0), mask, network(params), network(fresh), OPTIONS)
    assert new_mask is mask
    keep = np.asarray(mask["hidden_0"]["kernel"])
    w = np.asarray(net["params"]["hidden_0"]["kernel"])
    np.testing.assert_array_equal(w[keep], np.asarray(fresh["hidden_0"]["kernel"])[keep])
    assert np.all(w[~keep] == 0)
    assert not np.allclose(w[keep], np.asarray(params["hidden_0"]["kernel"])[keep])


def test_shuffle_keeps_each_layers_multiset_of_surviving_values():
    params, mask = pruned_level()
    new_mask, net = branches.shuffle(jax.random.PRNGKey(0), mask, network(params), None, OPTIONS)
    for layer in ("hidden_0", "hidden_1"):
        keep = np.asarray(mask[layer]["kernel"])
        before = np.asarray(params[layer]["kernel"])[keep]
        after = np.asarray(net["params"][layer]["kernel"])
        np.testing.assert_array_equal(np.sort(after[keep]), np.sort(before))
        assert np.all(after[~keep] == 0)
        assert not np.array_equal(after[keep], before)  # actually moved
    np.testing.assert_array_equal(net["params"]["output"]["kernel"], params["output"]["kernel"])


def test_sign_flip_keeps_magnitudes_and_reinit_keep_sign_keeps_signs():
    params, mask = pruned_level()
    fresh, _ = toy(seed=5)
    keep = np.asarray(mask["hidden_0"]["kernel"])
    rewind_w = np.asarray(params["hidden_0"]["kernel"])[keep]
    # (A key unrelated to toy()'s: with the same key the signs would mirror the weights' own draws.)
    _, flipped = branches.sign_flip(jax.random.PRNGKey(123), mask, network(params), None, OPTIONS)
    w = np.asarray(flipped["params"]["hidden_0"]["kernel"])[keep]
    np.testing.assert_allclose(np.abs(w), np.abs(rewind_w))
    assert 0.3 < np.mean(np.sign(w) != np.sign(rewind_w)) < 0.7
    _, signed = branches.reinit_keep_sign(jax.random.PRNGKey(0), mask, network(params), network(fresh), OPTIONS)
    w = np.asarray(signed["params"]["hidden_0"]["kernel"])[keep]
    np.testing.assert_array_equal(np.sign(w), np.sign(rewind_w))
    np.testing.assert_allclose(np.abs(w), np.abs(np.asarray(fresh["hidden_0"]["kernel"])[keep]))
