"""A training state saved as one safetensors file in its step's folder: ``<checkpoints>/<step>/state.safetensors``.

The file holds every leaf of the state (``TrainState``: parameters, BatchNorm statistics, optimizer state, data
key), named by its path in the tree (``params/hidden_0/kernel``, ``opt_state/0/trace/...``): it is the
:mod:`jaxlth.arrays_file` of the state as nested dicts, with the step's metadata as JSON in its header
(``jaxlth_meta``). It is read back against a state of the same structure (``like``: arrays or
``jax.ShapeDtypeStruct``), whose leaves say each array's shape, dtype and placement, or as nested dicts of
numpy arrays.

A step is committed by a rename: the file is written and ``fsync``-ed in ``<step>.partial/``, that folder is
renamed to ``<step>`` and the parent folder ``fsync``-ed. A process killed at any moment leaves the steps
committed before it whole; a ``.partial`` folder it leaves is removed by the next :func:`remove_partial`.
Folders named by a step and holding Orbax's layout instead (``state/``, ``meta/``: training checkpoints of
earlier versions and of multi-process runs) are read by :mod:`jaxlth.checkpoint` with Orbax.

Local folders only (``jaxlth.checkpoint.Checkpoints`` gives object stores to Orbax). On this project's 2-core
CPU (2026-12-05) a LeNet-300-100 state of one replicate (266,610 parameters and their momentum, 2.1 MB) took
2-7 ms to write, most of it the two fsyncs, and 2 ms to read; Orbax's save of a tiny state cost ~50 ms of CPU.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import jax
import numpy as np

from jaxlth import arrays_file

STATE_FILE = "state.safetensors"
META_KEY = "jaxlth_meta"
PARTIAL = ".partial"

PyTree = Any


def file(directory: str, step: int) -> str:
    """``<directory>/<step>/state.safetensors``."""
    return os.path.join(directory, str(int(step)), STATE_FILE)


def steps(directory: str) -> list[int]:
    """The committed steps in ``directory`` (folders named by an integer, of either layout), ascending."""
    if not os.path.isdir(directory):
        return []
    return sorted(int(d) for d in os.listdir(directory) if d.isdigit() and os.path.isdir(os.path.join(directory, d)))


def remove_partial(directory: str) -> None:
    """Removes the ``<step>.partial`` folders a killed process left in ``directory``."""
    if os.path.isdir(directory):
        for name in os.listdir(directory):
            if name.endswith(PARTIAL):
                shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


def write(directory: str, step: int, host_state: PyTree, meta: dict) -> None:
    """Commits ``host_state`` (numpy leaves) and ``meta`` as step ``step`` of ``directory`` (a step saved
    again replaces the one before)."""
    final = os.path.join(directory, str(int(step)))
    partial = final + PARTIAL
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    names, leaves, _ = _named_leaves(host_state)
    tree = _nested(names, leaves)
    arrays_file.write_tree(os.path.join(partial, STATE_FILE), tree, {META_KEY: json.dumps(meta, sort_keys=True)})
    if os.path.isdir(final):
        shutil.rmtree(final)
    os.replace(partial, final)
    _fsync_folder(directory)


def _fsync_folder(directory: str) -> None:
    """Makes a rename in ``directory`` durable (a machine crash after it keeps the new name)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_meta(path: str) -> dict:
    """The metadata saved in the state file ``path`` (its header only is read)."""
    header, _ = arrays_file.header(path)
    return json.loads((header.get("__metadata__") or {}).get(META_KEY, "{}"))


def read(path: str, like: PyTree | None = None) -> tuple[PyTree, dict]:
    """The state saved in ``path`` and its metadata. With ``like``: ``like``'s structure, shapes, dtypes
    and shardings (a leaf without a sharding goes to the default device); raises ValueError when the file
    holds other arrays than ``like`` has (another model or optimizer). Without: nested dicts of numpy
    arrays by the leaves' paths (``state["params"]["hidden_0"]["kernel"]``; a tuple's entries under
    ``"0"``, ``"1"``, ...), for a look at a checkpoint. Raises UserError when the file cannot be read."""
    flat, metadata = arrays_file.read_arrays(path)
    meta = json.loads(metadata.get(META_KEY, "{}"))
    if like is None:
        return arrays_file.tree_of(flat, metadata, path), meta
    names, leaves_like, structure = _named_leaves(like)
    if set(names) != set(flat):
        missing, extra = sorted(set(names) - set(flat)), sorted(set(flat) - set(names))
        raise ValueError(f"it holds other arrays than the state (missing {missing[:3]}, unexpected {extra[:3]})")
    leaves = []
    for name, leaf in zip(names, leaves_like):
        array = flat[name]
        if array.dtype != leaf.dtype or array.size != int(np.prod(leaf.shape)):
            raise ValueError(f"{name} is {array.dtype}{list(array.shape)}, the state's {leaf.dtype}{list(leaf.shape)}")
        leaves.append(_place(np.array(array).reshape(leaf.shape), getattr(leaf, "sharding", None)))
    return jax.tree.unflatten(structure, leaves), meta


def _named_leaves(tree: PyTree) -> tuple[list[str], list, Any]:
    """``(names, leaves, structure)``: each leaf named by its path (``"params/hidden_0/kernel"``)."""
    with_paths, structure = jax.tree_util.tree_flatten_with_path(tree)
    names = ["/".join(_key(k) for k in path) or "." for path, _ in with_paths]
    return names, [leaf for _, leaf in with_paths], structure


def _nested(names: list[str], leaves: list) -> dict:
    """The leaves as nested dicts by their names' parts (``{"params": {"hidden_0": {"kernel": ...}}}``)."""
    if len(set(names)) != len(names):
        raise ValueError("two leaves of the state have the same name (a key holds '/')")
    tree: dict = {}
    for name, leaf in zip(names, leaves):
        *parents, last = name.split("/")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = leaf
    return tree


def _key(entry) -> str:
    for attribute in ("key", "name", "idx"):  # DictKey, GetAttrKey, SequenceKey / FlattenedIndexKey
        if hasattr(entry, attribute):
            return str(getattr(entry, attribute))
    return str(entry)


def _place(array: np.ndarray, sharding) -> jax.Array:
    """``array`` on the devices ``sharding`` names (every process holds the whole array and gives its part)."""
    if sharding is None:
        return jax.device_put(array)
    if sharding.is_fully_addressable:
        return jax.device_put(array, sharding)
    return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])
