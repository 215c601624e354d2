"""Reading and writing ``.safetensors`` files as flat ``{key: numpy array}`` dicts.

:func:`read_safetensors` (in :mod:`jaxlth.arrays_file`, which artifacts share) gives each tensor as a
read-only view of the memory-mapped file: nothing is copied until :func:`jaxlth.weights.to_network`
copies each tensor once, transposing it into Flax's layout on the way (the library's own numpy loader
would copy every tensor once more first, which made loading a ResNet-50 take 2.3-2.8x the time of
reading the file's bytes instead of 1.4-1.8x).
"""

from __future__ import annotations

import os

import numpy as np
import safetensors.numpy

from jaxlth.arrays_file import DTYPES, read_safetensors
from jaxlth.errors import UserError, storage_error

__all__ = ["DTYPES", "read_safetensors", "write_safetensors"]


def write_safetensors(path: str, flat: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> None:
    """Writes ``flat`` (``{key: array}``; any layout, written C-ordered) to ``path`` as a safetensors
    file, with the optional string ``metadata`` in its header. The file is written beside ``path``
    and renamed onto it: arrays read from an older file of that name stay valid."""
    tensors = {key: np.ascontiguousarray(value) for key, value in flat.items()}
    partial = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.{os.getpid()}.partial")
    try:
        try:
            safetensors.numpy.save_file(tensors, partial, metadata=metadata)
            os.replace(partial, path)
        finally:
            if os.path.exists(partial):
                os.remove(partial)
    except Exception as e:  # OSError, or the library's error for the same causes
        raise storage_error(path, e) or UserError(f"cannot write {path}: {e}") from None
