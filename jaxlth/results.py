"""The results of a workdir, read-only: ``load(workdir)`` for notebooks and figures.

``results.csv`` holds one row per measurement: the core :data:`COLUMNS` and the coordinates its
experiment declares (written by ``jaxlth.records``); a notebook gets everything with
``jaxlth.results.load(workdir)``, whose ``.config``, ``.table``, ``.params(...)`` and ``.mask(...)``
return plain Python, pandas and numpy objects. The object is the reader its experiment declares
(:class:`jaxlth.runs.Run` or a subclass with more readers: ``run.scores(...)`` of a scores run,
``run.fractions`` of a lottery run, ``run.copies(...)`` of an instability run, ...).
"""

from __future__ import annotations

import json

import pandas as pd
from flax import traverse_util

from jaxlth import runs, storage
from jaxlth.errors import UserError
from jaxlth.experiments import registry
from jaxlth.layout import CONFIG_FILE, Layout
from jaxlth.runs import COLUMNS, Run

__all__ = ["COLUMNS", "Run", "artifact_dir", "load", "load_many"]


def artifact_dir(workdir: str, name: str) -> str:
    """Where the named artifact (``init``, ``imp/level_03/mask``, ...) of a run is saved."""
    return Layout(workdir).artifact(name)


def load(workdir: str) -> Run:
    """The run saved in ``workdir``, read by its experiment's reader."""
    experiment = registry.of_config(runs.read_config(workdir))
    return experiment.reader(workdir, experiment.arms.main)


def load_many(pattern: str, swept: list[str] | None = None) -> pd.DataFrame:
    """The tables of every run whose workdir matches the glob ``pattern`` (e.g. ``"runs/sweep/*"``),
    stacked, with a column ``run`` (the workdir) and one column per swept config field (dotted
    name, e.g. ``"lottery.rewind"``): ``swept``, or by default every field whose value differs
    between the runs. Folders without a ``config.json`` are skipped.
    """
    workdirs = [d for d in storage.glob(pattern) if storage.isfile(Layout(d).config_file)]
    if not workdirs:
        raise UserError(f"no jaxlth run matches {pattern!r} (a workdir holds a {CONFIG_FILE})")
    loaded = [load(d) for d in workdirs]
    flat = [traverse_util.flatten_dict(run.config, sep=".") for run in loaded]
    if swept is None:
        names = list(dict.fromkeys(k for f in flat for k in f))
        swept = [k for k in names if len({json.dumps(f.get(k), sort_keys=True) for f in flat}) > 1]
    frames = []
    for run, fields in zip(loaded, flat):
        table = run.table.copy()
        table.insert(0, "run", run.workdir)
        for name in swept:
            value = fields.get(name)
            table[name] = [tuple(value) if isinstance(value, list) else value] * len(table)
        frames.append(table)
    return pd.concat(frames, ignore_index=True, sort=False)
