"""The base configuration every recipe in ``configs/`` starts from, and its validation.

Field names are a contract with users: ``experiment``, ``seed``, ``replicates``, ``train.steps``,
``train.batch_size``, ``checkpoint_every``, ... Lengths are step specs. The common fields are
written here; each experiment's block (``lottery``, ``instability``, ...) is declared by its
module in ``jaxlth.experiments`` and added by :func:`base_config`.
"""

from __future__ import annotations

import importlib.util
import json
import os
from typing import Any

import ml_collections

from jaxlth import steps as step_specs
from jaxlth import subsets
from jaxlth.data import default_config as default_data_config
from jaxlth.data import streams
from jaxlth.data import selection
from jaxlth.errors import UserError

# Fields of the common part that may differ between a workdir's saved config and a rerun on it: how
# it runs, and where the data comes from (the same dataset from IDX files, TFDS or a download; a
# notebook picks what works in its runtime), never what is computed. Each experiment adds its own
# (Experiment.may_change).
COMMON_MAY_CHANGE = ("progress", "on_nan", "data.source", "data.download", "data.dir", "data.tfds_data_dir",
                     "data.stream_threads")
DTYPES = ("float32", "bfloat16")  # train.dtype
ON_NAN = ("stop", "mask_replicate")  # what a replicate whose loss or weights turn non-finite does


def _registry():
    from jaxlth.experiments import registry  # noqa: PLC0415  (experiments import this module)

    return registry


def __getattr__(name: str):
    """``EXPERIMENTS`` and ``RERUN_MAY_CHANGE``, assembled from the experiment modules."""
    if name == "EXPERIMENTS":
        return _registry().names()
    if name == "RERUN_MAY_CHANGE":
        return COMMON_MAY_CHANGE + tuple(f for e in _registry().all_experiments().values() for f in e.may_change)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def common_config() -> ml_collections.ConfigDict:
    """The fields every experiment shares: what runs, seeds, data, model, training, bookkeeping."""
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
    c.train.dtype = "float32"  # float32 | bfloat16 (activations and matmuls; weights, optimizer, BN statistics float32)

    c.eval_every = "1ep"
    c.eval_batch_size = 2000
    c.eval_train = False  # also evaluate on the whole (unaugmented) training set
    c.checkpoint_every = "1ep"
    c.keep_checkpoints = 3
    c.progress = True
    c.on_nan = "stop"  # stop | mask_replicate: a replicate whose loss or weights turn non-finite
    return c


def base_config() -> ml_collections.ConfigDict:
    """Every field with its default: the common fields and every experiment's block."""
    c = common_config()
    for experiment in _registry().all_experiments().values():
        if experiment.defaults is not None:
            c[experiment.name] = experiment.defaults()
    return c


def choose(config: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
    """``config`` set to run the experiment named by a recipe's argument (``None``: ``train``).

    A recipe sets data, model and training and the paper's settings of each experiment's block,
    then ends with ``return choose(c, arg)``: ``configs/NAME.py:EXPERIMENT`` works for every
    experiment, including ones added after the recipe was written.
    """
    names = _registry().names()
    name = arg or "train"
    if name not in names:
        raise ValueError(f"unknown config argument {arg!r}; use {', '.join(repr(n) for n in names)}")
    config.experiment = name
    return config


def from_file(spec: str, **overrides: Any) -> ml_collections.ConfigDict:
    """The config of ``PATH[:ARG]`` as the command line builds it, with dotted-name overrides.

    The notebook twin of ``--config PATH[:ARG] --config.KEY=VALUE``::

        config = from_file("configs/lenet_fashion_mnist.py:lottery", **{"lottery.levels": 3, "replicates": 2})
    """
    path, _, arg = spec.partition(":")
    config = load_file(path, arg or None)
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        if parents != ["model", "options"]:  # model options: the model checks them
            problem = unknown_field(config, dotted)
            if problem:
                raise UserError(problem)
        node = config
        for part in parents:
            node = node[part]
        node[leaf] = tuple(value) if isinstance(value, list) else value
    validate(config)
    return config


def load_file(path: str, arg: str | None = None) -> ml_collections.ConfigDict:
    """``get_config(arg)`` (``get_config()`` without ``arg``) of the config file ``path``; a file that
    is missing, does not parse, fails on import, has no ``get_config`` or whose ``get_config``
    raises is reported as one sentence naming the file (:class:`UserError`)."""
    if not os.path.isfile(path):
        raise UserError(f"the config file {path} does not exist (configs are in configs/, e.g. "
                        "configs/lenet_fashion_mnist.py)")
    with open(path, encoding="utf-8") as f:
        source = f.read()
    try:
        compile(source, path, "exec")
    except SyntaxError as e:
        raise UserError(f"the config file {path} has a syntax error at line {e.lineno}: {e.msg}") from None
    module_spec = importlib.util.spec_from_file_location(f"jaxlth_config_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 (whatever the file does wrong, one sentence)
        raise UserError(f"the config file {path} fails when imported: {type(e).__name__}: {e}") from None
    if not callable(getattr(module, "get_config", None)):
        raise UserError(f"the config file {path} defines no get_config() function")
    call = f"get_config({arg!r})" if arg else "get_config()"
    try:
        config = module.get_config(arg) if arg else module.get_config()
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001
        raise UserError(f"{call} of {path} fails: {type(e).__name__}: {e}") from None
    if not isinstance(config, ml_collections.ConfigDict):
        raise UserError(f"{call} of {path} returns {type(config).__name__}, not an ml_collections ConfigDict")
    return config


def unknown_field(config: ml_collections.ConfigDict, dotted: str) -> str | None:
    """``"unknown config field train.stepz (did you mean train.steps?)"`` when ``dotted`` names no
    field of ``config``; ``None`` when it does."""
    import difflib  # noqa: PLC0415

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


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises :class:`UserError` with one sentence for the first problem found.

    Checks the common fields, then calls the experiment's own ``validate``; reads no data.
    """
    experiment = _registry().get(config.experiment)
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
    _check(config.train.get("dtype", "float32") in DTYPES,
           f"train.dtype must be one of {', '.join(DTYPES)}, got {config.train.get('dtype')!r}")
    _check(config.get("on_nan", "stop") in ON_NAN, f"on_nan must be one of {', '.join(ON_NAN)}, got {config.get('on_nan')!r}")
    if "subset" in config.data:
        selection.check(config.data.subset, "data.subset")
        subsets.check_source(config.data.subset, training_set(config), "data.subset")
    if streams(config.data):
        _check_streamed(config)
    experiment.validate(config)


STREAMED_EXPERIMENTS = ("train", "lottery")  # the experiments that read a streamed dataset


def _check_streamed(config: ml_collections.ConfigDict) -> None:
    """A streamed dataset is read in training order only: what needs it whole or by example is refused."""
    name = config.data.name
    _check(config.experiment in STREAMED_EXPERIMENTS,
           f"the {config.experiment} experiment needs the whole dataset in memory, and {name} is streamed; "
           f"streamed datasets serve {', '.join(STREAMED_EXPERIMENTS)}")
    _check(config.data.subset.keep == "all", f"data.subset needs the whole dataset in memory, and {name} is streamed")
    if config.experiment == "lottery":
        _check(config.lottery.average_copies == 1,
               f"lottery.average_copies > 1 needs the whole dataset in memory, and {name} is streamed")
        _check(config.lottery.pretrain_data.keep == "all",
               f"lottery.pretrain_data needs the whole dataset in memory, and {name} is streamed")


def training_set(config: ml_collections.ConfigDict) -> dict:
    """The data block (a dict) of the training set before ``data.subset`` is taken: what a scores
    run whose scores choose that subset must have scored."""
    data = to_dict(config)["data"]
    data["subset"] = to_dict(selection.default_config())
    return data


def _get(config: ml_collections.ConfigDict, dotted: str) -> Any:
    node = config
    for part in dotted.split("."):
        node = node[part]
    return node


def to_dict(config: ml_collections.ConfigDict) -> dict:
    """The config as plain JSON-compatible data (tuples become lists)."""
    return json.loads(config.to_json())


_MISSING = "<missing>"


def relevant(config: dict, experiment: str) -> dict:
    """The part of a config (as a dict) that the experiment named ``experiment`` reads.

    The common fields, the experiment's own block and the fields of other blocks it declares in
    ``Experiment.reads``; the blocks of other experiments are left out.
    """
    experiments = _registry().all_experiments()
    own = experiments.get(experiment)
    blocks = set(experiments)
    out = {k: v for k, v in config.items() if k not in blocks or k == experiment}
    for dotted in own.reads if own is not None else ():
        block, _, field = dotted.partition(".")
        if isinstance(config.get(block), dict) and field in config[block]:
            out.setdefault(block, {})[field] = config[block][field]
    return out


def differences(saved: dict, current: dict, prefix: str = "", defaults: dict | None = None) -> list[str]:
    """Dotted names of the fields whose values differ (ignoring ``RERUN_MAY_CHANGE``).

    A field ``saved`` lacks counts as its default in :func:`base_config` (the value the code used
    before the field existed), so workdirs written by an older jaxlth stay valid.
    """
    may_change = __getattr__("RERUN_MAY_CHANGE")
    if defaults is None:
        defaults = to_dict(base_config())
        for name in prefix.rstrip(".").split(".") if prefix else []:
            defaults = defaults.get(name, {}) if isinstance(defaults, dict) else {}
    out = []
    for key in sorted(set(saved) | set(current)):
        name = f"{prefix}{key}"
        if name in may_change:
            continue
        default = defaults.get(key, _MISSING) if isinstance(defaults, dict) else _MISSING
        a, b = saved.get(key, default), current.get(key, _MISSING)
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(differences(a, b, name + ".", default if isinstance(default, dict) else {}))
        elif a != b:
            out.append(f"{name}: {a!r} there, {b!r} here")
    return out
