"""A tree of numpy arrays as one safetensors file: the format of a run's artifacts.

A safetensors file is an 8-byte little-endian header length, a JSON header naming each tensor's
dtype, shape and byte range, then the tensors' raw little-endian bytes. :func:`read_safetensors`
lets the ``safetensors`` library check the file, then gives each tensor as a read-only view of
the memory-mapped file (the library's own numpy loader copies every tensor once more first, and
knows no bfloat16). :func:`write_tree` names a tree's leaves by their paths and keeps the tree's
structure as JSON in the header's metadata, so :func:`read_tree` gives back what Orbax gives back
for the tree it saved: dicts, lists (for tuples too), ``None``, empty containers, 0-d arrays for
scalars. Local files and ``gs://`` go through :mod:`jaxlth.storage`.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from typing import Any

import ml_dtypes
import numpy as np
import safetensors
import safetensors.numpy

from jaxlth import storage
from jaxlth.errors import UserError

STRUCTURE_KEY = "jaxlth_tree"  # the metadata entry holding the tree's structure (:func:`flatten`)
DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "BF16": ml_dtypes.bfloat16,
    "I64": "<i8",
    "U64": "<u8",
    "I32": "<i4",
    "U32": "<u4",
    "I16": "<i2",
    "U16": "<u2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
}
SAFETENSORS_DTYPES = {np.dtype(d) for d in DTYPES.values()}


def header(path: str) -> tuple[dict, int]:
    """The JSON header of a safetensors file and where its data starts (unchecked: :func:`read_arrays` checks)."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(length)), 8 + length


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    """The tensors of the safetensors file ``path``, ``{key: array}`` in the file's dtypes and shapes:
    read-only views of the memory-mapped file (``np.array(view)`` copies one)."""
    return read_arrays(path)[0]


def read_arrays(path: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """:func:`read_safetensors`'s tensors and the header's string metadata."""
    if not os.path.exists(path):
        raise UserError(f"the checkpoint file {path} does not exist")
    if os.path.isdir(path):
        raise UserError(f"the checkpoint file {path} is a directory, not a .safetensors file")
    try:
        with safetensors.safe_open(path, framework="numpy") as f:  # checks the header and the byte ranges
            entries, start = header(path)
            metadata = entries.pop("__metadata__", None) or {}
            mapped = np.memmap(path, np.uint8, mode="r") if os.path.getsize(path) > start else None
            flat = {}
            for key, entry in entries.items():
                dtype = DTYPES.get(entry["dtype"])
                if dtype is None:  # a dtype numpy lacks a name for here: the library's copy
                    flat[key] = f.get_tensor(key)
                    continue
                begin, end = (start + offset for offset in entry["data_offsets"])
                data = mapped[begin:end] if end > begin else np.zeros(0, np.uint8)
                flat[key] = data.view(dtype).reshape(entry["shape"])
            return flat, metadata
    except Exception as e:  # the library raises its own error type, OSError, ValueError, ...
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise UserError(f"{path} cannot be read as a .safetensors file ({reason})") from None


def write_tree(file: str, tree: Any, metadata: dict[str, str] | None = None) -> None:
    """Writes the tree of arrays ``tree`` (numpy, or anything ``np.asarray`` takes) to ``file`` atomically
    (:func:`storage.write_bytes`: from process 0, fsynced and renamed into place whole); ``metadata``: more
    string entries for the header."""
    flat, structure = flatten(tree)
    entries = {**(metadata or {}), STRUCTURE_KEY: json.dumps(structure)}
    storage.write_bytes(file, safetensors.numpy.save(flat, metadata=entries))


def read_tree(file: str) -> Any:
    """The tree :func:`write_tree` wrote to ``file``, its arrays copied out of the file. Raises
    UserError for a file that cannot be read as one."""
    if not storage.is_local(file):  # through a local copy, read as a local file is
        with tempfile.TemporaryDirectory() as folder:
            local = os.path.join(folder, os.path.basename(file))
            with open(local, "wb") as f:
                f.write(storage.read_bytes(file))
            return read_tree(local)
    return tree_of(*read_arrays(file), file)


def tree_of(flat: dict[str, np.ndarray], metadata: dict[str, str], file: str) -> Any:
    """The tree of :func:`read_arrays`' answer for ``file`` (named in the error when it holds no structure)."""
    try:
        structure = json.loads(metadata[STRUCTURE_KEY])
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{file} holds no tree structure (not an artifact of jaxlth)") from None

    def build(node):
        if node is None:
            return None
        if isinstance(node, str):
            return np.array(flat[node])
        if "scalar" in node:
            return np.array(flat[node["scalar"]]).reshape(())
        if "dict" in node:
            return {k: build(v) for k, v in node["dict"].items()}
        return [build(x) for x in node["list"]]

    return build(structure)


def flatten(tree: Any) -> tuple[dict[str, np.ndarray], Any]:
    """``({name: array}, structure)``: the leaves named by their paths (``"params/Dense_0/kernel"``) and the
    JSON structure that puts them back (``{"dict": {...}}``, ``{"list": [...]}``, ``null``, a leaf's name, or
    ``{"scalar": name}`` for a 0-d leaf)."""
    flat = {}

    def walk(node, path: str):
        if node is None:
            return None
        if isinstance(node, dict):
            return {"dict": {str(k): walk(node[k], f"{path}{k}/") for k in sorted(node, key=str)}}
        if isinstance(node, (list, tuple)):
            return {"list": [walk(x, f"{path}{i}/") for i, x in enumerate(node)]}
        array = np.asarray(node)
        if array.dtype not in SAFETENSORS_DTYPES:
            raise TypeError(f"an artifact holds numeric arrays, not {array.dtype} ones (at {path or '/'})")
        name = path.rstrip("/") or "."
        if name in flat:
            raise ValueError(f"two leaves of an artifact are both named {name} (a key holds '/')")
        flat[name] = np.ascontiguousarray(array.reshape(array.shape or (1,)))
        return name if array.ndim else {"scalar": name}  # the file holds a 0-d array as one of shape (1,)

    return flat, walk(tree, "")
