"""TensorFlow Datasets: whole train and test splits as numpy arrays.

``tensorflow_datasets`` is imported inside the functions only: it is slow to import, and the
IDX, CIFAR-pickle, MNIST-1D and synthetic paths must not pay for it.

Two readers, chosen by ``backend``:

* ``"tf"``: ``tfds.load(..., as_supervised=True, batch_size=...)`` + ``tfds.as_numpy``. Needs
  TensorFlow (as in Colab) and reads datasets prepared as TFRecord files (TFDS's default).
* ``"data_source"``: ``tfds.data_source`` (random access, no TensorFlow needed) for datasets
  prepared as ArrayRecord files, which ``tfds.load`` cannot read.

``"auto"`` picks by the file format of the prepared dataset; for one not prepared yet (to be
downloaded) it uses ``"tf"`` when TensorFlow is installed, else ``"data_source"``. Preparing
a dataset with images needs TensorFlow in TFDS 4.9 (it encodes the images as PNG).
"""

from __future__ import annotations

import importlib.util

import numpy as np

from jaxlth.errors import UserError

TFDS_NAMES = {"mnist": "mnist", "fashion_mnist": "fashion_mnist", "cifar10": "cifar10", "cifar100": "cifar100"}
_CHUNK = 4096  # examples per read (the batch size of tfds.load, the keys per data-source read)
_HOW_TO = (
    "install TensorFlow next to TFDS (`pip install tensorflow tensorflow-datasets`) and "
    "set data.download=True once to prepare it"
)


def tfds_installed() -> bool:
    """True when the ``tensorflow_datasets`` package can be imported (checked without importing)."""
    return importlib.util.find_spec("tensorflow_datasets") is not None


def tensorflow_installed() -> bool:
    """True when TensorFlow can be imported (checked without importing)."""
    return importlib.util.find_spec("tensorflow") is not None


def prepared(name: str, data_dir: str = "") -> tuple[bool, str]:
    """Whether TFDS has ``name`` prepared, and the folder it looked in.

    Args:
      name: a jaxlth dataset name (a key of ``TFDS_NAMES``) or any registered TFDS name.
      data_dir: the TFDS data dir; "" means TFDS's default ($TFDS_DATA_DIR or
        ~/tensorflow_datasets).
    """
    import tensorflow_datasets as tfds

    builder = tfds.builder(TFDS_NAMES.get(name, name), data_dir=data_dir or None)
    # Preparing writes dataset_info.json last; ``builder.is_prepared()`` checks the same but
    # logs a warning for every folder it finds missing.
    return (builder.data_path / "dataset_info.json").exists(), str(builder.data_dir)


def _read_tf(tfds_name: str, data_dir: str, download: bool):
    import tensorflow_datasets as tfds

    splits = tfds.load(
        tfds_name,
        split=["train", "test"],
        data_dir=data_dir or None,
        download=download,
        as_supervised=True,
        batch_size=_CHUNK,
    )
    arrays = []
    for ds in splits:
        batches = list(tfds.as_numpy(ds))
        arrays += [np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])]
    return arrays


def _read_data_source(tfds_name: str, data_dir: str, download: bool):
    import tensorflow_datasets as tfds

    splits = tfds.data_source(tfds_name, split=["train", "test"], data_dir=data_dir or None, download=download)
    arrays = []
    for ds in splits:
        n = len(ds)
        if hasattr(ds, "__getitems__"):  # batched reads: ~2x faster on ArrayRecord files
            records = []
            for start in range(0, n, _CHUNK):
                records += ds.__getitems__(range(start, min(start + _CHUNK, n)))
        else:  # the minimal data-source protocol: __len__ and __getitem__
            records = [ds[i] for i in range(n)]
        arrays += [np.stack([np.asarray(r["image"]) for r in records]), np.asarray([r["label"] for r in records])]
    return arrays


def _choose_backend(tfds_name: str, data_dir: str) -> str:
    """``"data_source"`` for ArrayRecord files (``tfds.load`` cannot read them), ``"tf"`` for
    TFRecord files; for a dataset not prepared yet, ``"tf"`` when TensorFlow is installed."""
    import tensorflow_datasets as tfds

    builder = tfds.builder(tfds_name, data_dir=data_dir or None)
    if not (builder.data_path / "dataset_info.json").exists():
        return "tf" if tensorflow_installed() else "data_source"
    file_format = getattr(builder.info.file_format, "value", builder.info.file_format)
    return "data_source" if file_format == "array_record" else "tf"


def _load_error(tfds_name: str, data_dir: str, download: bool, backend: str, error: Exception) -> UserError:
    """One sentence saying why TFDS failed and how to get the data."""
    try:
        ready, where = prepared(tfds_name, data_dir)
    except Exception:  # noqa: BLE001 - the original error is the one to report
        ready, where = True, data_dir or "the default TFDS data dir"
    if not ready and not download:
        return UserError(
            f"TFDS has no prepared {tfds_name!r} in {where} and data.download is False; to get it, {_HOW_TO}."
        )
    hint = (
        " (without TensorFlow, TFDS reads only datasets prepared as ArrayRecord files)"
        if backend == "data_source"
        else ""
    )
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return UserError(
        f"TFDS could not load {tfds_name!r} from {where}{hint} "
        f"({type(error).__name__}: {first_line.rstrip(':.')}); to get it, "
        f"{_HOW_TO}."
    )


def read_splits(
    tfds_name: str, data_dir: str = "", download: bool = False, backend: str = "auto"
) -> tuple[np.ndarray, ...]:
    """Reads the train and test splits of the TFDS dataset ``tfds_name``, whole.

    The dataset must have ``image`` and ``label`` features. Errors from TFDS come back as
    one ``UserError`` saying how to get the data.

    Returns:
      ``(train_images, train_labels, test_images, test_labels)``: images uint8
      ``(N, H, W, C)`` (a channel axis is added to ``(N, H, W)`` images), labels int32 ``(N,)``.
    """
    if not tfds_installed():
        raise UserError(
            "data.source=tfds needs tensorflow-datasets, which is not installed; "
            "run `pip install tensorflow tensorflow-datasets`."
        )
    if backend not in ("auto", "tf", "data_source"):
        raise ValueError(f"unknown TFDS backend {backend!r}")
    try:
        if backend == "auto":
            backend = _choose_backend(tfds_name, data_dir)
        if backend == "tf" and not tensorflow_installed():
            raise UserError(
                f"The TFDS dataset {tfds_name!r} in "
                f"{data_dir or 'the default TFDS data dir'} is stored as TFRecord "
                "files, which only TensorFlow reads; run `pip install tensorflow`."
            )
        reader = _read_tf if backend == "tf" else _read_data_source
        train_x, train_y, test_x, test_y = reader(tfds_name, data_dir, download)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - TFDS raises many types; report them as one
        raise _load_error(tfds_name, data_dir, download, backend, e) from e
    if train_x.ndim == 3:  # a grayscale feature stored without its channel axis
        train_x, test_x = train_x[..., None], test_x[..., None]
    return (train_x.astype(np.uint8), train_y.astype(np.int32), test_x.astype(np.uint8), test_y.astype(np.int32))


def load_tfds(
    name: str, data_dir: str = "", download: bool = False, backend: str = "auto"
) -> tuple[tuple[np.ndarray, ...], str]:
    """Loads both splits of the jaxlth dataset ``name`` through TFDS.

    Args:
      name: a jaxlth dataset name (a key of ``TFDS_NAMES``).
      data_dir: the TFDS data dir, "" for TFDS's default.
      download: let TFDS download and prepare the dataset when it is missing.
      backend: ``"auto"``, ``"tf"`` or ``"data_source"`` (see the module docstring).

    Returns:
      ``((train_images, train_labels, test_images, test_labels), "tfds")``, as ``read_splits``.
    """
    if name not in TFDS_NAMES:
        raise UserError(f"TFDS has no dataset for data.name={name!r}; TFDS serves {', '.join(sorted(TFDS_NAMES))}.")
    return read_splits(TFDS_NAMES[name], data_dir, download, backend), "tfds"
