"""The config fields every experiment shares, and what is done with any config.

Field names are a contract with users: ``experiment``, ``seed``, ``replicates``, ``train.steps``,
``pruning.layers_to_ignore``, ``checkpoint_every``, ... Lengths are step specs. This module holds
the common fields (:func:`common_config`) and their checks (:func:`check`); each experiment's own
block is declared in its folder and the whole config is assembled by
:mod:`jaxlth.experiments.recipes` (``jaxlth.config.base_config()``). Fields that were renamed keep
working: :data:`RENAMED` maps their old names, with a one-line notice (:mod:`jaxlth.field_names`).
"""

from __future__ import annotations

import difflib
import json
from typing import Any

import ml_collections

from jaxlth import steps as step_specs
from jaxlth import subsets
from jaxlth.data import check as check_data
from jaxlth.data import default_config as default_data_config
from jaxlth.data import selection, streams
from jaxlth.errors import UserError
from jaxlth.field_names import RENAMED, migrate, migrate_saved, notice_renamed, renamed  # noqa: F401  (re-exported)
from jaxlth.training import hyper, trainable
from jaxlth.training import pretrained as pretrained_lib

# Fields of the common part that may differ between a workdir's saved config and a rerun on it: how
# it runs, and where the data comes from (the same dataset from IDX files, TFDS or a download; a
# notebook picks what works in its runtime), never what is computed. Each experiment adds its own
# (Experiment.may_change).
COMMON_MAY_CHANGE = (
    "progress",
    "on_nan",
    "data.source",
    "data.download",
    "data.dir",
    "data.tfds_data_dir",
    "data.stream_threads",
    "data.text_cache",  # where tokenized text is cached: the same arrays wherever it lives
    "log",  # what watches the run (TensorBoard, W&B): never what is computed
)
DTYPES = ("float32", "bfloat16")  # train.dtype
ON_NAN = ("stop", "mask_replicate")  # what a replicate whose loss or weights turn non-finite does
WANDB_MODES = ("", "online", "offline")  # log.wandb_mode ("": wandb's own choice, e.g. $WANDB_MODE)


def pruning_config() -> ml_collections.ConfigDict:
    """The ``pruning`` block: what may be pruned, read by every experiment that prunes or masks."""
    c = ml_collections.ConfigDict()
    c.layers_to_ignore = ()  # regular expressions searched in e.g. "output/kernel": those kernels are never pruned
    c.model_defaults = True  # also keep dense what the model keeps dense (ViT: patch embedding) and a pretrained head
    return c


def log_config() -> ml_collections.ConfigDict:
    """The ``log`` block: writers fed the rows of ``results.csv`` as they are written (:mod:`jaxlth.watching`)."""
    c = ml_collections.ConfigDict()
    c.tensorboard = False  # TensorBoard event files under <workdir>/tensorboard/ (needs tensorboardX)
    c.wandb_project = ""  # a Weights & Biases project: one W&B run per workdir ("": none; needs wandb)
    c.wandb_entity = ""  # the W&B user or team ("": wandb's default)
    c.wandb_mode = ""  # online | offline ("": wandb's own choice, e.g. $WANDB_MODE)
    return c


def common_config() -> ml_collections.ConfigDict:
    """The fields every experiment shares: what runs, seeds, data, model, pruning, training, bookkeeping."""
    c = ml_collections.ConfigDict()
    c.experiment = "train"
    c.experiment_module = ""  # a module outside jaxlth that declares EXPERIMENT (docs/extending.md)
    c.seed = 0  # initialisation of replicate r uses seed + r
    c.data_seed = 0  # SGD noise (order, augmentation) of replicate r uses data_seed + r
    c.replicates = 1

    c.data = default_data_config()

    c.model = ml_collections.ConfigDict()
    c.model.name = "lenet_300_100"
    c.model.options = ml_collections.ConfigDict()  # extra keyword arguments, e.g. width
    pretrained_lib.add_fields(c.model)  # model.pretrained*: start from a checkpoint (docs/pretrained.md)

    c.pruning = pruning_config()

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
    c.train.schedule = "constant"  # constant | step | cosine | linear
    c.train.decay_steps = ""  # where a cosine or linear decay reaches 0 ("": train.steps)
    c.train.milestones = ""  # comma-separated step specs, for schedule=step
    c.train.gamma = 0.1
    c.train.warmup = "0it"
    c.train.dtype = "float32"  # float32 | bfloat16 (activations and matmuls; weights, optimizer, BN statistics float32)
    c.train.trainable = ()  # regular expressions of the parameters trained, or "batchnorm"; (): all (the rest frozen)

    c.eval_every = "1ep"
    c.eval_batch_size = 2000
    c.eval_train = False  # also evaluate on the whole (unaugmented) training set
    c.checkpoint_every = "1ep"
    c.keep_checkpoints = 3
    c.progress = True
    c.on_nan = "stop"  # stop | mask_replicate: a replicate whose loss or weights turn non-finite
    c.log = log_config()
    return c


COMMON = tuple(common_config().keys())  # the top-level names of the common fields and blocks


# ----- reading config files --------------------------------------------------------------------------
def unknown_field(config: ml_collections.ConfigDict, dotted: str) -> str | None:
    """``"unknown config field train.stepz (did you mean train.steps?)"`` when ``dotted`` names no
    field of ``config``; ``None`` when it does."""
    parts = dotted.split(".")
    node = config
    for i, part in enumerate(parts):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            keys = list(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
            close = difflib.get_close_matches(part, keys, n=1)
            hint = f" (did you mean {'.'.join([*parts[:i], close[0]])}?)" if close else ""
            return f"unknown config field {dotted}{hint}"
        node = node[part]
    return None


def get(config, dotted: str) -> Any:
    """The value of the dotted field ``dotted`` of a ConfigDict or dict."""
    node = config
    for part in dotted.split("."):
        node = node[part]
    return node


def set_field(config: ml_collections.ConfigDict, dotted: str, value: Any) -> None:
    """Sets the dotted field (a list becomes a tuple, as configs hold tuples)."""
    *parents, leaf = dotted.split(".")
    node = config
    for part in parents:
        node = node[part]
    value = tuple(value) if isinstance(value, list) else value
    if parents == ["train"] and leaf in hyper.FIELDS and tuple in (type(value), type(node.get(leaf))):
        with node.ignore_type():  # a number or a tuple of numbers: a hyper-parameter sweep
            node[leaf] = value
        return
    node[leaf] = value


# ----- checking the common fields --------------------------------------------------------------------
def _check(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


def check(config: ml_collections.ConfigDict, streaming: tuple[str, ...] = (), sweeping: tuple[str, ...] = ()) -> None:
    """Raises :class:`UserError` with one sentence for the first problem of the common fields; reads
    no data. ``streaming``: the experiments that can train on a streamed dataset; ``sweeping``: those
    that train hyper-parameter sweeps (``train.lr``, ... as tuples)."""
    _check(
        isinstance(config.replicates, int) and config.replicates >= 1,
        f"replicates must be a positive integer, got {config.replicates!r}",
    )
    _check(
        isinstance(config.train.batch_size, int) and config.train.batch_size >= 1,
        f"train.batch_size must be a positive integer, got {config.train.batch_size!r}",
    )
    grid = hyper.check(config, sweeping)  # the tuples of a sweep
    for field in ("train.steps", "eval_every", "checkpoint_every", "train.warmup"):
        if field == "train.warmup" and "warmup" in grid.fields:
            continue
        spec = step_specs.parse(get(config, field), field)
        _check(field == "train.warmup" or spec.to_steps(1) > 0, f"{field} must be longer than 0 steps")
    if config.train.get("decay_steps", ""):
        decay = step_specs.parse(config.train.decay_steps, "train.decay_steps")
        _check(decay.to_steps(1) > 0, "train.decay_steps must be longer than 0 steps")
    step_specs.parse_list(config.train.milestones, 1, "train.milestones")
    trainable.patterns(config.train)  # a tuple of valid regular expressions (what they match: with the model)
    _check(config.eval_batch_size >= 1, f"eval_batch_size must be positive, got {config.eval_batch_size}")
    _check(config.keep_checkpoints >= 1, f"keep_checkpoints must be at least 1, got {config.keep_checkpoints}")
    _check(
        config.train.get("dtype", "float32") in DTYPES,
        f"train.dtype must be one of {', '.join(DTYPES)}, got {config.train.get('dtype')!r}",
    )
    _check(
        config.get("on_nan", "stop") in ON_NAN,
        f"on_nan must be one of {', '.join(ON_NAN)}, got {config.get('on_nan')!r}",
    )
    if "log" in config:
        check_log(config.log)
    pretrained_lib.check_fields(config.model)
    _check(
        isinstance(config.pruning.get("model_defaults", True), bool),
        f"pruning.model_defaults must be True or False, got {config.pruning.get('model_defaults')!r}",
    )
    ignore = config.pruning.layers_to_ignore
    _check(
        isinstance(ignore, (tuple, list)) and all(isinstance(p, str) for p in ignore),
        f"pruning.layers_to_ignore must be a tuple of regular expressions, got {ignore!r}",
    )
    if "subset" in config.data:
        selection.check(config.data.subset, "data.subset")
        subsets.check_source(config.data.subset, training_set(config), "data.subset")
    check_data(config.data, streams(config.data))
    if streams(config.data):
        name = config.data.name
        _check(
            config.experiment in streaming,
            f"the {config.experiment} experiment needs the whole dataset in "
            f"memory, and {name} is streamed; streamed datasets serve "
            f"{', '.join(streaming)}",
        )
        _check(
            config.data.subset.keep == "all", f"data.subset needs the whole dataset in memory, and {name} is streamed"
        )


def check_log(log: ml_collections.ConfigDict) -> None:
    """The ``log`` block's checks (one sentence each)."""
    _check(isinstance(log.tensorboard, bool), f"log.tensorboard must be True or False, got {log.tensorboard!r}")
    for field in ("wandb_project", "wandb_entity"):
        _check(isinstance(log[field], str), f"log.{field} must be a string, got {log[field]!r}")
    _check(
        log.wandb_mode in WANDB_MODES,
        f"log.wandb_mode must be one of online, offline or empty (wandb's own choice), got {log.wandb_mode!r}",
    )


def training_set(config: ml_collections.ConfigDict) -> dict:
    """The data block (a dict) of the training set before ``data.subset`` is taken: what a scores
    run whose scores choose that subset must have scored."""
    data = to_dict(config)["data"]
    data["subset"] = to_dict(selection.default_config())
    return data


def to_dict(config: ml_collections.ConfigDict) -> dict:
    """The config as plain JSON-compatible data (tuples become lists)."""
    return json.loads(config.to_json())


# ----- comparing configs -----------------------------------------------------------------------------
_MISSING = "<missing>"


def differences(saved: dict, current: dict, may_change=(), defaults: dict | None = None, prefix: str = "") -> list[str]:
    """Dotted names of the fields whose values differ, with both values (ignoring ``may_change``).

    A field ``saved`` lacks counts as its value in ``defaults`` (the value the code used before the
    field existed), so workdirs written by an older jaxlth stay valid.
    """
    defaults = defaults or {}
    out = []
    for key in sorted(set(saved) | set(current)):
        name = f"{prefix}{key}"
        if name in may_change:
            continue
        default = defaults.get(key, _MISSING) if isinstance(defaults, dict) else _MISSING
        a, b = saved.get(key, default), current.get(key, _MISSING)
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(differences(a, b, may_change, default if isinstance(default, dict) else {}, name + "."))
        elif a != b:
            out.append(f"{name}: {a!r} there, {b!r} here")
    return out
