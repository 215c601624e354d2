"""The results of a workdir, read-only: ``load(workdir)`` for notebooks and figures.

``results.csv`` holds one row per measurement: the core :data:`COLUMNS` and the coordinates its
experiment declares (written by ``jaxlth.records``); a notebook gets everything with
``jaxlth.results.load(workdir)``, whose ``.config``, ``.table``, ``.params(...)`` and ``.mask(...)``
return plain Python, pandas and numpy objects. The object is the reader its experiment declares
(:class:`jaxlth.runs.Run` or a subclass with more readers: ``run.scores(...)`` of a scores run,
``run.fractions`` of a lottery run, ``run.copies(...)`` of an instability run, ...).
:func:`compose` and :func:`mask_agreement` read the masks of several runs (or replicates) at a level:
their intersection or union, and how much they overlap against chance (:mod:`jaxlth.pruning.mask_algebra`).
"""

from __future__ import annotations

import json
from typing import Sequence

import jax
import numpy as np
import pandas as pd
from flax import traverse_util

from jaxlth import runs, storage
from jaxlth.errors import UserError
from jaxlth.experiments import registry
from jaxlth.layout import CONFIG_FILE, Layout
from jaxlth.pruning import mask_algebra
from jaxlth.runs import COLUMNS, Run

__all__ = ["COLUMNS", "Run", "artifact_dir", "compose", "load", "load_many", "mask_agreement"]


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


def compose(
    sources: Sequence[str | Run], level: int | None = None, op: str = "intersection", arm=None, replicate=None
) -> dict:
    """The ``op`` (``"intersection"`` or ``"union"``) of the masks of ``sources`` at ``level``: a nested
    dict of boolean numpy arrays, as :meth:`Run.mask` returns.

    Each source is a :class:`Run` or a workdir, optionally with a selection ``DIR:arm=,level=,replicate=,
    prune_fraction=`` (the syntax of ``lottery.mask_source``; ``lr=``, ... in a hyper-parameter sweep)
    that overrides the arguments, so ``["runs/a:replicate=0", "runs/a:replicate=1"]`` meets two seeds of
    one run. ``level`` (default: each source's last finished level) and ``arm`` (default: its main arm)
    name the masks. A source whose replicate is chosen gives one mask, one without its replicates
    stacked; stacks pair replicate ``r`` with ``r``, one mask meets every replicate, and the result
    has the replicate axis first when any source gave a stack.
    """
    masks, _ = _masks(sources, level, arm, replicate, "results.compose")
    return jax.tree.map(np.asarray, mask_algebra.compose(op, *masks))


def mask_agreement(sources: Sequence[str | Run], level: int | None = None, arm=None, replicate=None) -> pd.DataFrame:
    """How much the masks of ``sources`` (chosen as in :func:`compose`) agree, against chance: one row
    per prunable layer and one ``layer = "all"`` over all of them (per ``replicate`` when a source gave
    a stack), with the layer's ``weights``, each mask's kept fraction ``density_0`` .. ``density_{k-1}``,
    the fractions their ``intersection`` and ``union`` keep, the ``overlap`` |∩| / |∪| and the
    ``chance`` overlap of random masks of the same per-layer counts
    (:mod:`jaxlth.pruning.mask_algebra`)."""
    masks, replicate_axis = _masks(sources, level, arm, replicate, "results.mask_agreement")
    return pd.DataFrame(mask_algebra.agreement_rows(*masks, replicate_axis=replicate_axis))


def _masks(sources, level, arm, replicate, where: str) -> tuple[list[dict], bool]:
    """The mask each source chooses (:func:`compose`), paired by replicate (:func:`.mask_algebra.paired`)."""
    if isinstance(sources, (str, Run)) or not len(sources):
        raise UserError(f"{where} takes a list of runs or workdirs, got {sources!r}")
    masks, stacked = [], []
    for source in sources:
        run, chosen = (source, {}) if isinstance(source, Run) else _open(str(source), where)
        allowed = ("arm", "level", "replicate", *run.stacked, *run.grid.fields)
        unknown = [k for k in chosen if k not in allowed]
        if unknown:
            raise UserError(f"{where} {run.workdir}: cannot choose {unknown[0]!r}; choose by {', '.join(allowed)}")
        coordinates = {k: v for k, v in chosen.items() if k in run.stacked or k in run.grid.fields}
        which, rep = chosen.get("arm") or arm or run.default_arm, chosen.get("replicate", replicate)
        masks.append(run.mask(run.level(chosen.get("level", level), which), rep, which, **coordinates))
        unchosen = [k for k, v in run.stacked.items() if len(v) > 1 and k not in coordinates]
        stacked.append(rep is None or bool(unchosen + [k for k in run.grid.fields if k not in coordinates]))
    return mask_algebra.paired(masks, stacked)


def _open(spec: str, where: str) -> tuple[Run, dict]:
    path, chosen = runs.split_selection(spec, where)
    return load(path), chosen
