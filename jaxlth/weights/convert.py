"""A checkpoint's flat ``{key: array}`` as a jaxlth network, and back.

A jaxlth network is ``{"params": ..., "batch_stats": ...}`` (nested dicts; ``batch_stats`` is
``{}`` for models without BatchNorm), as :func:`jaxlth.training.functions.init` makes and runs
store it, for one replicate. The ``jaxlth`` format names each leaf by its path with the
collection first, ``"params/block0/attention/query/kernel"``, ``"batch_stats/stem_bn/mean"``, in
jaxlth's own layout; the other formats are PyTorch checkpoints' names and layouts
(:mod:`jaxlth.weights.resnet_keys`, :mod:`jaxlth.weights.vit_keys`, :mod:`jaxlth.weights.bert_keys`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np
from flax import traverse_util

from jaxlth.errors import UserError
from jaxlth.weights import bert_keys, resample, resnet_keys, vit_keys
from jaxlth.weights import names as names_lib

PyTree = Any
FORMATS = ("jaxlth", "torchvision_resnet", "timm_vit", "hf_vit", "hf_bert")
NAMES = {
    "torchvision_resnet": resnet_keys.TORCHVISION,
    "timm_vit": vit_keys.TIMM,
    "hf_vit": vit_keys.HF,
    "hf_bert": bert_keys.HF,
}
COLLECTIONS = ("params", "batch_stats")
HEAD = "output"  # the classification head of every model of jaxlth's registry
POSITIONS = "params/position_embedding"


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise UserError(f"unknown checkpoint format {fmt!r}; the formats are {', '.join(FORMATS)}")


def _known(fmt: str, key: str) -> bool:
    if fmt == "jaxlth":
        return key.partition("/")[0] in COLLECTIONS
    names = NAMES[fmt]
    return names_lib.is_ignored(names, key) or names_lib.to_jaxlth(names, key) is not None


def detect(keys: Iterable[str]) -> str:
    """The format (one of ``FORMATS``) whose names all of a file's ``keys`` are (a dict's keys will
    do). Raises UserError naming a key that no format knows."""
    keys = list(keys)
    if not keys:
        raise UserError("the checkpoint file holds no tensors")
    known = {fmt: [_known(fmt, key) for key in keys] for fmt in FORMATS}
    for fmt in FORMATS:
        if all(known[fmt]):
            return fmt
    closest = max(FORMATS, key=lambda fmt: sum(known[fmt]))
    example = next(key for key, ok in zip(keys, known[closest]) if not ok)
    raise UserError(
        f"the checkpoint's key {example!r} is a name of none of the formats jaxlth reads ({', '.join(FORMATS)})"
    )


def flatten(network: PyTree) -> dict[str, Any]:
    """``{"params/a/b/kernel": leaf, ...}`` of a network ``{"params", "batch_stats"}``."""
    flat = {}
    for collection in COLLECTIONS:
        for path, leaf in traverse_util.flatten_dict(dict(network.get(collection) or {})).items():
            flat["/".join((collection, *path))] = leaf
    return flat


def _unflatten(flat: dict[str, Any], template: PyTree) -> dict:
    out = {collection: {} for collection in COLLECTIONS if collection in template}
    for path, leaf in flat.items():
        collection, *rest = path.split("/")
        out.setdefault(collection, {})
        node = out[collection]
        for name in rest[:-1]:
            node = node.setdefault(name, {})
        node[rest[-1]] = leaf
    return out


def _jaxlth_arrays(fmt: str, key: str, tensor: np.ndarray) -> tuple[tuple[str, ...], tuple[np.ndarray, ...]]:
    """The jaxlth paths the file's ``key`` holds and their arrays (views where possible)."""
    if fmt == "jaxlth":
        if key.partition("/")[0] not in COLLECTIONS:
            raise UserError(f"the checkpoint's key {key!r} is no jaxlth path (params/... or batch_stats/...)")
        return (key,), (tensor,)
    found = names_lib.to_jaxlth(NAMES[fmt], key)
    if found is None:
        raise UserError(f"the checkpoint's key {key!r} is no {fmt} name jaxlth knows")
    kind, leaf, paths = found
    try:
        if tensor.ndim != leaf.ndim:
            raise ValueError(f"a {kind.name}'s {leaf.file} has {leaf.ndim} dimensions")
        return paths, leaf.to_flax(tensor)
    except ValueError as e:
        raise UserError(f"the checkpoint's {key} has shape {tuple(tensor.shape)}, which does not fit: {e}") from None


CHUNK = 16  # columns per step of a transposing copy: a 64-byte cache line of float32


def _copy(view: np.ndarray, dtype) -> np.ndarray:
    """``view`` copied once into a new C-ordered array of ``dtype``. A transposed view (its last axis
    strided) is copied ``CHUNK`` columns at a time, reading a few of the source's rows at once:
    about twice as fast as numpy's own copy of a large transpose."""
    if view.ndim < 2 or view.strides[-1] == view.itemsize or view.size < 1 << 16:
        return np.array(view, dtype=dtype, order="C")
    out = np.empty(view.shape, dtype)
    for start in range(0, view.shape[-1], CHUNK):
        out[..., start : start + CHUNK] = view[..., start : start + CHUNK]
    return out


def _is_head(path: str) -> bool:
    return path.split("/")[1] == HEAD


def to_network(flat: dict[str, np.ndarray], fmt: str, template: PyTree, skip=()) -> tuple[dict, dict]:
    """``(network, report)``: ``template`` (a network of arrays or ``jax.ShapeDtypeStruct``) with each
    leaf the checkpoint ``flat`` (in format ``fmt``) holds set from it: new numpy arrays (each
    tensor copied once, transposed and cast to the template's dtype on the way).

    ``report``: ``loaded`` (paths set from the file, resampled ones included), ``kept`` (left as in
    the template: absent from the file, or a head (``output``) of another shape), ``resampled``
    (position embeddings of another patch grid, :func:`jaxlth.weights.resample.positions`),
    ``ignored`` (file keys read past, and the whole head when it is of a kind the network lacks: a
    BERT file's masked-language-model head read into a classifier). ``skip``: regular expressions of
    leaf paths without their collection (``stem_conv/kernel``) kept as in the template whatever the
    file holds (a replaced stem). Raises UserError for a key of no layer, a key of a layer the
    network lacks, or a shape that differs anywhere but the head and the skipped leaves.
    """
    _check_format(fmt)
    wanted = flatten(template)
    found: dict[str, tuple[np.ndarray, str]] = {}
    ignored = []
    for key, tensor in flat.items():
        if fmt != "jaxlth" and names_lib.is_ignored(NAMES[fmt], key):
            ignored.append(key)
            continue
        for path, array in zip(*_jaxlth_arrays(fmt, key, tensor)):
            found[path] = (array, key)
    heads = [path for path in found if _is_head(path)]
    if any(path not in wanted for path in heads):  # the file's head is of another kind: read past, all of it
        for path in heads:
            key = found.pop(path)[1]
            ignored += [] if key in ignored else [key]
    misplaced = [(key, path) for path, (_, key) in found.items() if path not in wanted]
    if misplaced:
        key, path = misplaced[0]
        if all(p not in wanted or _is_head(p) for p in found):
            raise UserError(
                f"none of the checkpoint's {fmt} tensors but the head fit this network (its {key!r} would be "
                f"{path}): the file holds another model"
            )
        raise UserError(f"the checkpoint's {key!r} would be {path}, which this network does not have")
    prefix = 1 if "params/cls_token" in wanted else 0
    report = {"loaded": [], "kept": [], "resampled": [], "ignored": ignored}
    network = {}
    for path, leaf in wanted.items():
        if path not in found or any(re.search(p, path.partition("/")[2]) for p in skip):
            network[path] = leaf
            report["kept"].append(path)
            continue
        array, key = found[path]
        shape = tuple(leaf.shape)
        if tuple(array.shape) != shape:
            if _is_head(path):
                network[path] = leaf
                report["kept"].append(path)
                continue
            if path == POSITIONS and array.ndim == 3 and array.shape[::2] == shape[::2]:
                array = resample.positions(array, shape[1], prefix)
                report["resampled"].append(path)
            else:
                raise UserError(
                    f"the checkpoint's {key} gives {path} the shape {tuple(array.shape)}, but this network's is {shape}"
                )
        network[path] = _copy(array, leaf.dtype)
        report["loaded"].append(path)
    return _unflatten(network, template), report


def from_network(network: PyTree, fmt: str, channels: int = 3) -> dict[str, np.ndarray]:
    """The checkpoint ``{key: array}`` of ``network`` in format ``fmt`` (the inverse of
    :func:`to_network`); ``channels``: of the images a ViT's patch embedding reads (needed to
    write it as a conv). Raises UserError for a leaf the format has no name for."""
    _check_format(fmt)
    leaves = flatten(network)
    if fmt == "jaxlth":
        return {path: np.asarray(leaf) for path, leaf in leaves.items()}
    groups: dict[str, tuple] = {}
    for path, leaf in leaves.items():
        found = names_lib.to_file(NAMES[fmt], path, leaves.__contains__)
        if found is None:
            raise UserError(f"the network's {path} has no name in the {fmt} format")
        key, tensor, index = found
        groups.setdefault(key, (tensor, {}))[1][index] = np.asarray(leaf)
    flat = {}
    for key, (tensor, parts) in groups.items():
        missing = [path for i, path in enumerate(tensor.flax) if i not in parts]
        if missing:
            raise UserError(f"the network lacks the {missing[0]} that the {fmt} tensor {key} is made of")
        flat[key] = np.ascontiguousarray(tensor.to_file(tuple(parts[i] for i in range(len(tensor.flax))), channels))
    return flat
