"""Seeded changes to the training split: a random subset, and random (noisy) labels.

Both touch only the training split; the test split is returned as is. Each function draws
from its own stream (``SeedSequence([seed, tag])``), so the same ``seed`` given to both does
not correlate the subset with the relabelled examples.
"""

from __future__ import annotations

import numpy as np

from jaxlth.data.dataset import Dataset
from jaxlth.errors import UserError

_SUBSAMPLE_TAG, _LABELS_TAG = 1, 2


def _rng(seed: int, tag: int) -> np.random.Generator:
    """A generator for ``(seed, tag)``; any int seed (negative ones as 64-bit two's complement)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed) & (2**64 - 1), tag]))


def check_fractions(subsample_fraction: float, random_labels_fraction: float) -> None:
    """Raises UserError unless 0 < subsample_fraction <= 1 and 0 <= random_labels_fraction <= 1."""
    for field, value, low_open in (
        ("subsample_fraction", subsample_fraction, True),
        ("random_labels_fraction", random_labels_fraction, False),
    ):
        try:
            x = float(value)
        except (TypeError, ValueError):
            x = float("nan")
        ok = (0.0 < x <= 1.0) if low_open else (0.0 <= x <= 1.0)
        if not ok:
            interval = "(0, 1]" if low_open else "[0, 1]"
            raise UserError(f"data.{field}={value!r} must be a number in {interval}.")


def subsample(dataset: Dataset, fraction: float, seed: int) -> Dataset:
    """Keeps a seeded random ``round(fraction * N)`` of the N training examples.

    The kept examples stay in their original order. ``fraction == 1`` returns ``dataset``.

    Raises:
      UserError: ``fraction`` outside (0, 1], or so small that no example is kept.
    """
    check_fractions(fraction, 0.0)
    fraction = float(fraction)
    if fraction == 1.0:
        return dataset
    n = dataset.num_train
    keep = int(round(fraction * n))
    if keep < 1:
        raise UserError(
            f"data.subsample_fraction={fraction} keeps no example of the "
            f"{n} training examples; use at least {1 / n:.2g}."
        )
    index = np.sort(_rng(seed, _SUBSAMPLE_TAG).permutation(n)[:keep])
    return dataset.replace(
        train_images=dataset.train_images[index],
        train_labels=dataset.train_labels[index],
        source=f"{dataset.source}, train subsample {keep}/{n} (seed {seed})",
    )


def randomize_labels(dataset: Dataset, fraction: float, seed: int) -> Dataset:
    """Replaces the labels of a seeded ``round(fraction * N)`` training examples by random ones.

    The new labels are drawn uniformly from all ``num_classes`` classes, so a new label may
    equal the true one (as in Zhang et al. 2017's partially random labels): the expected
    fraction of labels that actually change is ``fraction * (1 - 1 / num_classes)``.
    ``fraction == 0`` returns ``dataset``.

    Raises:
      UserError: ``fraction`` outside [0, 1], or soft labels (a distilled set's ``(N, K)`` targets).
    """
    check_fractions(1.0, fraction)
    fraction = float(fraction)
    if fraction == 0.0:
        return dataset
    if dataset.train_labels.ndim != 1:
        raise UserError("data.random_labels_fraction draws class labels, and this training set has soft labels")
    n = dataset.num_train
    count = int(round(fraction * n))
    rng = _rng(seed, _LABELS_TAG)
    chosen = rng.permutation(n)[:count]
    labels = np.array(dataset.train_labels, dtype=np.int32, copy=True)
    labels[chosen] = rng.integers(0, dataset.num_classes, size=count, dtype=np.int32)
    return dataset.replace(
        train_labels=labels, source=f"{dataset.source}, {count}/{n} train labels randomized (seed {seed})"
    )
