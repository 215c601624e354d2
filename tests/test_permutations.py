"""Permutation symmetries derived from the forward pass, and weight matching (Git Re-Basin)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlth import models
from jaxlth.analysis import matching, permutations
from jaxlth.pruning import masks as mask_lib
from tests.conftest import drawn_variables

GROUPS = {
    "lenet": 2,
    "lenet_300_100": 2,
    "conv2": 4,
    "conv4": 6,
    "conv6": 8,
    "resnet_cifar": 12,
    "resnet20": 12,
    "resnet32": 18,
    "resnet56": 30,
    "resnet110": 57,
    "resnet18": 12,
    "resnet34": 20,
    "resnet50": 37,
    "resnet101": 71,
    "resnet152": 105,
    "vgg11": 8,
    "vgg13": 10,
    "vgg16": 13,
    "vgg19": 16,
    "vit": 13,  # the residual stream (class token, position embedding, LayerNorms) + one MLP per block
    "vit_tiny": 13,
    "vit_small": 13,
    "vit_base": 13,
    # BERT: the word embeddings' lookup (a gather) is an operation the trace does not follow, so the residual
    # stream stays fixed; the groups are one feed-forward block per layer and the pooler.
    "bert": 13,
    "bert_tiny": 3,
    "bert_mini": 5,
    "bert_small": 5,
    "bert_medium": 9,
    "bert_base": 13,
}


def as_tokens(x, vocab_size):
    """Float inputs ``(N, 2, T)`` (the traces' zeros, the tests' normal draws) as BERT tokens: ids in
    ``1..vocab_size-1``, types 0 or 1."""
    ids = jnp.floor(jnp.abs(x[:, 0]) * 1000) % (vocab_size - 1) + 1
    return jnp.stack([ids, (x[:, 1] > 0).astype(ids.dtype)], axis=1).astype(jnp.int32)


def network(name):
    """A model with generic parameters: random kernels, biases, BatchNorm scales and statistics away from
    their initial values (so no unit is dead or interchangeable)."""
    shape = (28, 28, 1) if name.startswith("lenet") else (32, 32, 3)
    shape = (2, 8) if name.startswith("bert") else shape  # BERT: tokens (ids, types) of 8 positions
    model = models.get_model(name, 10)
    tokens = (lambda x: as_tokens(x, model.vocab_size)) if name.startswith("bert") else (lambda x: x)
    variables = drawn_variables(model, jnp.zeros((1, *shape)), train=False)  # not init: ~25 s for ResNet-101
    params, stats = variables["params"], variables.get("batch_stats", {})

    def apply(p, b, x):
        return model.apply({"params": p, "batch_stats": b} if b else {"params": p}, tokens(x), train=False)

    return apply, params, stats, shape


# convnet computes its convolutions as patch matmuls on a CPU, which the traced spec does not yet follow
ALIGNABLE = [name for name in models.names() if name != "convnet"]


@pytest.mark.parametrize("name", ALIGNABLE)
def test_a_random_permutation_of_every_model_computes_the_same_logits(name):
    apply, params, stats, shape = network(name)
    spec = permutations.spec(apply, params, stats, shape)
    assert len(spec) == GROUPS[name]
    sizes = permutations.sizes(spec, params, stats)
    perms = permutations.random_permutations(spec, sizes, jax.random.PRNGKey(1))
    assert all(not np.array_equal(perms[g], np.arange(sizes[g])) for g in spec)
    x = jax.random.normal(jax.random.PRNGKey(2), (3, *shape))
    logits = apply(params, stats, x)
    permuted = apply(*permutations.permute(spec, perms, params, stats), x)
    scale = float(jnp.max(jnp.abs(logits)))
    assert float(jnp.max(jnp.abs(permuted - logits))) <= 1e-5 * scale + 1e-5
    group = next(iter(spec))  # leaving one axis of a group out changes the function: the check can fail
    broken = apply(*permutations.permute({group: spec[group][:-1]}, perms, params, stats), x)
    assert float(jnp.max(jnp.abs(broken - logits))) > 1e-3 * scale


def test_the_input_and_output_axes_stay_fixed_and_a_flatten_is_a_tiled_view():
    apply, params, stats, shape = network("conv2")
    spec = permutations.spec(apply, params, stats, shape)
    entries = [e for group in spec.values() for e in group]
    assert ("params", ("conv_0", "kernel"), 2, None) not in entries  # the image's channels
    assert not any(path == ("output", "kernel") and axis == 1 for _, path, axis, _ in entries)
    assert not any(path == ("output", "bias") for _, path, _, _ in entries)
    assert ("params", ("dense_0", "kernel"), 0, 64) in entries  # 16 x 16 positions x 64 channels


@pytest.mark.parametrize("name", ["lenet_300_100", "resnet20"])
def test_weight_matching_recovers_a_known_permutation_exactly(name):
    apply, params, stats, shape = network(name)
    spec = permutations.spec(apply, params, stats, shape)
    sizes = permutations.sizes(spec, params, stats)
    perms = permutations.random_permutations(spec, sizes, jax.random.PRNGKey(3))
    shuffled, shuffled_stats = permutations.permute(spec, perms, params, stats)
    found, _ = matching.weight_matching(spec, sizes, params, shuffled, seed=0)
    aligned, aligned_stats = permutations.permute(spec, found, shuffled, shuffled_stats)
    for a, b in zip(jax.tree.leaves((params, stats)), jax.tree.leaves((aligned, aligned_stats))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_masks_permute_with_their_weights_and_keep_their_densities():
    apply, params, stats, shape = network("lenet_300_100")
    spec = permutations.spec(apply, params, stats, shape)
    sizes = permutations.sizes(spec, params, stats)
    perms = permutations.random_permutations(spec, sizes, jax.random.PRNGKey(4))
    mask = jax.tree.map(
        lambda m: jax.random.bernoulli(jax.random.PRNGKey(m.size), 0.3, m.shape), mask_lib.ones_like(params)
    )
    permuted_mask = permutations.permute_mask(spec, perms, mask)
    pruned = mask_lib.apply(params, mask)
    permuted_pruned, _ = permutations.permute(spec, perms, pruned, stats)
    for a, b in zip(
        jax.tree.leaves(mask_lib.apply(permutations.permute(spec, perms, params, stats)[0], permuted_mask)),
        jax.tree.leaves(permuted_pruned),
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert {k: float(v) for k, v in mask_lib.layer_density(mask).items()} == {
        k: float(v) for k, v in mask_lib.layer_density(permuted_mask).items()
    }


@pytest.mark.parametrize("name", ["lenet_300_100", "conv2", "resnet20"])
def test_activation_matching_recovers_a_known_permutation(name):
    apply, params, stats, shape = network(name)
    symmetry = permutations.analyze(apply, params, stats, shape)
    assert all(symmetry.probes[g] for g in symmetry.spec)  # every group is seen in some activation
    sizes = permutations.sizes(symmetry.spec, params, stats)
    perms = permutations.random_permutations(symmetry.spec, sizes, jax.random.PRNGKey(5))
    shuffled, shuffled_stats = permutations.permute(symmetry.spec, perms, params, stats)
    x = jax.random.normal(jax.random.PRNGKey(6), (16, *shape))
    found, _ = matching.activation_matching(symmetry, params, stats, shuffled, shuffled_stats, x)
    aligned, _ = permutations.permute(symmetry.spec, found, shuffled, shuffled_stats)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(aligned)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_nested_masks_stay_nested_under_one_permutation():
    apply, params, stats, shape = network("conv2")
    spec = permutations.spec(apply, params, stats, shape)
    perms = permutations.random_permutations(spec, permutations.sizes(spec, params, stats), jax.random.PRNGKey(7))
    outer = jax.tree.map(
        lambda m: jax.random.bernoulli(jax.random.PRNGKey(m.ndim), 0.5, m.shape), mask_lib.ones_like(params)
    )
    inner = jax.tree.map(lambda m: m & jax.random.bernoulli(jax.random.PRNGKey(m.size), 0.5, m.shape), outer)
    a, b = permutations.permute_mask(spec, perms, outer), permutations.permute_mask(spec, perms, inner)
    assert all(bool(jnp.all(x | ~y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    assert float(mask_lib.density(b)) == float(mask_lib.density(inner))
    assert not all(bool(jnp.all(x == y)) for x, y in zip(jax.tree.leaves(b), jax.tree.leaves(inner)))
