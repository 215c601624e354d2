"""Datasets as whole numpy arrays, plus seeded subsets, label noise and on-device augmentation.

``load_dataset(config.data)`` is the one entry point: it finds and reads the data (see
``jaxlth.data.sources``), poses its task (``classes``, ``task``: :mod:`jaxlth.data.tasks`), then
applies ``subsample_fraction`` and ``random_labels_fraction`` to the training split.
"""

from __future__ import annotations

import ml_collections

from jaxlth.data import distilled, input_shapes, selection, tasks
from jaxlth.data import text as text_lib
from jaxlth.data.augment import KINDS as AUGMENTATIONS
from jaxlth.data.augment import augment_batch, normalize
from jaxlth.data.dataset import Dataset, padded
from jaxlth.data.sampling import check_fractions, randomize_labels, subsample
from jaxlth.data.sources import STREAMING_ONLY, load_source
from jaxlth.errors import UserError

__all__ = [
    "Dataset",
    "augment_batch",
    "check",
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
    ``augmentation``: ``auto`` (the dataset's own: CIFAR's crop and flip, none for the others), ``none`` or
    ``cifar``. ``name="distilled"``: the synthetic set ``distilled_replicate`` of the distill run in
    ``distilled_workdir`` (:mod:`jaxlth.data.distilled`).
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
            "distilled_workdir": "",
            "distilled_replicate": 0,
            "augmentation": "auto",
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


def check(data_cfg, streamed: bool = False) -> None:
    """Raises UserError (one sentence) for ``data`` fields that cannot work on the dataset they name;
    reads no data (for distilled data: the distill run's ``config.json``). ``streamed``: the dataset is
    streamed while training (:func:`streams`)."""
    if data_cfg.get("name") == distilled.NAME:
        distilled.check(data_cfg)
    tasks.check(data_cfg, streamed)
    kind = data_cfg.get("augmentation", "auto")
    if kind not in ("auto", *AUGMENTATIONS):
        raise UserError(f"unknown data.augmentation {kind!r}; choose one of auto, {', '.join(AUGMENTATIONS)}")
    if kind != "auto" and streamed:
        raise UserError("a streamed dataset augments as its info file says; leave data.augmentation at 'auto'")
    if kind == "cifar" and len(input_shapes.example(data_cfg)[0]) != 3:
        raise UserError(
            f"data.augmentation='cifar' crops and flips images (H, W, C), and {data_cfg.get('name')} has none"
        )


def load_dataset(data_cfg) -> Dataset:
    """Loads the dataset ``data_cfg`` describes: padded, its classes kept and its task posed
    (:func:`jaxlth.data.tasks.apply`), then the random subset and label noise applied.

    Args:
      data_cfg: a ConfigDict like ``default_config()``; missing fields take their defaults.

    Returns:
      A ``Dataset``: images uint8 ``(N, H, W, C)`` (float32 ``(N, 40, 1)`` for mnist1d; int32 tokens
      ``(N, 2, T)`` for text; float32 for a distilled set), labels int32 ``(N,)`` (float32 for stsb;
      float32 soft targets ``(N, K)`` for a distilled set with learned labels).

    Raises:
      UserError: unknown names, bad fractions, or data that cannot be found or read.
    """
    fraction = data_cfg.get("subsample_fraction", 1.0)
    noise = data_cfg.get("random_labels_fraction", 0.0)
    check_fractions(fraction, noise)  # before the (possibly slow) load
    if data_cfg.get("name") in text_lib.NAMES:
        text_lib.check(data_cfg)
    check(data_cfg, streams(data_cfg))
    seed = int(data_cfg.get("subset_seed", 0))
    size = data_cfg.get("pad_to", 0)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise UserError(f"data.pad_to must be 0 or an image size in pixels, got {size!r}")
    if data_cfg.get("name") == distilled.NAME:  # the real dataset read as the distill run read it
        posed = distilled.load(data_cfg, load_dataset)
    else:
        source = load_source(data_cfg)
        try:
            source = padded(source, size)
        except ValueError as e:
            raise UserError(f"data.pad_to: {e}") from None
        posed = tasks.apply(source, data_cfg)
    dataset = randomize_labels(subsample(posed, fraction, seed), noise, seed)
    kind = data_cfg.get("augmentation", "auto")
    return dataset if kind == "auto" else dataset.replace(augmentation=kind)
