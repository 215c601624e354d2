"""On-device augmentation and normalisation: shapes, determinism, crop/flip semantics, jit/vmap."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlth.data.augment import augment_batch, normalize, random_crop_flip

# Compiled once per shape: far cheaper in tests than op-by-op dispatch.
augment = jax.jit(augment_batch, static_argnames="kind")
crop_flip = jax.jit(random_crop_flip, static_argnames="pad")


def _unique_images(b, h, w, c):
    """Float32 images whose every pixel value is distinct and positive (so 0 means padding)."""
    return np.arange(1, b * h * w * c + 1, dtype=np.float32).reshape(b, h, w, c)


def _match_window(out, image, pad):
    """The ``(dy, dx, flipped)`` whose crop of the zero-padded ``image`` equals ``out``."""
    h, w, _ = image.shape
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            window = padded[dy : dy + h, dx : dx + w]
            if np.array_equal(out, window):
                return dy, dx, False
            if np.array_equal(out, window[:, ::-1]):
                return dy, dx, True
    return None


def test_none_is_identity():
    images = np.random.default_rng(0).random((4, 8, 8, 3), dtype=np.float32)
    out = augment_batch(jax.random.key(1), images, "none")
    np.testing.assert_array_equal(out, images)


def test_cifar_keeps_shape_dtype_and_changes_pixels():
    images = np.random.default_rng(0).random((16, 32, 32, 3), dtype=np.float32)
    out = augment(jax.random.key(1), images, kind="cifar")
    assert out.shape == images.shape and out.dtype == jnp.float32
    assert not np.array_equal(np.asarray(out), images)


def test_deterministic_per_key_and_different_across_keys():
    images = _unique_images(16, 8, 8, 3)
    a = augment(jax.random.key(7), images, kind="cifar")
    b = augment(jax.random.key(7), images, kind="cifar")
    c = augment(jax.random.key(8), images, kind="cifar")
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_crop_is_a_window_of_the_padded_image_possibly_flipped():
    images = _unique_images(64, 6, 5, 2)
    out = np.asarray(augment(jax.random.key(3), images, kind="cifar"))
    source = np.asarray(images)
    for i in range(len(out)):
        allowed = np.concatenate([source[i].ravel(), [0.0]])
        assert np.isin(out[i], allowed).all()
        assert _match_window(out[i], source[i], pad=4) is not None, i


def test_offsets_cover_the_range_and_flip_half_the_time():
    images = _unique_images(1500, 3, 3, 1)
    out = np.asarray(crop_flip(jax.random.key(0), images, pad=2))
    source = np.asarray(images)
    matches = [_match_window(out[i], source[i], pad=2) for i in range(len(out))]
    assert all(m is not None for m in matches)
    # Every 3x3 window of the 2-padded image holds a distinct image pixel, so the match is
    # unique: all 25 offsets must occur, and about half the crops must be flipped.
    offsets = {(m[0], m[1]) for m in matches}
    assert offsets == {(dy, dx) for dy in range(5) for dx in range(5)}
    flipped = np.mean([m[2] for m in matches])
    assert 0.42 < flipped < 0.58


def test_jit_and_vmap_over_replicates():
    images = _unique_images(2 * 8, 8, 8, 3).reshape(2, 8, 8, 8, 3)
    keys = jax.random.split(jax.random.key(0), 2)
    eager = augment_batch(keys[0], images[0], "cifar")
    np.testing.assert_array_equal(augment(keys[0], images[0], kind="cifar"), eager)
    vmapped = jax.jit(jax.vmap(functools.partial(augment_batch, kind="cifar")))(keys, images)
    for r in range(2):
        np.testing.assert_array_equal(vmapped[r], augment_batch(keys[r], images[r], "cifar"))


def test_unknown_kind_raises():
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment_batch(jax.random.key(0), jnp.zeros((1, 4, 4, 1)), "mixup")


def test_normalize_uint8_and_float():
    pixels = np.arange(2 * 2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 2, 3) * 10
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    out = normalize(pixels, mean, std, 255.0)
    expected = (pixels.astype(np.float32) / 255.0 - np.array(mean)) / np.array(std)
    assert out.dtype == jnp.float32 and out.shape == pixels.shape
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    signal = np.linspace(-1, 1, 40, dtype=np.float32).reshape(1, 40, 1)
    np.testing.assert_allclose(normalize(signal, (0.5,), (2.0,), 1.0), (signal - 0.5) / 2.0, rtol=1e-6)
    jitted = jax.jit(normalize, static_argnums=(1, 2, 3))(pixels, mean, std, 255.0)
    np.testing.assert_allclose(jitted, expected, rtol=1e-6, atol=1e-6)
