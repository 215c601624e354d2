"""The config of a run, for recipes and notebooks: ``base_config``, ``choose``, ``from_file``, ``validate``.

A recipe in ``configs/`` is a small Python file::

    from jaxlth.config import base_config, choose

    def get_config(arg=None):
        c = base_config()                # every field with its default
        c.model.name = "lenet_300_100"   # ... the paper's settings
        return choose(c, arg)            # configs/NAME.py:EXPERIMENT selects any experiment

The common fields and their checks are :mod:`jaxlth.fields`; each experiment's block is declared in
its folder (``jaxlth/experiments/<name>/``); :mod:`jaxlth.experiments.recipes` assembles them. Config
files are Python by design: loading one runs its code.
"""

from __future__ import annotations

from jaxlth.experiments import registry
from jaxlth.experiments.recipes import base_config, choose, from_file, load_file, validate
from jaxlth.fields import COMMON_MAY_CHANGE, common_config, to_dict, unknown_field

__all__ = [
    "COMMON_MAY_CHANGE",
    "base_config",
    "choose",
    "common_config",
    "from_file",
    "load_file",
    "to_dict",
    "unknown_field",
    "validate",
]


def __getattr__(name: str):
    """``EXPERIMENTS``: the names of every known experiment (jaxlth's, installed, and added)."""
    if name == "EXPERIMENTS":
        return registry.names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
