"""Which parameters train (``train.trainable``), and the optax partition that freezes the others.

``train.trainable`` is a tuple of regular expressions searched (``re.search``, as
``pruning.layers_to_ignore``) in each parameter's ``/``-joined path (``stage0_block0/bn1/scale``,
``output/kernel``), and the entry ``"batchnorm"``: the scale (γ) and bias (β) of every BatchNorm
layer, found as the layers that keep running statistics (``batch_stats``), whatever their names. A
parameter that an entry names is trained; every other one is frozen. :func:`partition` gives frozen
leaves ``optax.set_to_zero()`` through ``optax.partition``: their update is exactly 0 (momentum and
weight decay never reach them), their optimizer state holds no array, and they stay bitwise at their
start through training, rewinding and IMP levels (a pruned entry stays 0: masks apply after every
update). ``()`` trains every parameter with the optimizer unchanged. BatchNorm's running statistics
are no parameters: they follow the batches whatever is trained.

Frankle, Schwab & Morcos (ICLR 2021), "Training BatchNorm and Only BatchNorm": ``("batchnorm",)``
trains γ and β of every BatchNorm layer, every other weight frozen at its random initialisation;
``("batchnorm", "^output/")`` trains the output layer too.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax
from flax import traverse_util

from jaxlth.errors import UserError

PyTree = Any
BATCHNORM = "batchnorm"  # the entry that names every BatchNorm layer's scale and bias
TRAINED, FROZEN = "trained", "frozen"  # the labels of the partition
NORM_PARAMS = ("scale", "bias")


def patterns(train_cfg: Mapping) -> tuple[str, ...]:
    """``train.trainable``, checked without the model: a tuple of strings, each ``"batchnorm"`` or a
    valid regular expression (UserError, one sentence)."""
    value = train_cfg.get("trainable", ())
    if isinstance(value, str) or not isinstance(value, (tuple, list)) or not all(isinstance(p, str) for p in value):
        raise UserError(
            f"train.trainable must be a tuple of regular expressions or 'batchnorm', e.g. ('batchnorm', '^output/'), "
            f"got {value!r}"
        )
    for pattern in value:
        if pattern != BATCHNORM:
            try:
                re.compile(pattern)
            except re.error as e:
                raise UserError(f"train.trainable holds an invalid regular expression {pattern!r}: {e}") from None
    return tuple(value)


def network_for(train_cfg: Mapping, init: Callable) -> dict | None:
    """The shapes ``{"params", "batch_stats"}`` of the networks ``init(key) -> (params, batch_stats)``
    makes (traced, nothing runs) when ``train.trainable`` freezes parameters: what :func:`trained`
    matches; ``None`` when it trains every parameter."""
    if not patterns(train_cfg):
        return None
    params, batch_stats = jax.eval_shape(init, jax.ShapeDtypeStruct((2,), jnp.uint32))
    return {"params": params, "batch_stats": batch_stats}


def trained(train_cfg: Mapping, network: dict | None) -> frozenset[str] | None:
    """The ``/``-joined paths of the parameters ``train.trainable`` trains in ``network`` (shapes:
    :func:`network_for`); ``None`` when it trains every parameter. UserError, one sentence, for an
    entry that names no parameter of the network."""
    entries = patterns(train_cfg)
    if not entries:
        return None
    if network is None:
        raise ValueError("train.trainable needs the network's parameter shapes: make_optimizer(train_cfg, network)")
    names = [_joined(path) for path in traverse_util.flatten_dict(dict(network["params"]))]
    norms = {_joined(path[:-1]) for path in traverse_util.flatten_dict(dict(network.get("batch_stats") or {}))}
    chosen = set()
    for entry in entries:
        if entry == BATCHNORM:
            hits = {n for n in names if n.rpartition("/")[0] in norms and n.rpartition("/")[2] in NORM_PARAMS}
            if not hits:
                raise UserError("train.trainable names 'batchnorm', and this model has no BatchNorm layer to train")
        else:
            hits = {n for n in names if re.search(entry, n)}
            if not hits:
                shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
                raise UserError(f"train.trainable pattern {entry!r} matches no parameter of this model ({shown})")
        chosen |= hits
    return frozenset(chosen)


def partition(tx: optax.GradientTransformation, trained_paths: frozenset[str] | None) -> optax.GradientTransformation:
    """``tx`` on the parameters of ``trained_paths`` and ``optax.set_to_zero()`` on the others (no state);
    ``tx`` itself when everything trains (``None``)."""
    if trained_paths is None:
        return tx

    def labels(params: PyTree) -> PyTree:
        return jax.tree_util.tree_map_with_path(
            lambda path, _: TRAINED if _joined(path) in trained_paths else FROZEN, params
        )

    return optax.partition({TRAINED: tx, FROZEN: optax.set_to_zero()}, labels)


def _joined(path) -> str:
    """``("stage0_block0", "bn1", "scale")`` or a tree path of dict keys -> ``"stage0_block0/bn1/scale"``."""
    return "/".join(str(getattr(k, "key", k)) for k in path)
