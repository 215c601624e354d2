"""The experiment kinds: jaxlth's own, those installed as entry points, and those a config names.

* jaxlth's own: every folder of ``jaxlth/experiments/`` is a kind, and its ``__init__.py``
  declares ``EXPERIMENT`` (the plain modules beside the folders are the machinery and helpers every
  kind shares);
* installed: an entry point of the group ``jaxlth.experiments`` in a package's metadata, naming a
  module that declares ``EXPERIMENT`` (or the :class:`Experiment` itself);
* named: ``experiment_module = "mypkg.myexp"`` in a config (``--config.experiment_module=...``), added
  with :func:`add` before the config is used (the command line, ``from_file``, ``results.load`` do).

Every declaration is checked once: a unique name, no block named like a common field, random
streams that overlap no other (:func:`jaxlth.rng.check`).
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import pkgutil
import types

from jaxlth import fields, rng
from jaxlth.errors import UserError
from jaxlth.experiments.protocol import Experiment

ENTRY_POINTS = "jaxlth.experiments"
_ADDED: dict[str, Experiment] = {}  # module name -> its experiment, for modules named by a config


def _declared(module: types.ModuleType | Experiment, origin: str) -> Experiment:
    experiment = module if isinstance(module, Experiment) else getattr(module, "EXPERIMENT", None)
    if not isinstance(experiment, Experiment):
        raise UserError(f"{origin} declares no EXPERIMENT = jaxlth.experiments.protocol.Experiment(...)")
    return experiment


@functools.cache
def builtin() -> tuple[Experiment, ...]:
    """jaxlth's own kinds: the folders of ``jaxlth/experiments/``."""
    package = importlib.import_module(__name__.rpartition(".")[0])
    found = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.ispkg:
            name = f"{package.__name__}.{info.name}"
            found.append(_declared(importlib.import_module(name), f"the experiment folder {name}"))
    return tuple(found)


@functools.cache
def installed() -> tuple[Experiment, ...]:
    """The kinds of the entry points ``jaxlth.experiments`` of installed packages."""
    found = []
    for point in importlib.metadata.entry_points(group=ENTRY_POINTS):
        try:
            loaded = point.load()
        except Exception as e:  # noqa: BLE001 (a broken plug-in is one sentence, not a traceback)
            raise UserError(
                f"the entry point {point.name} = {point.value} ({ENTRY_POINTS}) cannot be loaded: "
                f"{type(e).__name__}: {e}"
            ) from None
        found.append(_declared(loaded, f"the entry point {point.name} = {point.value}"))
    return tuple(found)


def add(module_name: str) -> Experiment:
    """Imports ``module_name`` (``experiment_module`` of a config) and adds the kind it declares."""
    if module_name not in _ADDED:
        try:
            module = importlib.import_module(module_name)
        except Exception as e:  # noqa: BLE001
            raise UserError(
                f"experiment_module {module_name} cannot be imported ({type(e).__name__}: {e}); it must "
                "be importable from this Python (installed, or on PYTHONPATH)"
            ) from None
        experiment = _declared(module, f"experiment_module {module_name}")
        if experiment.name in {e.name for e in (*builtin(), *installed())}:
            known = next(e for e in (*builtin(), *installed()) if e.name == experiment.name)
            if known is not experiment:
                raise UserError(
                    f"experiment_module {module_name} declares the experiment {experiment.name!r}, "
                    "which exists already; give it another name"
                )
        check_together((*builtin(), *installed(), *_ADDED.values(), experiment))
        _ADDED[module_name] = experiment
    return _ADDED[module_name]


def check_together(experiments: tuple[Experiment, ...]) -> dict[str, Experiment]:
    """``{name: Experiment}`` in listing order, after checking the declarations together (UserError)."""
    unique = list(dict.fromkeys(experiments))
    names = [e.name for e in unique]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"two experiment declarations share the name {twice[0]!r}")
    for experiment in unique:
        if experiment.defaults is not None and experiment.name in fields.COMMON:
            raise UserError(
                f"the experiment {experiment.name!r} has a config block named like the common field "
                f"{experiment.name!r}; give it another name"
            )
    try:
        rng.check([*rng.CORE, *(s for e in unique for s in e.streams)])
    except ValueError as e:
        raise UserError(str(e)) from None
    unique.sort(key=lambda e: (e.order, e.name))
    return {e.name: e for e in unique}


def all_experiments() -> dict[str, Experiment]:
    """``{name: Experiment}`` of every known kind, in listing order."""
    return check_together((*builtin(), *installed(), *_ADDED.values()))


def names() -> tuple[str, ...]:
    return tuple(all_experiments())


def get(name: str) -> Experiment:
    experiments = all_experiments()
    if name not in experiments:
        raise UserError(
            f"unknown experiment {name!r}; choose one of {', '.join(experiments)} (or name your own "
            "module with experiment_module)"
        )
    return experiments[name]


def of_config(config) -> Experiment:
    """The experiment a config (a ConfigDict or a saved config as a dict) selects, its module added first."""
    module = config.get("experiment_module", "") or ""
    if module:
        add(module)
    return get(config["experiment"])


def streams() -> list[rng.Stream]:
    """Every random stream: the core ones, then each experiment's."""
    return list(dict.fromkeys([*rng.CORE, *(s for e in all_experiments().values() for s in e.streams)]))
