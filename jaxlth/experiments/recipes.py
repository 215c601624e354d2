"""The whole config: the common fields and every experiment's block, as recipes build on it.

A recipe in ``configs/`` starts from :func:`base_config`, sets data, model, training and the
paper's settings of each experiment's block, and ends with ``return choose(c, arg)``, so
``configs/NAME.py:EXPERIMENT`` works for every experiment, including ones added after the recipe
was written. :func:`validate` checks a config before anything is loaded; :func:`from_file` is the
command line's ``--config PATH[:ARG] --config.KEY=VALUE`` from Python; :func:`relevant` is the part
of a config its experiment reads, which a rerun on a workdir must not change.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import ml_collections

from jaxlth import fields
from jaxlth.errors import UserError
from jaxlth.experiments import registry
from jaxlth.experiments.protocol import Experiment


def base_config() -> ml_collections.ConfigDict:
    """Every field with its default: the common fields and the block of every known experiment."""
    c = fields.common_config()
    for experiment in registry.all_experiments().values():
        if experiment.defaults is not None:
            c[experiment.name] = experiment.defaults()
    return c


def with_block(config: ml_collections.ConfigDict, experiment: Experiment) -> ml_collections.ConfigDict:
    """``config`` with ``experiment``'s block added (its defaults) when it lacks it."""
    if experiment.defaults is not None and experiment.name not in config:
        config[experiment.name] = experiment.defaults()
    return config


def choose(config: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
    """``config`` set to run the experiment named by a recipe's argument (``None``: ``train``).

    An experiment of ``config.experiment_module`` (a module outside jaxlth) is added first.
    """
    if config.get("experiment_module", ""):
        registry.add(config.experiment_module)
    names = registry.names()
    name = arg or "train"
    if name not in names:
        raise ValueError(f"unknown config argument {arg!r}; use {', '.join(repr(n) for n in names)}")
    config.experiment = name
    return with_block(config, registry.get(name))


def validate(config: ml_collections.ConfigDict) -> Experiment:
    """Raises :class:`UserError` with one sentence for the first problem found; returns the experiment.

    Checks the common fields, then calls the experiment's own ``validate``; reads no data.
    """
    experiment = registry.of_config(config)
    if experiment.defaults is not None and experiment.name not in config:
        raise UserError(
            f"the config has no {experiment.name} block; build it with jaxlth.config.base_config() or choose()"
        )
    kinds = registry.all_experiments().items()
    fields.check(config, tuple(name for name, e in kinds if e.streamable), tuple(name for name, e in kinds if e.sweeps))
    experiment.validate(config)
    return experiment


def load_file(path: str, arg: str | None = None) -> ml_collections.ConfigDict:
    """``get_config(arg)`` (``get_config()`` without ``arg``) of the config file ``path``; a file that
    is missing, does not parse, fails on import, has no ``get_config`` or whose ``get_config``
    raises is reported as one sentence naming the file (:class:`UserError`).

    Config files are Python by design (the recipes in ``configs/``): loading one runs its code."""
    if not os.path.isfile(path):
        raise UserError(
            f"the config file {path} does not exist (configs are in configs/, e.g. configs/lenet_fashion_mnist.py)"
        )
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
    return fields.migrate(config)


def from_file(spec: str, **overrides: Any) -> ml_collections.ConfigDict:
    """The config of ``PATH[:ARG]`` as the command line builds it, with dotted-name overrides.

    The notebook twin of ``--config PATH[:ARG] --config.KEY=VALUE``::

        config = from_file("configs/lenet_fashion_mnist.py:lottery", **{"lottery.levels": 3, "replicates": 2})
    """
    module = overrides.get("experiment_module")
    if module:
        registry.add(module)
    path, _, arg = spec.partition(":")
    config = load_file(path, arg or None)
    for dotted, value in overrides.items():
        if dotted in fields.RENAMED:
            fields.notice_renamed(dotted)
            dotted = fields.renamed(dotted)
        *parents, _ = dotted.split(".")
        if parents != ["model", "options"]:  # model options: the model checks them
            problem = fields.unknown_field(config, dotted)
            if problem:
                raise UserError(problem)
        fields.set_field(config, dotted, value)
    with_block(config, registry.of_config(config))
    validate(config)
    return config


def defaults() -> dict:
    """The default of every field (a dict): what a field missing from an older saved config counts as."""
    return fields.to_dict(base_config())


def may_change(experiment: Experiment) -> tuple[str, ...]:
    """The fields a rerun of ``experiment`` on its workdir may change."""
    return (*fields.COMMON_MAY_CHANGE, *experiment.may_change)


def relevant(config: dict, experiment: Experiment) -> dict:
    """The part of a config (a dict) that ``experiment`` reads: every common field and block
    (``train``, ``data``, ``model``, ``pruning``, ...), its own block and the fields of other blocks
    it declares in ``Experiment.reads``. The blocks of other experiments are left out."""
    out = {k: v for k, v in config.items() if k in fields.COMMON or k == experiment.name}
    for dotted in experiment.reads:
        block, _, field = dotted.partition(".")
        if isinstance(config.get(block), dict) and field in config[block]:
            out.setdefault(block, {})[field] = config[block][field]
    return out


def rerun_differences(saved: dict, current: dict, experiment: Experiment) -> list[str]:
    """What a rerun with ``current`` would change of the run saved with ``saved`` (both dicts, saved
    in today's field names): every field ``experiment`` reads except those it may change."""
    return fields.differences(
        relevant(saved, experiment), relevant(current, experiment), may_change(experiment), defaults()
    )


def finished_view(config: dict, experiment: Experiment) -> dict:
    """The fields that say what a finished run computed (``finished.json``)."""
    view = relevant(config, experiment)
    return {k: v for k, v in view.items() if k not in fields.COMMON_MAY_CHANGE}
