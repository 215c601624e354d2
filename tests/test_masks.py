import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlth.errors import UserError
from jaxlth.pruning import masks


def toy_params():
    return {
        "Dense_0": {"kernel": jnp.ones((4, 3)), "bias": jnp.ones((3,))},
        "Conv_0": {"kernel": jnp.ones((3, 3, 2, 5)), "bias": jnp.ones((5,))},
        "BatchNorm_0": {"scale": jnp.ones((5,)), "bias": jnp.zeros((5,))},
        "output": {"kernel": jnp.ones((3, 2)), "bias": jnp.ones((2,))},
    }


def test_prunable_leaves_are_exactly_the_kernels():
    paths = masks.prunable_paths(toy_params())
    assert sorted(paths) == [("Conv_0", "kernel"), ("Dense_0", "kernel"), ("output", "kernel")]


def test_layers_to_ignore_are_regular_expressions():
    assert ("output", "kernel") not in masks.prunable_paths(toy_params(), ["output"])
    assert masks.prunable_paths(toy_params(), ["^(Dense|Conv)"]) == [("output", "kernel")]
    with pytest.raises(UserError, match="layers_to_ignore"):
        masks.prunable_paths(toy_params(), ["("])


def test_ones_like_mirrors_prunable_kernels_only():
    mask = masks.ones_like(toy_params(), ["output"])
    assert set(mask) == {"Dense_0", "Conv_0"}
    assert set(mask["Dense_0"]) == {"kernel"}
    assert mask["Conv_0"]["kernel"].dtype == jnp.bool_ and mask["Conv_0"]["kernel"].shape == (3, 3, 2, 5)


def test_apply_zeroes_masked_weights_and_leaves_the_rest():
    params = toy_params()
    mask = masks.ones_like(params)
    mask["Dense_0"]["kernel"] = mask["Dense_0"]["kernel"].at[0].set(False)
    out = masks.apply(params, mask)
    assert np.all(out["Dense_0"]["kernel"][0] == 0) and np.all(out["Dense_0"]["kernel"][1:] == 1)
    assert np.all(out["Dense_0"]["bias"] == 1) and np.all(out["BatchNorm_0"]["scale"] == 1)
    assert masks.apply(params, {}) is params


def test_density_overall_and_per_layer():
    params = toy_params()
    mask = masks.ones_like(params)
    mask["Dense_0"]["kernel"] = jnp.zeros((4, 3), bool)  # 12 of 12 + 90 + 6 = 108 removed
    assert masks.num_prunable(mask) == 12 + 90 + 6
    np.testing.assert_allclose(masks.density(mask), 96 / 108)
    per_layer = masks.layer_density(mask)
    assert float(per_layer["Dense_0/kernel"]) == 0.0 and float(per_layer["Conv_0/kernel"]) == 1.0


def test_density_with_replicate_axis():
    mask = masks.ones_like(toy_params())
    stacked = jax.tree.map(lambda m: jnp.stack([m, jnp.zeros_like(m)]), mask)
    np.testing.assert_allclose(masks.density(stacked, replicate_axis=True), [1.0, 0.0])
    np.testing.assert_allclose(masks.layer_density(stacked, replicate_axis=True)["output/kernel"], [1.0, 0.0])
    assert masks.num_prunable(stacked, replicate_axis=True) == 108


def test_overlap_of_masks():
    a = {"d": {"kernel": np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool)}, "e": {"kernel": np.ones((2, 2), bool)}}
    b = {"d": {"kernel": np.array([[1, 1, 0, 0], [1, 0, 0, 0]], bool)}, "e": {"kernel": np.ones((2, 2), bool)}}
    # Nested masks: |a and b| = 3 + 4, |a or b| = 6 + 4.
    assert float(masks.overlap(a, b)) == pytest.approx(7 / 10)
    assert float(masks.overlap(a, b)) == pytest.approx(float(masks.density(b) / masks.density(a)))
    per_layer = masks.overlap(a, b, per_layer=True)
    assert float(per_layer["d/kernel"]) == pytest.approx(0.5) and float(per_layer["e/kernel"]) == 1.0
    assert float(masks.overlap(a, a)) == 1.0
    stacked_a = jax.tree.map(lambda x: np.stack([x, x]), a)
    stacked_b = jax.tree.map(lambda x, y: np.stack([x, y]), a, b)
    np.testing.assert_allclose(masks.overlap(stacked_a, stacked_b, replicate_axis=True), [1.0, 0.7], rtol=1e-6)
    # Two independent random masks of density 1/2 overlap by about 1/3.
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    r1, r2 = ({"w": {"kernel": jax.random.bernoulli(k, 0.5, (300, 300))}} for k in keys)
    assert float(masks.overlap(r1, r2)) == pytest.approx(1 / 3, abs=0.01)
    assert float(masks.chance_overlap(r1)) == pytest.approx(float(masks.overlap(r1, r2)), abs=0.01)
    assert float(masks.chance_overlap(a, per_layer=True)["e/kernel"]) == 1.0
    with pytest.raises(ValueError):
        masks.overlap(a, {"d": b["d"]})
