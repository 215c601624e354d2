"""CIFAR-10/100 in the "python version" layout from the dataset authors' page.

``cifar-10-batches-py/`` holds ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``;
``cifar-100-python/`` holds ``train`` and ``test``. Each file is a pickled dict with ``b"data"``,
a ``(N, 3072)`` uint8 array of 32x32 images stored channel-major (1024 red, 1024 green, 1024
blue values, each row-major), and ``b"labels"`` (CIFAR-10) or ``b"fine_labels"`` (CIFAR-100).
The files are read with a restricted unpickler that builds only dicts, lists, bytes, str, numbers
and numeric numpy arrays: a file asking for anything else is refused before it can run code.
"""

from __future__ import annotations

import os
import pickle

import numpy as np

from jaxlth.errors import UserError

# name -> (folder name, train files, test files, label key)
LAYOUTS = {
    "cifar10": ("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), b"labels"),
    "cifar100": ("cifar-100-python", ("train",), ("test",), b"fine_labels"),
}
_CLASSES = {b"labels": 10, b"fine_labels": 100}


class _Refused(pickle.UnpicklingError):
    """The file asks for something a CIFAR batch never holds (the message says what)."""


def _printable(text: str, limit: int = 200) -> str:
    """``text`` fit for a one-line message: a file's own text may hold newlines or be huge."""
    return text if text.isprintable() and len(text) <= limit else repr(text[:limit])


def _numeric_dtype(spec, align=False, copy=False):  # noqa: ARG001 (pickled as dtype(spec, align, copy))
    """``numpy.dtype``, limited to numpy's shared builtin numeric dtypes, whose pickled state
    numpy ignores (``copy`` is not honoured), so a pickle cannot alter them."""
    dtype = (
        np.dtype(spec.decode("latin1") if isinstance(spec, bytes) else spec)
        if isinstance(spec, (str, bytes, np.dtype))
        else type(spec).__name__
    )
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc" or not dtype.isbuiltin:
        raise _Refused(f"it holds a numpy array of {_printable(str(dtype))}")
    return dtype


_NDARRAY = object()  # what numpy.ndarray resolves to: never called, only _reconstruct's first argument


def _reconstruct(subtype, shape, dtype):
    """``numpy._core.multiarray._reconstruct``: an empty array that the pickle then fills."""
    if subtype is not _NDARRAY:
        raise _Refused(f"it asks to rebuild a {type(subtype).__name__} as a numpy array")
    return np.empty(shape, _numeric_dtype(dtype))


def _frombuffer(buf, dtype, shape, order="C", axis_order=None):
    """``numpy._core.numeric._frombuffer`` (arrays under protocol 5) with the dtype checked."""
    array = np.frombuffer(buf, dtype=_numeric_dtype(dtype))
    if order == "K" and axis_order is not None:
        return array.reshape(shape, order="C").transpose(axis_order)
    return array.reshape(shape, order=order)


def _latin1(text, encoding="latin1"):
    """``_codecs.encode``, as Python 3 pickles bytes under protocols 0-2: latin-1 only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Refused(f"it asks to call _codecs.encode with encoding {encoding!r:.60}")
    return text.encode("latin1")


# Every global a CIFAR batch (numpy 1 or 2, Python 2 or 3, protocols 0-5) needs, and nothing else.
_ALLOWED = {
    **{(f"numpy.{core}.multiarray", "_reconstruct"): _reconstruct for core in ("core", "_core")},
    **{(f"numpy.{core}.numeric", "_frombuffer"): _frombuffer for core in ("core", "_core")},
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _numeric_dtype,
    ("_codecs", "encode"): _latin1,
    **{(builtins, "bytes"): lambda: b"" for builtins in ("builtins", "__builtin__")},  # b"", protocols 0-2
}


class _CifarUnpickler(pickle.Unpickler):
    """Resolves only the globals in ``_ALLOWED``, to checking stand-ins; refuses any other."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise _Refused(f"it asks to load {_printable(f'{module}.{name}')}")
        return _ALLOWED[(module, name)]


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


def _labels(labels, classes: int, n: int) -> np.ndarray | None:
    """``labels`` as int32 ``(n,)``, or None unless they are ``n`` ints in ``[0, classes)``."""
    if isinstance(labels, list) and all(type(v) is int and 0 <= v < classes for v in labels):
        labels = np.array(labels, dtype=np.int32)
    elif not (
        isinstance(labels, np.ndarray)
        and labels.dtype.kind in "iu"
        and labels.ndim == 1
        and (labels.size == 0 or 0 <= labels.min() <= labels.max() < classes)
    ):
        return None
    return labels.astype(np.int32) if labels.shape == (n,) else None


def _read_batch(path: str, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch -> images uint8 ``(N, 32, 32, 3)``, labels int32 ``(N,)``."""
    try:
        with open(path, "rb") as f:
            batch = _CifarUnpickler(f, encoding="bytes").load()
    except _Refused as e:
        raise UserError(
            f"the file {path} is not a CIFAR batch: {e}, which a CIFAR batch never holds; "
            "delete it or point data.dir elsewhere"
        ) from None
    except Exception as e:  # noqa: BLE001 (whatever a damaged pickle raises: one sentence)
        raise UserError(
            f"Could not read the CIFAR batch {path} ({type(e).__name__}: {_printable(str(e))}); the "
            "file is corrupt or from another dataset, get it again."
        ) from None
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        raise UserError(
            f"the file {path} holds a {type(batch).__name__} without b'data' or {label_key!r}, not "
            "a CIFAR batch; the file is corrupt or from another dataset."
        )
    data = batch[b"data"]
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072):
        what = (
            f"a {data.dtype} array of shape {data.shape}"
            if isinstance(data, np.ndarray)
            else f"of type {type(data).__name__}"
        )
        raise UserError(
            f"the b'data' of {path} is {what}, not a uint8 (N, 3072) array; the file is "
            "corrupt or from another dataset."
        )
    labels = _labels(batch[label_key], _CLASSES[label_key], data.shape[0])
    if labels is None:
        raise UserError(
            f"the {label_key!r} of {path} are not {data.shape[0]} integers in "
            f"[0, {_CLASSES[label_key]}), one per image; the file is corrupt or from another dataset."
        )
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def load_cifar_dir(directory: str, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
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
