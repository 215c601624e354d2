"""The base configuration every recipe in ``configs/`` starts from, and its validation.

Field names are a contract with users (see DESIGN.md): ``experiment``, ``seed``, ``replicates``,
``train.steps``, ``train.batch_size``, ``checkpoint_every``, ... Lengths are step specs.
"""

from __future__ import annotations

import importlib.util
import json
import os
from typing import Any

import ml_collections

from jaxlth import steps as step_specs
from jaxlth.data import default_config as default_data_config
from jaxlth.errors import UserError

EXPERIMENTS = ("train", "lottery", "instability")

# Fields that may differ between the config saved in a workdir and a rerun on it.
RERUN_MAY_CHANGE = ("progress", "lottery.levels", "lottery.branches", "instability.spawn_steps")


def base_config() -> ml_collections.ConfigDict:
    """Every field with its default; recipes override what they need."""
    c = ml_collections.ConfigDict()
    c.experiment = "train"
    c.seed = 0  # initialisation of replicate r uses seed + r
    c.data_seed = 0  # SGD noise (order, augmentation) of replicate r uses data_seed + r
    c.replicates = 1

    c.data = default_data_config()

    c.model = ml_collections.ConfigDict()
    c.model.name = "lenet_300_100"
    c.model.options = ml_collections.ConfigDict()  # extra keyword arguments, e.g. width

    c.train = ml_collections.ConfigDict()
    c.train.steps = "40ep"
    c.train.batch_size = 128
    c.train.optimizer = "sgd"  # sgd | adam | adamw
    c.train.lr = 0.1
    c.train.momentum = 0.0
    c.train.nesterov = False
    c.train.beta1 = 0.9  # adam/adamw: decay of the first-moment estimate
    c.train.beta2 = 0.999  # adam/adamw: decay of the second-moment estimate
    c.train.eps = 1e-8  # adam/adamw: added to the root of the second moment
    c.train.weight_decay = 0.0
    c.train.schedule = "constant"  # constant | step | cosine
    c.train.milestones = ""  # comma-separated step specs, for schedule=step
    c.train.gamma = 0.1
    c.train.warmup = "0it"

    c.lottery = ml_collections.ConfigDict()
    c.lottery.levels = 0  # pruning levels after the dense level 0
    c.lottery.rewind = "0it"  # step spec k: weights (and BN statistics) rewind to step k
    c.lottery.prune_fraction = 0.2  # of the remaining prunable weights, per level
    c.lottery.scope = "global"  # global | layerwise magnitude pruning
    c.lottery.layers_to_ignore = ()  # regular expressions matched against e.g. "output/kernel"
    c.lottery.retrain = "weight_rewind"  # weight_rewind | lr_rewind | finetune (Renda et al. 2020)
    c.lottery.branches = ()  # control arms run at every pruned level, see jaxlth/lottery/branches.py
    c.lottery.random_prune_scope = "layerwise"  # random_prune: same per-layer density | global density
    c.lottery.retrain_overrides = ""  # retrain branch: train fields, e.g. "lr=0.05,optimizer=adam"

    c.instability = ml_collections.ConfigDict()
    c.instability.spawn_steps = "0it"  # comma-separated step specs k: copies trained from step k
    c.instability.copies = 2  # copies per spawn step, differing only in SGD noise
    c.instability.alphas = 30  # evenly spaced interpolation coefficients in [0, 1]
    c.instability.splits = ("test", "train")  # where errors along the path are measured
    c.instability.train_examples = 10000  # train split: this many examples (fixed subset; 0 = all)
    c.instability.bn_recompute_batches = 0  # > 0: recompute BatchNorm statistics at every alpha
    c.instability.source_workdir = ""  # a lottery workdir: analyse its IMP subnetwork ...
    c.instability.level = -1  # ... at this level (-1: the dense network)
    c.instability.between_levels = False  # Paul et al. 2023: barrier between levels L and L+1
    c.instability.matching_epsilon = -1.0  # matching: within eps of dense test error; < 0: 1 std
    c.instability.perturb_scales = ()  # Paul et al. 2023: noise scales relative to layer norms
    c.instability.perturb_step = "0it"  # the step whose network is perturbed (dense runs)

    c.eval_every = "1ep"
    c.eval_batch_size = 2000
    c.eval_train = False  # also evaluate on the whole (unaugmented) training set
    c.checkpoint_every = "1ep"
    c.keep_checkpoints = 3
    c.progress = True
    return c


def from_file(spec: str, **overrides: Any) -> ml_collections.ConfigDict:
    """The config of ``PATH[:ARG]`` as the command line builds it, with dotted-name overrides.

    The notebook twin of ``--config PATH[:ARG] --config.KEY=VALUE``::

        config = from_file("configs/lenet_fashion_mnist.py:lottery", **{"lottery.levels": 3, "replicates": 2})
    """
    path, _, arg = spec.partition(":")
    if not os.path.isfile(path):
        raise UserError(f"the config file {path} does not exist (configs are in configs/, e.g. "
                        "configs/lenet_fashion_mnist.py)")
    module_spec = importlib.util.spec_from_file_location(f"jaxlth_config_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    config = module.get_config(arg or None)
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = config
        for part in parents:
            node = node[part] if part in node else None
            if not isinstance(node, ml_collections.ConfigDict):
                raise UserError(f"the config has no field {dotted!r}")
        if leaf not in node and parents != ["model", "options"]:  # model options: the model checks them
            raise UserError(f"the config has no field {dotted!r}")
        node[leaf] = tuple(value) if isinstance(value, list) else value
    validate(config)
    return config


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises :class:`UserError` with one sentence for the first problem found."""
    _check(config.experiment in EXPERIMENTS,
           f"unknown experiment {config.experiment!r}; choose one of {', '.join(EXPERIMENTS)}")
    _check(isinstance(config.replicates, int) and config.replicates >= 1,
           f"replicates must be a positive integer, got {config.replicates!r}")
    _check(isinstance(config.train.batch_size, int) and config.train.batch_size >= 1,
           f"train.batch_size must be a positive integer, got {config.train.batch_size!r}")
    for field in ("train.steps", "eval_every", "checkpoint_every", "train.warmup"):
        spec = step_specs.parse(_get(config, field), field)
        _check(field == "train.warmup" or spec.to_steps(1) > 0, f"{field} must be longer than 0 steps")
    step_specs.parse_list(config.train.milestones, 1, "train.milestones")
    _check(config.eval_batch_size >= 1, f"eval_batch_size must be positive, got {config.eval_batch_size}")
    _check(config.keep_checkpoints >= 1, f"keep_checkpoints must be at least 1, got {config.keep_checkpoints}")


def _get(config: ml_collections.ConfigDict, dotted: str) -> Any:
    node = config
    for part in dotted.split("."):
        node = node[part]
    return node


def to_dict(config: ml_collections.ConfigDict) -> dict:
    """The config as plain JSON-compatible data (tuples become lists)."""
    return json.loads(config.to_json())


_MISSING = "<missing>"


def differences(saved: dict, current: dict, prefix: str = "", defaults: dict | None = None) -> list[str]:
    """Dotted names of the fields whose values differ (ignoring :data:`RERUN_MAY_CHANGE`).

    A field ``saved`` lacks counts as its default in :func:`base_config` (the value the code used
    before the field existed), so workdirs written by an older jaxlth stay valid.
    """
    if defaults is None:
        defaults = to_dict(base_config())
        for name in prefix.rstrip(".").split(".") if prefix else []:
            defaults = defaults.get(name, {}) if isinstance(defaults, dict) else {}
    out = []
    for key in sorted(set(saved) | set(current)):
        name = f"{prefix}{key}"
        if name in RERUN_MAY_CHANGE:
            continue
        default = defaults.get(key, _MISSING) if isinstance(defaults, dict) else _MISSING
        a, b = saved.get(key, default), current.get(key, _MISSING)
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(differences(a, b, name + ".", default if isinstance(default, dict) else {}))
        elif a != b:
            out.append(f"{name}: {a!r} there, {b!r} here")
    return out
