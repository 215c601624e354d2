"""Starting from pretrained weights: a loaded network merged into the replicates' fresh initialisation.

A run with ``model.pretrained`` starts every replicate from a network read from a checkpoint (a
jaxlth workdir, an Orbax pytree or a ``safetensors`` file; read by
:mod:`jaxlth.experiments.pretrained_source`) instead of its random initialisation. What comes from
where is decided leaf by leaf:

* every parameter and BatchNorm statistic the checkpoint holds, with the model's shape, is the
  checkpoint's;
* the head (the leaves under ``output/``) follows ``model.pretrained_head``: ``auto`` keeps the
  checkpoint's when its shape fits and initialises it fresh when it does not (another number of
  classes); ``fresh`` always initialises it fresh (another task with as many classes); ``keep``
  requires the checkpoint's;
* a fresh leaf is the replicate's own random initialisation (``seed + r``, stream ``INIT``): the
  replicates that start from one network differ only in their fresh head and their SGD noise;
* a leaf whose path (``stem_conv/kernel``, no collection) matches a regular expression of
  ``model.pretrained_fresh`` is fresh whatever the checkpoint holds (a replaced stem).

Any other leaf the checkpoint lacks, or holds in another shape, is one sentence naming it: the
checkpoint is of another model.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import numpy as np
from flax import traverse_util

from jaxlth.errors import UserError
from jaxlth.weights import FORMATS

PyTree = Any
HEAD = "output"  # the head of every model of the registry (jaxlth.models)
HEAD_RULES = ("auto", "fresh", "keep")  # model.pretrained_head


def add_fields(model) -> None:
    """Adds the ``model.pretrained*`` fields, at their defaults, to the ``model`` ConfigDict."""
    model.pretrained = ""  # start from a checkpoint: a workdir[:arm=,level=,...], an Orbax folder, a .safetensors file
    model.pretrained_format = "auto"  # the key names of a .safetensors file (weights.FORMATS)
    model.pretrained_head = "auto"  # auto | fresh | keep: the head (output/*) from the checkpoint or fresh
    model.pretrained_fresh = ()  # regexes of parameters initialised fresh, not loaded (e.g. a replaced stem)


def check_fields(model) -> None:
    """One sentence (UserError) for a ``model.pretrained*`` field of the wrong type or choice; what the
    path holds is read later (:mod:`jaxlth.experiments.pretrained_source`)."""
    path, fmt = model.get("pretrained", ""), model.get("pretrained_format", "auto")
    head, fresh = model.get("pretrained_head", "auto"), model.get("pretrained_fresh", ())
    if not isinstance(path, str):
        raise UserError(f"model.pretrained must be a path (a string), got {path!r}")
    if fmt != "auto" and fmt not in FORMATS:
        raise UserError(f"unknown model.pretrained_format {fmt!r}; choose auto or one of {', '.join(FORMATS)}")
    if head not in HEAD_RULES:
        raise UserError(f"model.pretrained_head must be one of {', '.join(HEAD_RULES)}, got {head!r}")
    if not isinstance(fresh, (tuple, list)) or not all(isinstance(p, str) for p in fresh):
        raise UserError(f"model.pretrained_fresh must be a tuple of regular expressions, got {fresh!r}")
    for pattern in fresh:
        try:
            re.compile(pattern)
        except re.error as e:
            raise UserError(f"model.pretrained_fresh holds {pattern!r}, not a regular expression ({e})") from None


@dataclasses.dataclass(frozen=True)
class Pretrained:
    """A network read from a checkpoint, ready to start ``R`` replicates from.

    ``network``: ``{"params", "batch_stats"}`` of numpy arrays with a leading axis over the ``S``
    networks the checkpoint holds (``S = 1`` for a file of one network); ``sources[r]``: the
    network replicate ``r`` starts from; ``description``: what was read, in words (for the
    terminal and ``pretrained.json``); ``notes``: what the reading did beyond copying (resampled
    position embeddings, keys left unused), for ``pretrained.json``.
    """

    path: str
    kind: str  # workdir | orbax | safetensors
    network: dict
    sources: tuple[int, ...]
    description: str
    format: str = "jaxlth"
    notes: dict = dataclasses.field(default_factory=dict)


def plan(fresh: dict, pretrained: Pretrained, head_rule: str, model: str, fresh_patterns=()) -> dict:
    """Which leaves come from the checkpoint: ``{"loaded": [paths], "fresh": [paths], "head":
    "checkpoint" | "fresh"}``, paths like ``"params/block0/mlp/fc1/kernel"``; ``fresh`` gives the
    replicates' shapes (arrays or ``jax.ShapeDtypeStruct`` stacked ``(R, ...)``).

    Raises UserError for a leaf the checkpoint lacks or holds in another shape (the head aside, as
    ``head_rule`` says, and the leaves ``fresh_patterns`` names).
    """
    if head_rule not in HEAD_RULES:
        raise UserError(f"model.pretrained_head must be one of {', '.join(HEAD_RULES)}, got {head_rule!r}")
    loaded, fresh_paths = [], []
    for collection in ("params", "batch_stats"):
        theirs = traverse_util.flatten_dict(plain(pretrained.network.get(collection, {})))
        for path, leaf in traverse_util.flatten_dict(plain(fresh.get(collection, {}))).items():
            name = f"{collection}/{'/'.join(path)}"
            found = theirs.get(path)
            shape = tuple(leaf.shape)[1:]
            fits = found is not None and tuple(found.shape[1:]) == shape
            if any(re.search(p, "/".join(path)) for p in fresh_patterns):
                take = False
            elif path[0] == HEAD:
                if head_rule == "keep" and not fits:
                    raise UserError(_mismatch(name, found, shape, model, pretrained, "model.pretrained_head=keep"))
                take = fits and head_rule != "fresh"
            elif not fits:
                raise UserError(_mismatch(name, found, shape, model, pretrained))
            else:
                take = True
            (loaded if take else fresh_paths).append(name)
    head = "fresh" if any(p.split("/")[1] == HEAD for p in fresh_paths) else "checkpoint"
    return {"loaded": loaded, "fresh": fresh_paths, "head": head}


def start(fresh: dict, pretrained: Pretrained, head_rule: str, model: str, fresh_patterns=()) -> dict:
    """``fresh`` (the replicates' initialisation, ``{"params", "batch_stats"}`` stacked ``(R, ...)``)
    with every leaf :func:`plan` loads replaced by source network ``sources[r]``'s for replicate ``r``."""
    loaded = set(plan(fresh, pretrained, head_rule, model, fresh_patterns)["loaded"])
    sources = np.asarray(pretrained.sources, np.int64)
    out = {}
    for collection in ("params", "batch_stats"):
        theirs = traverse_util.flatten_dict(plain(pretrained.network.get(collection, {})))
        merged = {}
        for path, leaf in traverse_util.flatten_dict(plain(fresh.get(collection, {}))).items():
            if f"{collection}/{'/'.join(path)}" in loaded:
                merged[path] = np.asarray(theirs[path])[sources].astype(leaf.dtype, copy=False)
            else:
                merged[path] = leaf
        out[collection] = traverse_util.unflatten_dict(merged) if merged else {}
    return out


def select(count: int, replicates: int, chosen: int | None, what: str) -> tuple[int, ...]:
    """The source network of each of ``replicates`` replicates, from ``count`` networks: replicate
    ``r`` from network ``r`` when the counts agree and none is ``chosen``, else every replicate from
    ``chosen`` (default 0)."""
    if chosen is None and count == replicates:
        return tuple(range(replicates))
    index = 0 if chosen is None else int(chosen)
    if not 0 <= index < count:
        raise UserError(f"{what} holds {count} network(s); replicate {index} is not one of them")
    return (index,) * replicates


def stacked_like(tree: dict, template: dict) -> dict:
    """``tree`` with a leading axis of one network added when its leaves have the template's shapes
    (a file of one network), unchanged when they already carry a leading axis of networks."""
    flat_tree = traverse_util.flatten_dict(plain(tree.get("params", {})))
    flat_template = traverse_util.flatten_dict(plain(template.get("params", {})))
    single = any(
        path in flat_tree and tuple(np.shape(flat_tree[path])) == tuple(np.shape(leaf))
        for path, leaf in flat_template.items()
        if path[0] != HEAD
    )
    return with_network_axis(tree) if single else tree


def with_network_axis(network: dict) -> dict:
    """``{"params", "batch_stats"}`` of one network with a leading axis of one network on every leaf."""
    return {c: _map(lambda x: np.asarray(x)[None], network.get(c, {})) for c in ("params", "batch_stats")}


def count(network: dict) -> int:
    """How many networks a stacked ``network`` holds (its leading axis)."""
    leaves = list(traverse_util.flatten_dict(plain(network.get("params", {}))).values())
    if not leaves:
        raise UserError("the checkpoint holds no parameters")
    return int(np.shape(leaves[0])[0])


def _mismatch(name: str, found, shape: tuple, model: str, pretrained: Pretrained, why: str = "") -> str:
    where = f"model.pretrained {pretrained.path}"
    if found is None:
        return f"{where} has no {name} for model {model!r}: it holds a network of another model"
    return f"{where} holds {name} of shape {tuple(found.shape[1:])}, but model {model!r} has {shape}" + (
        f" ({why})" if why else ": it holds a network of another model or size"
    )


def plain(tree) -> dict:
    """Nested dicts (Flax FrozenDicts and Orbax's restored mappings alike)."""
    if hasattr(tree, "items"):
        return {str(k): plain(v) for k, v in tree.items()}
    return tree


def _map(fn, tree):
    if hasattr(tree, "items"):
        return {k: _map(fn, v) for k, v in tree.items()}
    return fn(tree)
