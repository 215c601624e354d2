"""REPAIR: hidden units' statistics reset to the endpoints' interpolation, folded into the weights."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from jaxlth import models
from jaxlth.analysis import permutations, repair
from jaxlth.training import functions as fn
from tests.conftest import drawn_variables


def network(name, seed):
    shape = (28, 28, 1) if name.startswith("lenet") else (32, 32, 3)
    model = models.get_model(name, 10)
    variables = drawn_variables(model, jnp.zeros((1, *shape)), seed=seed, train=False)  # generic, not init's
    return model, variables["params"], variables.get("batch_stats", {}), shape


def site_paths(model, params, stats, shape):
    def apply(p, b, x):
        return fn.logits(model, p, b, x, False)[0]

    return repair.sites(permutations.spec(apply, params, stats, shape), params)


@pytest.mark.parametrize("name, expected", [("lenet_300_100", 2), ("conv2", 4), ("resnet20", 21), ("vgg11", 16)])
def test_sites_are_the_hidden_layers_with_a_scale_and_a_bias(name, expected):
    model, params, stats, shape = network(name, 0)
    sites = site_paths(model, params, stats, shape)
    assert len(sites) == expected
    flat = traverse_util.flatten_dict(params)
    last = [path[:-1] for path in flat if path[-1] == "kernel"][-1]  # the classifier
    assert last not in sites and all((*s, "bias") in flat for s in sites)


@pytest.mark.parametrize("name", ["lenet_300_100", "conv2", "resnet20", "vgg11"])
def test_repaired_units_have_the_target_statistics_and_own_targets_change_nothing(name):
    model, params_a, stats_a, shape = network(name, 0)
    _, params_b, stats_b, _ = network(name, 1)
    sites = site_paths(model, params_a, stats_a, shape)
    x = jax.random.normal(jax.random.PRNGKey(5), (64, *shape))
    target_a = repair.statistics(model, params_a, stats_a, x, sites)
    target_b = repair.statistics(model, params_b, stats_b, x, sites)

    same = repair.repair(model, params_a, stats_a, x, sites, target_a)
    for a, b in zip(jax.tree.leaves(params_a), jax.tree.leaves(same)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=2e-4, atol=2e-5)

    mid = jax.tree.map(lambda a, b: 0.5 * a + 0.5 * b, params_a, params_b)
    mid_stats = jax.tree.map(lambda a, b: 0.5 * a + 0.5 * b, stats_a, stats_b)
    targets = repair.interpolate_statistics(0.5, target_a, target_b)
    before = repair.statistics(model, mid, mid_stats, x, sites)
    repaired = repair.repair(model, mid, mid_stats, x, sites, targets)
    after = repair.statistics(model, repaired, mid_stats, x, sites)
    for path in sites:
        np.testing.assert_allclose(after[path][0], targets[path][0], atol=2e-3 * float(jnp.max(targets[path][1])))
        np.testing.assert_allclose(after[path][1], targets[path][1], rtol=2e-3)
    gap = max(float(jnp.max(jnp.abs(before[p][1] / targets[p][1] - 1))) for p in sites)
    assert gap > 0.05  # the midpoint's statistics were off: the check above can fail


def test_pruned_weights_stay_exactly_zero():
    model, params, stats, shape = network("lenet_300_100", 0)
    mask = jax.tree.map(lambda w: jax.random.bernoulli(jax.random.PRNGKey(w.size), 0.3, w.shape), params)
    pruned = jax.tree.map(lambda w, m: w * m, params, mask)
    sites = site_paths(model, pruned, stats, shape)
    x = jax.random.normal(jax.random.PRNGKey(5), (32, *shape))
    targets = jax.tree.map(lambda s: 2.0 * s + 0.5, repair.statistics(model, pruned, stats, x, sites))
    repaired = repair.repair(model, pruned, stats, x, sites, targets)
    flat, flat_mask = traverse_util.flatten_dict(repaired), traverse_util.flatten_dict(mask)
    for path, m in flat_mask.items():
        if path[-1] == "kernel":
            assert np.all(np.asarray(flat[path])[~np.asarray(m)] == 0.0)
