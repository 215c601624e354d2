"""CIFAR-10/100 in the "python version" layout from the dataset authors' page.

``cifar-10-batches-py/`` holds ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``;
``cifar-100-python/`` holds ``train`` and ``test``. Each file is a pickled dict with ``b"data"``,
a ``(N, 3072)`` uint8 array of 32x32 images stored channel-major (1024 red, 1024 green, 1024
blue values, each row-major), and ``b"labels"`` (CIFAR-10) or ``b"fine_labels"`` (CIFAR-100).
The files are pickles: only load folders you trust.
"""

from __future__ import annotations

import os
import pickle

import numpy as np

from jaxlth.errors import UserError

# name -> (folder name, train files, test files, label key)
LAYOUTS = {
    "cifar10": ("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)),
                ("test_batch",), b"labels"),
    "cifar100": ("cifar-100-python", ("train",), ("test",), b"fine_labels"),
}


def folder_name(name: str) -> str:
    """``"cifar10" -> "cifar-10-batches-py"``, ``"cifar100" -> "cifar-100-python"``."""
    return LAYOUTS[name][0]


def is_cifar_dir(directory: str, name: str) -> bool:
    """True when ``directory`` holds every batch file of ``name`` (cifar10 or cifar100)."""
    _, train, test, _ = LAYOUTS[name]
    return all(os.path.isfile(os.path.join(directory, f)) for f in train + test)


def find_cifar_dir(directory: str, name: str) -> str | None:
    """``directory`` itself or its ``cifar-10-batches-py``/``cifar-100-python`` child, or None."""
    for candidate in (os.path.join(directory, folder_name(name)), directory):
        if is_cifar_dir(candidate, name):
            return candidate
    return None


def _read_batch(path: str, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch -> images uint8 ``(N, 32, 32, 3)``, labels int32 ``(N,)``."""
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[label_key], dtype=np.int32)
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError) as e:
        raise UserError(f"Could not read the CIFAR batch {path} ({type(e).__name__}: {e}); the "
                        "file is corrupt or from another dataset, get it again.") from e
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != labels.shape[0]:
        raise UserError(f"{path} holds data of shape {data.shape} and {labels.shape[0]} labels, "
                        "expected (N, 3072) and N; the file is corrupt or from another dataset.")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def load_cifar_dir(directory: str, name: str
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Reads a CIFAR python-version folder.

    Args:
      directory: the ``cifar-10-batches-py`` or ``cifar-100-python`` folder itself.
      name: ``"cifar10"`` or ``"cifar100"`` (CIFAR-100 uses the 100 fine labels).

    Returns:
      ``(train_images, train_labels, test_images, test_labels)``: images uint8
      ``(N, 32, 32, 3)`` (height, width, RGB), labels int32 ``(N,)``.
    """
    _, train_files, test_files, label_key = LAYOUTS[name]
    arrays = []
    for files in (train_files, test_files):
        parts = [_read_batch(os.path.join(directory, f), label_key) for f in files]
        arrays += [np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])]
    return tuple(arrays)
