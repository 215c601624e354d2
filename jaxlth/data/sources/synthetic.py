"""Synthetic classification data: fast, offline, deterministic and learnable.

Each class has a fixed random template, piecewise constant on 4x4 blocks (so convolutions and
dense layers both find it); an example is ``255 * (0.5 * template + 0.5 * uniform noise)``
rounded to uint8. A linear classifier separates the classes well, so a short training run
reaches low error, which is what smoke tests need.
"""

from __future__ import annotations

import numpy as np

BLOCK = 4  # template resolution: one random value per BLOCK x BLOCK patch


def _upsample(coarse: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Nearest-neighbour resize of ``(C, *coarse_spatial, ch)`` to ``(C, *shape)``."""
    out = coarse
    for axis, size in enumerate(shape[:-1], start=1):
        index = np.arange(size) * coarse.shape[axis] // size
        out = np.take(out, index, axis=axis)
    return out


def _examples(rng: np.random.Generator, templates: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    num_classes = templates.shape[0]
    labels = rng.permutation(np.arange(n) % num_classes).astype(np.int32)
    noise = rng.random((n,) + templates.shape[1:], dtype=np.float32)
    images = 255.0 * (0.5 * templates[labels] + 0.5 * noise)
    return np.rint(images).astype(np.uint8), labels


def make_synthetic(
    train_size: int = 512,
    test_size: int = 256,
    image_shape: tuple[int, ...] = (28, 28, 1),
    num_classes: int = 10,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Generates the dataset; the same arguments always give the same arrays.

    Args:
      train_size, test_size: number of examples per split (classes balanced up to one).
      image_shape: ``(H, W, C)`` or any ``(*spatial, C)``.
      num_classes: number of classes (>= 2).
      seed: seeds the templates and both splits (independent streams for each).

    Returns:
      ``(train_images, train_labels, test_images, test_labels)``: images uint8
      ``(N, *image_shape)``, labels int32 ``(N,)``.
    """
    image_shape = tuple(int(s) for s in image_shape)
    template_seq, train_seq, test_seq = np.random.SeedSequence(seed).spawn(3)
    coarse_shape = tuple(max(1, s // BLOCK) for s in image_shape[:-1]) + image_shape[-1:]
    coarse = np.random.default_rng(template_seq).random((num_classes,) + coarse_shape, dtype=np.float32)
    templates = _upsample(coarse, image_shape)
    train = _examples(np.random.default_rng(train_seq), templates, train_size)
    test = _examples(np.random.default_rng(test_seq), templates, test_size)
    return train + test
