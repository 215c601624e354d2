"""``model.pretrained``: the checkpoint a run's replicates start from, read and checked.

Three kinds of path (:func:`read`):

* a jaxlth workdir, optionally choosing a network: ``runs/a``, ``runs/a:level=0``,
  ``runs/a:arm=imp,level=2,which=rewind,replicate=1`` (``which``: ``final``, ``rewind`` or ``init``;
  a prune-fraction sweep also takes ``prune_fraction=``). A workdir alone means the final network
  of its main arm's last finished level (the network :meth:`jaxlth.runs.Run.network` returns);
* an Orbax checkpoint folder holding ``{"params", "batch_stats"}`` (or a bare params tree), of one
  network or stacked networks;
* a ``.safetensors`` file, its key names those of ``model.pretrained_format`` (``auto``: detected):
  jaxlth's own, torchvision/timm ResNets, timm or Hugging Face ViTs and BERTs (:mod:`jaxlth.weights`);
* a Hugging Face checkpoint folder (``model.safetensors`` beside ``config.json``): its safetensors file.

A checkpoint of ``R`` networks starts replicate ``r`` from network ``r``; otherwise every replicate
starts from the one chosen (``replicate=``, default 0). Nothing here writes to the workdir.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from flax import traverse_util

from jaxlth import checkpoint, runs, storage, weights
from jaxlth.errors import UserError
from jaxlth.experiments import registry
from jaxlth.layout import CONFIG_FILE
from jaxlth.training import functions as fn
from jaxlth.training import pretrained as pretrained_lib
from jaxlth.training import text_setup
from jaxlth.training.pretrained import Pretrained

FIELD = "model.pretrained"


def read(config, setup) -> Pretrained:
    """The network ``model.pretrained`` names, for the replicates of ``setup`` (its model's shapes)."""
    spec = config.model.pretrained
    path, chosen = runs.split_selection(spec, FIELD)
    replicates = int(config.replicates)
    folder = text_setup.checkpoint_folder(config)  # a Hugging Face folder: model.safetensors + config.json
    if folder is not None:
        return _from_safetensors(os.path.join(folder, text_setup.CHECKPOINT_FILE), config, setup, replicates)
    if storage.exists(os.path.join(path, CONFIG_FILE)):
        return _from_workdir(spec, path, chosen, replicates)
    if chosen:
        raise UserError(f"{FIELD} {spec}: only a jaxlth workdir takes key=value choices, and {path} holds no run")
    if storage.isdir(path) and checkpoint.artifact_exists(path):
        return _from_orbax(path, setup, replicates)
    if storage.exists(path) and not storage.isdir(path):
        return _from_safetensors(path, config, setup, replicates)
    if not storage.exists(path):
        raise UserError(f"{FIELD} {path} does not exist")
    raise UserError(f"{FIELD} {path} holds neither a jaxlth run, an Orbax checkpoint nor a .safetensors file")


def template(setup) -> dict:
    """``{"params", "batch_stats"}`` of one network of ``setup``'s model, as shapes (no replicate axis)."""
    program = setup.program
    shapes = jax.eval_shape(
        lambda key: fn.init(program.model, program.spec, key), jax.ShapeDtypeStruct((2,), np.uint32)
    )
    return {"params": shapes[0], "batch_stats": shapes[1]}


def _from_workdir(spec: str, path: str, chosen: dict, replicates: int) -> Pretrained:
    saved = runs.read_config(path)
    experiment = registry.of_config(saved)
    reader = experiment.reader(path, experiment.arms.main)
    network, description, replicate = reader.chosen(chosen, FIELD)
    count = pretrained_lib.count(network)
    sources = pretrained_lib.select(count, replicates, replicate, f"{FIELD} {spec}")
    return Pretrained(spec, "workdir", network, sources, description)


def _from_orbax(path: str, setup, replicates: int) -> Pretrained:
    tree = checkpoint.load_artifact(path)
    network = tree if isinstance(tree, dict) and "params" in tree else {"params": tree, "batch_stats": {}}
    network = {"params": network["params"], "batch_stats": network.get("batch_stats", {}) or {}}
    network = pretrained_lib.stacked_like(network, template(setup))
    count = pretrained_lib.count(network)
    sources = pretrained_lib.select(count, replicates, None, f"{FIELD} {path}")
    return Pretrained(path, "orbax", network, sources, f"the Orbax checkpoint {path} ({count} network(s))")


def _from_safetensors(path: str, config, setup, replicates: int) -> Pretrained:
    flat = weights.read_safetensors(path)
    fmt = config.model.get("pretrained_format", "auto")
    fmt = weights.detect(flat) if fmt == "auto" else fmt
    skip = tuple(config.model.get("pretrained_fresh", ()))
    network, report = weights.to_network(flat, fmt, template(setup), skip)
    # Only what the file gave: what it lacks is reported by pretrained.plan, fresh leaves are the replicates' own.
    taken = set(report["loaded"])
    tree = traverse_util.unflatten_dict(
        {tuple(p.split("/")): leaf for p, leaf in weights.flatten(network).items() if p in taken}
    )
    network = pretrained_lib.with_network_axis({c: tree.get(c, {}) for c in ("params", "batch_stats")})
    size = sum(int(np.size(v)) for v in flat.values())
    description = f"the {fmt} safetensors file {path} ({size:,} numbers)"
    notes = {k: v for k, v in report.items() if k != "loaded" and v}
    return Pretrained(path, "safetensors", network, (0,) * replicates, description, fmt, notes)
