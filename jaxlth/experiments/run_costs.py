"""The costs of a saved run's masks, read back without its data: parameters, nonzero parameters,
compression and FLOPs per example for every arm, level and network (:mod:`jaxlth.analysis.costs`).

The model is rebuilt from ``config.json`` (``model.name`` and ``model.options``) and sized by the
saved initialisation (its classes from the ``output`` layer; a BERT's vocabulary, width, depth and
positions from its embeddings and layers), checked leaf by leaf against it, and traced once on one
example of the shape the config's data has (:func:`jaxlth.data.input_shapes.example`). Each level's
mask (``artifacts/<arm>/level_LL/mask``) is then counted: nothing is trained or evaluated again, and
what is saved is read, never recomputed.
"""

from __future__ import annotations

import itertools

import jax
import numpy as np
import pandas as pd
from flax import traverse_util

from jaxlth import checkpoint, models, storage
from jaxlth.analysis import costs as costs_lib
from jaxlth.data import input_shapes
from jaxlth.errors import UserError
from jaxlth.layout import level_name
from jaxlth.training import functions as fn
from jaxlth.training import text_setup


def model_of(config: dict, params: dict):
    """The Flax module of a run with ``config`` (a ``config.json`` dict) whose networks have ``params``
    (one network's arrays or shapes); UserError when the module it rebuilds has other parameters."""
    name, options = config["model"]["name"], dict(config["model"].get("options", {}))
    if text_setup.is_bert(name):
        name, options = "bert", bert_sizes(params, options)
        head = options["head"]
        classes = options["vocab_size"] if head == "mlm" else np.shape(params["output"]["kernel"])[-1]
    else:
        classes = np.shape(params["output"]["kernel"])[-1]
    model = models.get_model(name, int(classes), **options)
    shape, dtype = input_shapes.example(config["data"])
    key, x = jax.ShapeDtypeStruct((2,), np.uint32), jax.ShapeDtypeStruct((1, *shape), dtype)
    built = jax.eval_shape(lambda k, x: model.init(k, x, train=False), key, x)
    want = {p: tuple(np.shape(v)) for p, v in traverse_util.flatten_dict(params).items()}
    have = {p: tuple(v.shape) for p, v in traverse_util.flatten_dict(built["params"]).items()}
    if want != have:
        differ = sorted(set(want.items()) ^ set(have.items()))[0][0]
        raise UserError(
            f"model {config['model']['name']} rebuilt from the run's config for inputs {shape} does not have the "
            f"saved parameters (first difference: {'/'.join(differ)}); its costs cannot be counted"
        )
    return model


def bert_sizes(params: dict, options: dict) -> dict:
    """A BERT's options sized by its parameters (what a checkpoint folder's ``config.json`` said)."""
    words = np.shape(params["word_embeddings"]["embedding"])
    layers = sum(1 for k in params if k.startswith("layer") and k[len("layer") :].isdigit())
    sizes = dict(
        vocab_size=words[0],
        hidden=words[1],
        layers=layers,
        intermediate=np.shape(params["layer0"]["intermediate"]["kernel"])[-1],
        max_positions=np.shape(params["position_embeddings"]["embedding"])[0],
        type_vocab=np.shape(params["token_type_embeddings"]["embedding"])[0],
        head="mlm" if "transform" in params["output"] else options.get("head", "classify"),
    )
    heads = int(options.get("heads", max(1, words[1] // 64)))
    keep = {k: v for k, v in options.items() if k in ("pad_id", "ln_epsilon", "dropout")}
    return dict(keep, **{k: int(v) if k != "head" else v for k, v in sizes.items()}, heads=heads)


def flops_of(config: dict, params: dict, batch_stats: dict | None = None) -> costs_lib.Flops:
    """The multiply-adds per example of each layer of the run's dense model (:func:`costs.layer_flops`)."""
    model = model_of(config, params)
    shape, dtype = input_shapes.example(config["data"])

    def apply(p, b, x):
        return fn.logits(model, p, b, x, False)[0]

    return costs_lib.layer_flops(apply, params, batch_stats or {}, jax.ShapeDtypeStruct(shape, dtype))


def mask_levels(run, arm: str) -> list[int]:
    """The levels of ``arm`` whose mask is saved (training may still be under way)."""
    base = run.layout.arm_dir(arm)
    if not storage.isdir(base):
        return []
    levels = [int(n.removeprefix("level_")) for n in storage.listdir(base) if n.startswith("level_")]
    return sorted(n for n in levels if checkpoint.artifact_exists(run.layout.level_artifact(arm, n, "mask")))


def costs_table(run, arms=None) -> pd.DataFrame:
    """One row per network of every saved mask of ``arms`` (default: every arm of ``run.table``):
    ``arm, level, replicate``, the coordinates the run stacks (``prune_fraction``) and sweeps (``lr``, ...),
    then :data:`jaxlth.analysis.costs.COLUMNS`. A mask shared by the stacked networks of a replicate
    (a sweep's dense level 0) gives a row per coordinate, as its table rows are."""
    arms = arms if arms is not None else pd.unique(run.table["arm"].dropna())
    levels = {arm: mask_levels(run, arm) for arm in arms}
    extra = [*run.stacked, *run.grid.fields]
    if not any(levels.values()):
        return pd.DataFrame(columns=["arm", "level", "replicate", *extra, *costs_lib.COLUMNS])
    init = run.load("init")
    params = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x)[1:], x.dtype), init["params"])
    stats = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x)[1:], x.dtype), init.get("batch_stats") or {})
    flops = flops_of(run.config, params, stats)
    rows = []
    for arm, found in levels.items():
        for level in found:
            mask = run.load(f"{arm}/{level_name(level)}/mask")
            counted = costs_lib.costs(flops, params, mask)
            for i, coordinates in enumerate(positions(run, len(counted["flops"]))):
                values = {c: counted[c][i].item() for c in costs_lib.COLUMNS}
                rows += [dict(arm=arm, level=level, **found, **values) for found in coordinates]
    return pd.DataFrame(rows, columns=["arm", "level", "replicate", *extra, *costs_lib.COLUMNS])


def positions(run, count: int) -> list[list[dict]]:
    """The row coordinates of each of ``count`` stacked networks (setting-major, then replicate-major:
    :mod:`jaxlth.training.copies`), each a list (one per stacked coordinate a shared mask stands for)."""
    replicates, grid, stacked = int(run.config["replicates"]), run.grid, run.stacked
    values = [dict(zip(stacked, combo)) for combo in itertools.product(*stacked.values())]
    block = count // grid.size
    if block * grid.size != count or block not in (replicates, replicates * len(values)):
        raise UserError(f"a mask of {count} networks does not fit {replicates} replicates of {run.workdir}")
    out = []
    for i in range(count):
        setting, inner = grid.settings[i // block], i % block
        if block == replicates:
            out.append([dict(replicate=inner, **v, **setting) for v in values])
        else:
            r, c = divmod(inner, len(values))
            out.append([dict(replicate=r, **values[c], **setting)])
    return out
