"""The experiment kinds: every module (or package) of ``jaxlth.experiments`` that defines ``EXPERIMENT``."""

from __future__ import annotations

import functools
import importlib
import pkgutil

from jaxlth.errors import UserError
from jaxlth.experiments.protocol import Experiment

# Modules of jaxlth.experiments that are machinery, not experiments (skipped without importing).
MACHINERY = {"context", "protocol", "registry", "source", "networks", "replicates"}


@functools.cache
def all_experiments() -> dict[str, Experiment]:
    """``{name: Experiment}`` in listing order."""
    import jaxlth.experiments as package  # noqa: PLC0415

    found = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_") or info.name in MACHINERY:
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        experiment = getattr(module, "EXPERIMENT", None)
        if isinstance(experiment, Experiment):
            found.append(experiment)
    found.sort(key=lambda e: (e.order, e.name))
    names = [e.name for e in found]
    if len(set(names)) != len(names):
        raise RuntimeError(f"two experiment modules declare the same name: {names}")
    return {e.name: e for e in found}


def names() -> tuple[str, ...]:
    return tuple(all_experiments())


def get(name: str) -> Experiment:
    experiments = all_experiments()
    if name not in experiments:
        raise UserError(f"unknown experiment {name!r}; choose one of {', '.join(experiments)}")
    return experiments[name]
