"""Datasets as whole numpy arrays, plus seeded subsets, label noise and on-device augmentation.

``load_dataset(config.data)`` is the one entry point: it finds and reads the data (see
``jaxlth.data.sources``), then applies ``subsample_fraction`` and ``random_labels_fraction``
to the training split.
"""

from __future__ import annotations

import ml_collections

from jaxlth.data.augment import augment_batch, normalize
from jaxlth.data.dataset import Dataset
from jaxlth.data.sources import load_source
from jaxlth.data import selection
from jaxlth.data.subsets import check_fractions, randomize_labels, subsample

__all__ = ["Dataset", "augment_batch", "default_config", "load_dataset", "normalize",
           "randomize_labels", "subsample"]


def default_config() -> ml_collections.ConfigDict:
    """The ``data`` block of an experiment config, with its defaults.

    Fields: ``name`` (mnist, fashion_mnist, cifar10, cifar100, mnist1d, synthetic), ``source``
    (auto, idx, tfds, cifar_pickle, mnist1d, synthetic), ``dir`` (a folder to search first, ""
    for none), ``tfds_data_dir`` ("" for TFDS's default), ``download`` (may TFDS download),
    ``subsample_fraction`` in (0, 1], ``random_labels_fraction`` in [0, 1], ``subset_seed``,
    the ``synthetic_*`` sizes, image shape ``(H, W, C)``, number of classes and seed, and
    ``subset``: a training subset chosen by per-example scores (:mod:`jaxlth.data.selection`),
    applied after the random subsample and label noise.
    """
    return ml_collections.ConfigDict({
        "name": "fashion_mnist",
        "source": "auto",
        "dir": "",
        "tfds_data_dir": "",
        "download": False,
        "subsample_fraction": 1.0,
        "random_labels_fraction": 0.0,
        "subset_seed": 0,
        "synthetic_train_size": 512,
        "synthetic_test_size": 256,
        "synthetic_image_shape": (28, 28, 1),
        "synthetic_num_classes": 10,
        "synthetic_seed": 0,
        "subset": selection.default_config(),
    })


def load_dataset(data_cfg) -> Dataset:
    """Loads the dataset ``data_cfg`` describes, subset and label noise applied.

    Args:
      data_cfg: a ConfigDict like ``default_config()``; missing fields take their defaults.

    Returns:
      A ``Dataset``: images uint8 ``(N, H, W, C)`` (float32 ``(N, 40, 1)`` for mnist1d),
      labels int32 ``(N,)``.

    Raises:
      UserError: unknown names, bad fractions, or data that cannot be found or read.
    """
    fraction = data_cfg.get("subsample_fraction", 1.0)
    noise = data_cfg.get("random_labels_fraction", 0.0)
    check_fractions(fraction, noise)  # before the (possibly slow) load
    seed = int(data_cfg.get("subset_seed", 0))
    dataset = subsample(load_source(data_cfg), fraction, seed)
    return randomize_labels(dataset, noise, seed)
