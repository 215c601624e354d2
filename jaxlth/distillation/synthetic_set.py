"""A synthetic training set: its class-balanced layout, where it starts, and its two units.

A set of ``N = images_per_class * K`` images is laid out class-major: image ``i`` has class
``i // images_per_class`` (MTT's and DM's layout). Images exist in two units:

* **stored units**, those of the real dataset's ``train_images`` (Fashion-MNIST: pixels 0..255 as
  float32): what the artifact holds and what :func:`jaxlth.training.functions.preprocess` reads;
* **input units**, the network's normalised inputs ``(x / pixel_scale - mean) / std``: what the
  outer loop optimises (the papers' learning rates of images are in these units).

:func:`to_inputs` is jaxlth's own preprocessing; :func:`from_inputs` is its inverse.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxlth.training import functions as fn

INIT_KINDS = ("real", "noise")
SOFT_LABEL_START = 0.9  # learned soft labels start at probability 0.9 on the class, the rest spread evenly


def class_labels(images_per_class: int, num_classes: int) -> jax.Array:
    """``(N,)`` int32: ``[0]*ipc + [1]*ipc + ...``."""
    return jnp.repeat(jnp.arange(num_classes, dtype=jnp.int32), images_per_class)


def to_inputs(images: jax.Array, spec: fn.Spec) -> jax.Array:
    """Stored units -> network inputs (:func:`jaxlth.training.functions.preprocess`, differentiable)."""
    return fn.preprocess(images, spec)


def from_inputs(inputs: jax.Array, spec: fn.Spec) -> jax.Array:
    """Network inputs -> stored units (float32): the inverse of :func:`to_inputs`."""
    mean, std = jnp.asarray(spec.mean, jnp.float32), jnp.asarray(spec.std, jnp.float32)
    return ((inputs * std + mean) * spec.pixel_scale).astype(jnp.float32)


def class_counts(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``(K,)`` examples of each class (on the host, for the checks before anything is drawn)."""
    return np.bincount(np.asarray(labels), minlength=num_classes)[:num_classes]


def draw_per_class(key: jax.Array, labels: jax.Array, num_classes: int, count: int) -> jax.Array:
    """``(K, count)`` int32 indices of ``labels``: ``count`` distinct examples of each class, uniformly
    at random (class ``c`` from ``fold_in(key, c)``). Every class must have ``count`` examples."""

    def one(c):
        scores = jax.random.uniform(jax.random.fold_in(key, c), labels.shape)
        scores = jnp.where(labels == c, scores, 2.0)  # other classes after every member of c
        return jax.lax.top_k(-scores, count)[1].astype(jnp.int32)

    return jax.vmap(one)(jnp.arange(num_classes))


def initial_inputs(
    key: jax.Array,
    train_images: jax.Array,
    train_labels: jax.Array,
    images_per_class: int,
    num_classes: int,
    init: str,
    spec: fn.Spec,
) -> jax.Array:
    """``(N, *image_shape)`` float32 network inputs a synthetic set starts from: distinct real training
    images of each class (``init="real"``, MTT's and DM's default) or standard normal noise in input
    units (``"noise"``, as the papers' ``randn`` on normalised images)."""
    if init == "noise":
        return jax.random.normal(key, (images_per_class * num_classes, *spec.image_shape), jnp.float32)
    chosen = draw_per_class(key, train_labels, num_classes, images_per_class).reshape(-1)
    return to_inputs(train_images[chosen], spec)


def initial_label_logits(images_per_class: int, num_classes: int) -> jax.Array:
    """``(N, K)`` float32 logits of learned soft labels at the start: softmax gives
    :data:`SOFT_LABEL_START` to the image's class and the rest evenly to the others."""
    rest = (1.0 - SOFT_LABEL_START) / max(num_classes - 1, 1)
    one_hot = jax.nn.one_hot(class_labels(images_per_class, num_classes), num_classes)
    return jnp.log(jnp.where(one_hot > 0, SOFT_LABEL_START, rest)).astype(jnp.float32)
