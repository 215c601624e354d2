"""Loads a network that jaxlth exported (``run.export``), with jax, numpy and safetensors alone.

This file is copied into every export folder as ``load.py``; it imports nothing of jaxlth or Flax
(``jax.export`` needs the small ``flatbuffers`` package to read ``forward.jax``)::

    from load import load                                 # with the folder on sys.path
    variables, forward = load("FOLDER")                   # the dense network
    logits = forward(variables, inputs)                   # (N, classes) float32; inputs as export.json says
    variables, forward = load("FOLDER", sparse=True)      # its Dense kernels as BCOO (exported with sparse=True)

``variables`` is ``{"params": ..., "batch_stats": ...}`` (nested dicts of ``jax.Array``; ``batch_stats``
is ``{}`` without BatchNorm); with ``sparse=True`` the pruned Dense kernels are
``jax.experimental.sparse.BCOO`` matrices. ``forward`` takes the inputs as the training data holds
them (e.g. uint8 pixels) and applies jaxlth's evaluation preprocessing itself; any batch size.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np
from jax.experimental import sparse as jsparse
from safetensors.numpy import load_file


def nest(flat: dict) -> dict:
    """``{"params/a/kernel": x}`` -> ``{"params": {"a": {"kernel": x}}}``."""
    tree: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.split("/")
        node = tree
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = value
    return tree


def deserialized(folder: str, name: str):
    """The ``jax.export.Exported`` function saved as ``name``, jitted: ``(params, ..., inputs) -> logits``."""
    with open(os.path.join(folder, name), "rb") as f:
        exported = jax.export.deserialize(bytearray(f.read()))
    return jax.jit(exported.call)


def split_sparse(params: dict, prefix: str = "params") -> tuple[dict, dict]:
    """``(params without BCOO leaves, {"params/a/kernel": (data, indices)})``."""
    dense, parts = {}, {}
    for name, value in params.items():
        key = f"{prefix}/{name}"
        if isinstance(value, dict):
            dense[name], inner = split_sparse(value, key)
            parts.update(inner)
        elif isinstance(value, jsparse.BCOO):
            parts[key] = (value.data, value.indices)
        else:
            dense[name] = value
    return dense, parts


def load(folder: str, sparse: bool = False):
    """``(variables, forward)`` of the network exported to ``folder``; ``forward(variables, inputs)``
    returns its logits. ``sparse``: the Dense kernels as BCOO and the forward pass that multiplies by them."""
    with open(os.path.join(folder, "export.json")) as f:
        info = json.load(f)
    flat = {key: jax.device_put(value) for key, value in load_file(os.path.join(folder, "model.safetensors")).items()}
    if not sparse:
        variables = nest(flat)
        variables.setdefault("batch_stats", {})
        call = deserialized(folder, "forward.jax")
        return variables, lambda v, inputs: call(v["params"], v["batch_stats"], inputs)
    if not info.get("bcoo"):
        raise ValueError(f"{folder} holds no BCOO kernels: export it with sparse=True")
    coo = load_file(os.path.join(folder, "bcoo.safetensors"))
    for key, shape in info["bcoo"].items():
        data, indices = (jax.device_put(coo[f"{key}/{part}"]) for part in ("data", "indices"))
        flat[key] = jsparse.BCOO((data, indices), shape=tuple(shape), indices_sorted=True, unique_indices=True)
    variables = nest(flat)
    variables.setdefault("batch_stats", {})
    call = deserialized(folder, "forward_bcoo.jax")

    def forward(v, inputs):
        dense, parts = split_sparse(v["params"])
        return call(dense, parts, v["batch_stats"], inputs)

    return variables, forward


def mask(folder: str) -> dict:
    """The mask, ``{"params": {...: bool numpy array}}`` over the prunable kernels (True: kept)."""
    return nest(load_file(os.path.join(folder, "mask.safetensors")))


if __name__ == "__main__":  # python load.py [FOLDER]: a quick check that the network loads and runs here
    import sys

    here = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "export.json")) as f:
        info = json.load(f)
    variables, forward = load(here)
    logits = forward(variables, np.zeros((2, *info["input"]["shape"]), info["input"]["dtype"]))
    print(f"{info['model']['class']}, density {info['density']:.4f}: logits {tuple(logits.shape)} {logits.dtype}")
