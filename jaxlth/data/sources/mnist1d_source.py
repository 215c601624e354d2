"""MNIST-1D (Greydanus & Steinbach): 1-D signals of length 40, 10 classes, 4000/1000 examples.

The arrays are generated locally with the ``mnist1d`` package's default arguments (its own
fixed seed, 42), then cached as an ``.npz`` so they are generated once per machine. The
generator seeds Python's and NumPy's global RNGs; their state is restored afterwards.
"""

from __future__ import annotations

import os
import random
import tempfile

import numpy as np

SEED = 42  # the mnist1d package's default seed, written down so the cache name is explicit
CACHE_NAME = f"mnist1d_default_seed{SEED}.npz"
_KEYS = ("train_images", "train_labels", "test_images", "test_labels")


def cache_dirs(data_dir: str = "") -> list[str]:
    """Where the cache is looked for, in order: ``data_dir``, $JAXLTH_DATA_DIR, ~/.cache/jaxlth."""
    dirs = [d for d in (data_dir, os.environ.get("JAXLTH_DATA_DIR", "")) if d]
    return dirs + [os.path.join(os.path.expanduser("~"), ".cache", "jaxlth")]


def generate() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Generates the dataset; images float32 ``(N, 40, 1)``, labels int32 ``(N,)``."""
    from mnist1d.data import get_dataset_args, make_dataset  # slow import (matplotlib)

    args = get_dataset_args()
    args.seed = SEED
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return (
        data["x"].astype(np.float32)[..., None],
        data["y"].astype(np.int32),
        data["x_test"].astype(np.float32)[..., None],
        data["y_test"].astype(np.int32),
    )


def _read_cache(path: str):
    try:
        with np.load(path) as f:
            return tuple(f[k] for k in _KEYS)
    except (OSError, KeyError, ValueError):
        return None  # unreadable or partial: regenerate


def _write_cache(directory: str, arrays) -> str | None:
    """Writes the cache atomically (temporary file + rename); returns its path or None."""
    tmp = None
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **dict(zip(_KEYS, arrays)))
        path = os.path.join(directory, CACHE_NAME)
        os.replace(tmp, path)
        return path
    except OSError:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
        return None


def load_mnist1d(data_dir: str = "") -> tuple[tuple[np.ndarray, ...], str]:
    """The four arrays from the first readable cache, else generated (and cached).

    Returns:
      ``((train_images, train_labels, test_images, test_labels), note)``: images float32
      ``(N, 40, 1)``, labels int32; ``note`` names the cache file used or written.
    """
    dirs = cache_dirs(data_dir)
    for directory in dirs:
        path = os.path.join(directory, CACHE_NAME)
        if os.path.isfile(path):
            arrays = _read_cache(path)
            if arrays is not None:
                return arrays, path
    arrays = generate()
    for directory in dirs:
        path = _write_cache(directory, arrays)
        if path is not None:
            return arrays, path
    return arrays, "mnist1d (generated, not cached: no writable cache folder)"
