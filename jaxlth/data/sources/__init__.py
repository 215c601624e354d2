"""Finding a dataset on disk (or in TFDS) and reading it into a ``Dataset``.

``source="auto"`` resolves, per dataset:

* mnist, fashion_mnist, cifar10, cifar100: IDX files / a ``cifar-10-batches-py`` or ``cifar-100-python``
  folder in the search folders (:mod:`.places`), else a TFDS dataset that is prepared (or, with
  ``download=True`` and TensorFlow installed, downloaded by TFDS), else (``download=True``) the original
  IDX files or CIFAR python-version tarball, downloaded, checked against the published MD5s and (CIFAR)
  safely extracted (``download.py``: no TensorFlow needed, as on Colab's TPU runtimes), else a
  ``UserError`` naming every place looked and how to get the data.
* mnist1d (the ``mnist1d`` package, cached), synthetic: generated; GLUE and ``text``: :mod:`jaxlth.data.text`;
  ``distilled`` (a distill run's synthetic set): :mod:`jaxlth.data.distilled`.
"""

from __future__ import annotations

import numpy as np

from jaxlth.data import text as text_lib
from jaxlth.data.dataset import Dataset
from jaxlth.data.sources import cifar_pickle, idx, mnist1d_source, places, synthetic, tfds_source
from jaxlth.data.sources import download as download_lib
from jaxlth.errors import UserError

IMAGE_NAMES = ("mnist", "fashion_mnist", "cifar10", "cifar100", "mnist1d", "synthetic")
DISTILLED = "distilled"  # a distill run's synthetic set: jaxlth.data.distilled, not a source
NAMES = IMAGE_NAMES + (DISTILLED,) + text_lib.NAMES
SOURCES = ("auto", "idx", "tfds", "cifar_pickle", "mnist1d", "synthetic", "array_record")
# Which explicit sources can serve which dataset.
_SERVES = {
    "idx": ("mnist", "fashion_mnist"),
    "tfds": tuple(tfds_source.TFDS_NAMES),
    "cifar_pickle": ("cifar10", "cifar100"),
    "mnist1d": ("mnist1d",),
    "synthetic": ("synthetic",),
}
TITLES = {
    "mnist": "MNIST",
    "fashion_mnist": "Fashion-MNIST",
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "mnist1d": "MNIST-1D",
    "synthetic": "synthetic data",
    **text_lib.TITLES,
}

# Per-channel mean and std of the training images scaled to [0, 1] (population std).
STATS = {
    # The training-set values used by the PyTorch MNIST example (pytorch/examples,
    # mnist/main.py): mean 0.1307, std 0.3081 over the 60,000 training images.
    "mnist": ((0.1307,), (0.3081,)),
    # Computed over the 60,000 training images of the Zalando release (as shipped by
    # Debian's dataset-fashion-mnist): mean 0.28604, std 0.35302; the widely quoted values.
    "fashion_mnist": ((0.2860,), (0.3530,)),
    # Computed over the 50,000 CIFAR-10 training images per RGB channel: mean
    # (0.49140, 0.48216, 0.44653), std (0.24703, 0.24349, 0.26159). (The often-copied std
    # (0.2023, 0.1994, 0.2010) is an average of per-image stds, not the dataset's std.)
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    # Computed the same way over the 50,000 CIFAR-100 training images: mean
    # (0.50707, 0.48655, 0.44092), std (0.26733, 0.25644, 0.27615).
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    # mnist1d and synthetic: computed from their own training split when loaded.
}


# Datasets too large for the device: always streamed (jaxlth.data.streaming), never loaded whole.
STREAMING_ONLY = ("imagenet2012", "imagenet")


def _not_found(name: str, data_dir: str, tfds_note: str) -> UserError:
    """The one-sentence error for ``auto`` (or an explicit local source) finding nothing."""
    if name in ("mnist", "fashion_mnist"):
        what = "IDX files (" + ", ".join(f + "[.gz]" for f in idx.FILE_NAMES) + ")"
        fetch = "`apt-get install dataset-fashion-mnist` on Debian/Ubuntu, or " if name == "fashion_mnist" else ""
        put = (
            "set data.download=True to download the original files (checksums verified), or put the four IDX "
            "files in $JAXLTH_DATA_DIR (or data.dir)"
        )
    else:
        what = f"a {cifar_pickle.folder_name(name)} folder"
        fetch = ""
        put = (
            "set data.download=True to download the python version (checksum verified), or extract it from "
            "https://www.cs.toronto.edu/~kriz/cifar.html into $JAXLTH_DATA_DIR (or data.dir)"
        )
    return UserError(
        f"Could not find {TITLES[name]}: looked for {what} in {places.describe(name, data_dir)}"
        f"{tfds_note}; get it with {fetch}`pip install tensorflow tensorflow-datasets` and "
        f"data.source=tfds data.download=True, or {put}."
    )


def _tfds_status(name: str, tfds_data_dir: str, download: bool) -> tuple[bool, str]:
    """Whether ``auto`` should use TFDS, and a note on what was checked for the error."""
    if not tfds_source.tfds_installed():
        return False, ", and in TFDS (tensorflow-datasets is not installed)"
    if download:
        return True, ""
    try:
        ready, where = tfds_source.prepared(name, tfds_data_dir)
    except Exception as e:  # noqa: BLE001 - a broken TFDS install counts as "not there"
        return False, f", and in TFDS (which failed: {type(e).__name__}: {e})"
    note = f", and for a prepared TFDS dataset {tfds_source.TFDS_NAMES[name]!r} in {where}"
    return ready, note


def resolve(
    name: str, source: str = "auto", data_dir: str = "", tfds_data_dir: str = "", download: bool = False
) -> tuple[str, str]:
    """Decides where ``name`` is read from.

    Returns:
      ``(source, folder)``: source is one of ``SOURCES`` except ``"auto"`` (or ``"text"`` for the text
      datasets); folder is the IDX/CIFAR folder for local sources and "" otherwise.

    Raises:
      UserError: unknown name or source, a source that cannot serve the dataset, or (for
        ``auto``, ``idx`` and ``cifar_pickle``) no data found.
    """
    if name in STREAMING_ONLY or source == "array_record":
        raise UserError(
            f"data.name={name!r} is streamed from ArrayRecord files while training; this needs the whole dataset "
            f"in memory, which only {', '.join(NAMES)} can be"
        )
    if name not in NAMES:
        raise UserError(f"Unknown data.name={name!r}; choose one of {', '.join(NAMES)}.")
    if name == DISTILLED:
        raise UserError("data.name='distilled' is another run's output, read by jaxlth.data.load_dataset, not a source")
    if source not in SOURCES:
        raise UserError(f"Unknown data.source={source!r}; choose one of {', '.join(SOURCES)}.")
    if name in text_lib.NAMES:
        if source != "auto":
            raise UserError(f"data.name={name!r} is text, read by jaxlth.data.text; leave data.source at 'auto'")
        return "text", ""
    if source != "auto" and name not in _SERVES[source]:
        raise UserError(
            f"data.source={source!r} cannot serve data.name={name!r}; it serves "
            f"{', '.join(_SERVES[source])} (or use data.source=auto)."
        )
    if name in ("mnist1d", "synthetic"):
        return name, ""
    if source == "tfds":
        return "tfds", ""
    local = places.find_local(name, data_dir)
    if local is not None:
        return ("idx" if name in ("mnist", "fashion_mnist") else "cifar_pickle"), local
    downloadable = download and name in download_lib.MD5  # idx/cifar_pickle: only for names they serve
    if source != "auto" and not downloadable:
        raise _not_found(name, data_dir, "")
    # TFDS downloads where it can prepare a dataset (TensorFlow installed); else download.py does
    use_tfds, note = _tfds_status(
        name, tfds_data_dir, download and (tfds_source.tensorflow_installed() or not downloadable)
    )
    if use_tfds and source == "auto":
        return "tfds", ""
    if downloadable:
        return download_lib.fetch(name, download_lib.cache_dir(name, data_dir))
    raise _not_found(name, data_dir, note)


def source_classes(data_cfg) -> int:
    """How many classes the dataset ``data_cfg.name`` has (before ``data.classes`` or ``data.task``)."""
    name = data_cfg.get("name", "fashion_mnist")
    return int(data_cfg.get("synthetic_num_classes", 10)) if name == "synthetic" else 100 if name == "cifar100" else 10


def _channel_stats(images: np.ndarray, pixel_scale: float) -> tuple[tuple, tuple]:
    """Per-channel mean and population std of ``images / pixel_scale`` (last axis = channels)."""
    x = images.reshape(-1, images.shape[-1]).astype(np.float64) / pixel_scale
    return tuple(float(m) for m in x.mean(0)), tuple(float(s) for s in x.std(0))


def load_source(data_cfg) -> Dataset:
    """Reads the dataset ``data_cfg`` names, whole, with no subsetting or label noise.

    Args:
      data_cfg: a ConfigDict (or any object with ``.get``) with the fields of
        ``jaxlth.data.default_config()``; missing fields take their defaults.
    """
    name = data_cfg.get("name", "fashion_mnist")
    data_dir = data_cfg.get("dir", "") or ""
    source, folder = resolve(
        name,
        data_cfg.get("source", "auto") or "auto",
        data_dir,
        data_cfg.get("tfds_data_dir", "") or "",
        bool(data_cfg.get("download", False)),
    )
    if source == "text":
        return text_lib.load_text(data_cfg)
    pixel_scale, note = 255.0, folder
    if source == "idx":
        arrays = idx.load_idx_dir(folder)
    elif source == "cifar_pickle":
        arrays = cifar_pickle.load_cifar_dir(folder, name)
    elif source == "tfds":
        arrays, note = tfds_source.load_tfds(
            name, data_cfg.get("tfds_data_dir", "") or "", bool(data_cfg.get("download", False))
        )
    elif source == "mnist1d":
        arrays, note = mnist1d_source.load_mnist1d(data_dir)
        pixel_scale = 1.0
    else:
        arrays = synthetic.make_synthetic(
            int(data_cfg.get("synthetic_train_size", 512)),
            int(data_cfg.get("synthetic_test_size", 256)),
            tuple(data_cfg.get("synthetic_image_shape", (28, 28, 1))),
            int(data_cfg.get("synthetic_num_classes", 10)),
            seed=int(data_cfg.get("synthetic_seed", 0)),
        )
        note = "synthetic (generated)"
    train_x, train_y, test_x, test_y = arrays
    if name in STATS:
        mean, std = STATS[name]
    else:
        mean, std = _channel_stats(train_x, pixel_scale)
    num_classes = source_classes(data_cfg)
    for split, labels in (("train", train_y), ("test", test_y)):
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise UserError(
                f"The {split} labels of {name} from {note} lie in "
                f"[{labels.min()}, {labels.max()}], outside [0, {num_classes}); "
                "the files are corrupt or from another dataset."
            )
    return Dataset(
        name=name,
        train_images=train_x,
        train_labels=train_y,
        test_images=test_x,
        test_labels=test_y,
        num_classes=num_classes,
        mean=mean,
        std=std,
        pixel_scale=pixel_scale,
        augmentation="cifar" if name in ("cifar10", "cifar100") else "none",
        source=note,
    )
