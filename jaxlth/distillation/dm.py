"""Distribution matching (DM; Zhao & Bilen, WACV 2023): one outer iteration's loss. Cheaper than MTT.

Each iteration initialises a network at random, embeds ``batch_real`` real images of each class and
the synthetic images of that class, and sums over classes the squared distance of their mean
embeddings::

    loss = Σ_c || mean_i φ(real_c,i) - mean_j φ(syn_c,j) ||²

``φ`` is the network's penultimate features: the input of its ``output`` layer (every model of the
registry ends in a Dense layer named ``output``), read in train mode (BatchNorm normalises with the
batch's statistics, as DM's code embeds). No network is trained, no expert is needed, and no
second-order derivative is taken: one forward pass of real and synthetic images and one backward
pass of the synthetic ones per iteration.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlth.distillation import keys, synthetic_set
from jaxlth.training import functions as fn

OUTPUT = "output"  # the registry's classifier layer: its input is the embedding


@dataclasses.dataclass(frozen=True)
class Distribution:
    """The static settings of DM's objective."""

    batch_real: int  # real images of each class per iteration
    num_classes: int


def embed(model, params, batch_stats, x: jax.Array, train: bool = True) -> jax.Array:
    """``(B, D)``: the input of the model's ``output`` layer for inputs ``x`` (preprocessed)."""
    seen = []

    def capture(next_fun, args, kwargs, context):
        if context.module.name == OUTPUT and context.method_name == "__call__":
            seen.append(args[0])
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(capture):
        fn.logits(model, params, batch_stats, x, train)
    if not seen:
        raise ValueError(f"the model has no layer named {OUTPUT!r} whose input could be embedded")
    return seen[-1].reshape(x.shape[0], -1)


def loss(
    model,
    spec: fn.Spec,
    settings: Distribution,
    train_images: jax.Array,
    train_labels: jax.Array,
    images: jax.Array,
    key: jax.Array,
) -> jax.Array:
    """DM's loss of one iteration (key ``key``) for a class-major synthetic set of ``images`` (stored
    units, ``images_per_class`` of each class in turn)."""
    params, batch_stats = fn.init(model, spec, keys.NETWORK.key(key))
    k = settings.num_classes
    chosen = synthetic_set.draw_per_class(keys.REAL.key(key), train_labels, k, settings.batch_real).reshape(-1)
    real, syn = train_images[chosen], images
    if spec.augmentation != "none":
        real_key, syn_key = jax.random.split(keys.AUGMENT.key(key))
        real, syn = fn.augmented(real, real_key, spec), fn.augmented(syn, syn_key, spec)
    else:
        real, syn = fn.preprocess(real, spec), fn.preprocess(syn, spec)
    real_mean = jax.lax.stop_gradient(embed(model, params, batch_stats, real)).reshape(k, settings.batch_real, -1)
    syn_mean = embed(model, params, batch_stats, syn).reshape(k, images.shape[0] // k, -1)
    return jnp.sum(jnp.square(real_mean.mean(axis=1) - syn_mean.mean(axis=1)))
