"""Datasets as whole numpy arrays, plus seeded subsets, label noise and on-device augmentation.

``load_dataset(config.data)`` is the one entry point: it finds and reads the data (see
``jaxlth.data.sources``), poses its task (``classes``, ``task``: :mod:`jaxlth.data.tasks`), then
applies ``subsample_fraction`` and ``random_labels_fraction`` to the training split.
"""

from __future__ import annotations

import ml_collections

from jaxlth.data import selection, tasks
from jaxlth.data import text as text_lib
from jaxlth.data.augment import augment_batch, normalize
from jaxlth.data.dataset import Dataset, padded
from jaxlth.data.sampling import check_fractions, randomize_labels, subsample
from jaxlth.data.sources import STREAMING_ONLY, load_source
from jaxlth.errors import UserError

__all__ = [
    "Dataset",
    "augment_batch",
    "default_config",
    "load_dataset",
    "normalize",
    "open_streamed",
    "randomize_labels",
    "streams",
    "subsample",
]


def default_config() -> ml_collections.ConfigDict:
    """The ``data`` block of an experiment config, with its defaults.

    Fields: ``name`` (mnist, fashion_mnist, cifar10, cifar100, mnist1d, synthetic; text:
    the GLUE tasks and ``text``, :mod:`jaxlth.data.text`), ``source``
    (auto, idx, tfds, cifar_pickle, mnist1d, synthetic), ``dir`` (a folder to search first, ""
    for none), ``tfds_data_dir`` ("" for TFDS's default), ``download`` (may TFDS download),
    ``subsample_fraction`` in (0, 1], ``random_labels_fraction`` in [0, 1], ``subset_seed``,
    the ``synthetic_*`` sizes, image shape ``(H, W, C)``, number of classes and seed, and
    ``pad_to`` (images zero-padded to this square size; 0 keeps them), ``classes`` (the class ids
    kept, relabelled 0..k-1; ``()``: all) and ``task`` (``classes`` or ``rotation``:
    :mod:`jaxlth.data.tasks`), and ``subset``: a training subset chosen by per-example scores
    (:mod:`jaxlth.data.selection`), applied after the random subsample and label noise. Text only:
    ``vocab`` (a ``vocab.txt`` or its folder), ``lowercase`` (auto, True, False), ``max_length`` (tokens),
    ``mlm_probability``, ``corpus`` (a ``datasets`` corpus ``name:config`` for ``text``) and ``text_cache``
    (where tokenized arrays are kept; "": ``$JAXLTH_CACHE_DIR/text`` or ``~/.cache/jaxlth/text``).
    """
    return ml_collections.ConfigDict(
        {
            "name": "fashion_mnist",
            "source": "auto",
            "dir": "",
            "tfds_data_dir": "",
            "download": False,
            "subsample_fraction": 1.0,
            "random_labels_fraction": 0.0,
            "subset_seed": 0,
            "pad_to": 0,
            "classes": (),
            "task": "classes",
            "synthetic_train_size": 512,
            "synthetic_test_size": 256,
            "synthetic_image_shape": (28, 28, 1),
            "synthetic_num_classes": 10,
            "synthetic_seed": 0,
            "subset": selection.default_config(),
            "image_size": 224,
            "stream_threads": 8,
            "stream_chunk_steps": 8,
            "vocab": "",
            "lowercase": "auto",
            "max_length": 128,
            "mlm_probability": 0.15,
            "corpus": "",
            "text_cache": "",
        }
    )


def streams(data_cfg) -> bool:
    """Whether the dataset is streamed from ArrayRecord files while training (``data.source=array_record``,
    or a dataset too large for the device such as ``imagenet2012``) instead of held on the device."""
    return data_cfg.get("source", "auto") == "array_record" or data_cfg.get("name") in STREAMING_ONLY


def open_streamed(data_cfg):
    """The :class:`~jaxlth.data.streaming.StreamedDataset` of ``data_cfg`` (``data.dir`` or
    ``$JAXLTH_DATA_DIR/<name>``), its images cropped to ``data.image_size``."""
    from jaxlth.data import streaming  # (grain and PIL only for streamed data)

    for field, plain in (("subsample_fraction", 1.0), ("random_labels_fraction", 0.0), ("pad_to", 0)):
        if data_cfg.get(field, plain) != plain:
            raise UserError(
                f"data.{field} is not available for a streamed dataset ({data_cfg.name}); leave it at {plain}"
            )
    tasks.check(data_cfg, streamed=True)
    size = data_cfg.get("image_size", 224)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise UserError(f"data.image_size must be a positive number of pixels, got {size!r}")
    return streaming.open_dataset(streaming.folder_of(data_cfg), data_cfg.name, size)


def load_dataset(data_cfg) -> Dataset:
    """Loads the dataset ``data_cfg`` describes: padded, its classes kept and its task posed
    (:func:`jaxlth.data.tasks.apply`), then the random subset and label noise applied.

    Args:
      data_cfg: a ConfigDict like ``default_config()``; missing fields take their defaults.

    Returns:
      A ``Dataset``: images uint8 ``(N, H, W, C)`` (float32 ``(N, 40, 1)`` for mnist1d; int32 tokens
      ``(N, 2, T)`` for text), labels int32 ``(N,)`` (float32 for stsb).

    Raises:
      UserError: unknown names, bad fractions, or data that cannot be found or read.
    """
    fraction = data_cfg.get("subsample_fraction", 1.0)
    noise = data_cfg.get("random_labels_fraction", 0.0)
    check_fractions(fraction, noise)  # before the (possibly slow) load
    if data_cfg.get("name") in text_lib.NAMES:
        text_lib.check(data_cfg)
    tasks.check(data_cfg, streams(data_cfg))
    seed = int(data_cfg.get("subset_seed", 0))
    size = data_cfg.get("pad_to", 0)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise UserError(f"data.pad_to must be 0 or an image size in pixels, got {size!r}")
    source = load_source(data_cfg)
    try:
        source = padded(source, size)
    except ValueError as e:
        raise UserError(f"data.pad_to: {e}") from None
    dataset = subsample(tasks.apply(source, data_cfg), fraction, seed)
    return randomize_labels(dataset, noise, seed)
