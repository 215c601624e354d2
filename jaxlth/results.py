"""The results of a workdir, read-only: ``load(workdir)`` for notebooks and figures.

``results.csv`` holds one row per measurement: the core :data:`COLUMNS` and the coordinates its
experiment declares (written by ``jaxlth.records``); a notebook gets
everything with ``jaxlth.results.load(workdir)``, whose ``.config``, ``.table``, ``.params(...)``
and ``.mask(...)`` return plain Python, pandas and numpy objects.
"""

from __future__ import annotations

import io
import json
import os
import sys
from typing import Any

import numpy as np
import pandas as pd
from flax import traverse_util

from jaxlth import arms, checkpoint, records, storage, subsets
from jaxlth.errors import UserError
from jaxlth.layout import CONFIG_FILE, Layout, level_name, spawn_name
from jaxlth.training import copies as copies_lib

# Every row has these; each experiment adds its own coordinates (Experiment.columns).
COLUMNS = records.CORE_COLUMNS

PyTree = Any


def artifact_dir(workdir: str, name: str) -> str:
    """Where the named artifact (``init``, ``imp/level_03/mask``, ...) of a run is saved."""
    return Layout(workdir).artifact(name)


def upgrade(table: pd.DataFrame) -> pd.DataFrame:
    """A table written by an older jaxlth in today's terms: renamed arms, and the perturbation's
    noise scale moved from ``pair`` to ``noise_scale``."""
    table = table.copy()
    if "arm" in table:
        table["arm"] = table["arm"].replace(arms.RENAMED)
    if "pair" in table and "arm" in table:
        old = (table["arm"] == arms.PERTURB) & table["pair"].notna()
        if "noise_scale" not in table:
            table["noise_scale"] = np.nan
        if old.any():
            table["noise_scale"] = table["noise_scale"].astype(float)
            table.loc[old, "noise_scale"] = pd.to_numeric(table.loc[old, "pair"], errors="coerce")
            table.loc[old, "pair"] = np.nan
    return table


class Run:
    """A finished or running experiment in a workdir, read-only."""

    def __init__(self, workdir: str):
        self.workdir = workdir
        self.layout = Layout(workdir)
        config_path = self.layout.config_file
        if not storage.exists(config_path):
            raise UserError(f"{workdir} holds no jaxlth run (no {CONFIG_FILE})")
        self.config: dict = json.loads(storage.read_text(config_path))

    @property
    def experiment(self) -> str:
        return self.config["experiment"]

    @property
    def table(self) -> pd.DataFrame:
        """All measurements as a tidy DataFrame (empty with the right columns before the first)."""
        path = self.layout.results_file
        if not storage.exists(path):
            return pd.DataFrame(columns=list(COLUMNS))
        text, cut = records.complete_text(path)
        if cut:
            print(f"jaxlth: {path} ends in a line cut short by a crash; that line is ignored", file=sys.stderr)
        table = upgrade(pd.read_csv(io.StringIO(text)))
        if self.experiment == "lottery" and "prune_fraction" not in table and len(self.fractions) == 1:
            # written before sweeps existed; the pretraining to the rewind point is every fraction's
            table["prune_fraction"] = np.where(table["arm"] == arms.PRETRAIN, np.nan, self.fractions[0])
        return table

    @property
    def fractions(self) -> tuple[float, ...]:
        """(lottery runs) The prune fractions: one, or the ``F`` of a sweep; ``()`` for other runs."""
        if self.experiment != "lottery":
            return ()
        value = self.config.get("lottery", {}).get("prune_fraction", 0.2)
        return tuple(float(v) for v in value) if isinstance(value, (list, tuple)) else (float(value),)

    @property
    def default_arm(self) -> str:
        """The main arm: ``imp`` for lottery runs, ``main`` for plain training."""
        return {"lottery": arms.IMP, "one_shot": arms.ONE_SHOT}.get(self.experiment, arms.MAIN)

    def levels(self, arm: str | None = None) -> list[int]:
        """The levels of ``arm`` whose training has finished (their final network is saved)."""
        base = self.layout.arm_dir(arm or self.default_arm)
        if not storage.isdir(base):
            return []
        found = []
        for name in storage.listdir(base):
            if name.startswith("level_") and checkpoint.artifact_exists(os.path.join(base, name, "final")):
                found.append(int(name[len("level_"):]))
        return sorted(found)

    def _level(self, level: int | None, arm: str) -> int:
        done = self.levels(arm)
        if level is None:
            if not done:
                raise UserError(f"{self.workdir} has no finished level of arm {arm!r} yet")
            return done[-1]
        if level not in done:
            raise UserError(f"level {level} of arm {arm!r} is not finished in {self.workdir}; finished: {done}")
        return level

    def _replicate(self, tree: PyTree, replicate: int | None, prune_fraction: float | None = None) -> PyTree:
        """``tree``'s networks of ``replicate`` (all: ``None``) and of ``prune_fraction`` (a sweep's
        artifacts stack ``R * F`` networks, :mod:`jaxlth.training.copies`; ``None`` keeps them all)."""
        replicates, count = self.config["replicates"], max(1, len(self.fractions))
        if replicate is not None and not 0 <= replicate < replicates:
            raise UserError(f"replicate must be in [0, {replicates}), got {replicate}")
        if count == 1 and prune_fraction is None:
            return tree if replicate is None else _select(tree, replicate)
        fraction = None
        if prune_fraction is not None:
            matches = [f for f, p in enumerate(self.fractions) if abs(p - float(prune_fraction)) < 1e-9]
            if not matches:
                raise UserError(f"prune_fraction {prune_fraction} is not one of this run's {self.fractions}")
            fraction = matches[0]
        leading = _leading(tree)
        if leading == replicates and count > 1:  # shared by every fraction (init, rewind point)
            tree = _map(tree, lambda x: np.repeat(np.asarray(x), count, axis=0))
        rows = copies_lib.positions(replicates, count, replicate, fraction)
        pick = rows[0] if replicate is not None and fraction is not None else rows
        return _map(tree, lambda x: np.asarray(x)[pick])

    def _load(self, name: str) -> PyTree:
        return checkpoint.load_artifact(self.layout.artifact(name))

    def network(self, level: int | None = None, replicate: int | None = None, which: str = "final",
                arm: str | None = None, prune_fraction: float | None = None) -> dict:
        """``{"params", "batch_stats"}`` of a network as numpy arrays (see :meth:`params`)."""
        arm = arm or self.default_arm
        if which == "init":
            network = self._load("init")
        elif which == "final":
            network = self._load(f"{arm}/{level_name(self._level(level, arm))}/final")
        elif which == "rewind":
            if not checkpoint.artifact_exists(self.layout.artifact("rewind")):
                raise UserError(f"a {self.experiment!r} run has no rewind point")
            level = self._level(level, arm)
            start = self.layout.level_artifact(arm, level, "start")
            network = checkpoint.load_artifact(start) if checkpoint.artifact_exists(start) else self._load("rewind")
            network = self._replicate(network, replicate, prune_fraction)
            mask = self.mask(level, replicate, arm, prune_fraction)
            network["params"] = _apply_mask(network["params"], mask)
            return network
        else:
            raise UserError(f"which must be 'init', 'rewind' or 'final', got {which!r}")
        return self._replicate(network, replicate, prune_fraction)

    def params(self, level: int | None = None, replicate: int | None = None, which: str = "final",
               arm: str | None = None, prune_fraction: float | None = None) -> PyTree:
        """Parameters as numpy arrays; ``replicate=None`` stacks all replicates on axis 0.

        ``which``: ``"init"`` (step 0), ``"rewind"`` (the network level ``level`` starts from:
        the rewind weights on its mask, or a branch's transformed weights) or ``"final"``.
        ``level`` defaults to the last finished level and is ignored by plain training runs;
        ``arm`` defaults to ``"imp"`` (lottery) or ``"main"`` (train). A prune-fraction sweep
        stacks ``R * F`` networks (fraction ``f`` of replicate ``r`` at ``r * F + f``);
        ``prune_fraction`` picks one fraction's ``R`` networks.
        """
        return self.network(level, replicate, which, arm, prune_fraction)["params"]

    def batch_stats(self, level: int | None = None, replicate: int | None = None, which: str = "final",
                    arm: str | None = None, prune_fraction: float | None = None) -> PyTree:
        """BatchNorm statistics saved with :meth:`params` (``{}`` for models without BN)."""
        return self.network(level, replicate, which, arm, prune_fraction).get("batch_stats", {})

    def mask(self, level: int | None = None, replicate: int | None = None, arm: str | None = None,
             prune_fraction: float | None = None) -> PyTree:
        """The mask of a level: booleans over the prunable kernels (all True when dense)."""
        arm = arm or self.default_arm
        if level is None:
            level = self._level(None, arm) if self.levels(arm) else 0
        return self._replicate(self._load(f"{arm}/{level_name(level)}/mask"), replicate, prune_fraction)

    def copies(self, spawn_step: int, replicate: int | None = None, copy: int | None = None) -> dict:
        """(instability runs) The trained copies spawned at ``spawn_step``: ``{"params", "batch_stats"}``.

        Leaves have a leading axis of ``replicates * copies`` (copy ``c`` of replicate ``r`` at
        ``r * copies + c``, ``jaxlth.training.copies``); ``replicate`` and/or ``copy`` select from it.
        """
        if self.experiment != "instability":
            raise UserError(f"a {self.experiment!r} run has no spawned copies")
        path = self.layout.artifact(f"{spawn_name(spawn_step)}/final")
        if not checkpoint.artifact_exists(path):
            raise UserError(f"the copies spawned at step {spawn_step} are not finished in {self.workdir}")
        network = checkpoint.load_artifact(path)
        copies, replicates = int(self.config["instability"]["copies"]), self.config["replicates"]
        if replicate is not None and not 0 <= replicate < replicates:
            raise UserError(f"replicate must be in [0, {replicates}), got {replicate}")
        if copy is not None and not 0 <= copy < copies:
            raise UserError(f"copy must be in [0, {copies}), got {copy}")
        rows = copies_lib.positions(replicates, copies, replicate, copy)
        pick = rows[0] if replicate is not None and copy is not None else rows
        return _map(network, lambda x: np.asarray(x)[pick])

    def score_steps(self) -> list[int]:
        """(scores runs) The steps (iterations) at which EL2N and GraNd were saved."""
        return subsets.steps(self.workdir)

    def scores(self, kind: str, step: str | int | None = None, replicates: bool = False) -> np.ndarray:
        """(scores runs) Per-example scores of the training set: ``(N,)`` float32, the mean over
        replicates, or ``(R, N)`` with ``replicates=True``; example ``i`` is the ``i``-th training
        example of the run's data (larger = harder).

        ``kind``: ``"el2n"`` or ``"grand"`` at ``step`` (a step spec such as ``"20ep"`` or an
        iteration count; ``None``: the last scored step), ``"forgetting"`` (forgetting events,
        ``inf`` when never learned) or ``"never_learned"``.
        """
        if self.experiment != "scores":
            raise UserError(f"a {self.experiment!r} run has no per-example scores; run experiment='scores'")
        return subsets.load(self.workdir, kind, step, replicates)


def _leading(tree: PyTree) -> int:
    """The size of the leading axis of a nested dict of arrays (0 when it holds none)."""
    if isinstance(tree, dict):
        return next((n for n in map(_leading, tree.values()) if n), 0)
    return len(np.asarray(tree))


def _map(tree: PyTree, fn) -> PyTree:
    return {k: _map(v, fn) for k, v in tree.items()} if isinstance(tree, dict) else fn(tree)


def _apply_mask(params: PyTree, mask: PyTree) -> PyTree:
    if isinstance(mask, dict):
        return {k: _apply_mask(v, mask[k]) if k in mask else v for k, v in params.items()}
    return np.where(mask, params, 0).astype(params.dtype)


def _select(tree: PyTree, replicate: int) -> PyTree:
    return _map(tree, lambda x: np.asarray(x)[replicate])


def load(workdir: str) -> Run:
    """The run saved in ``workdir``."""
    return Run(workdir)


def load_many(pattern: str, swept: list[str] | None = None) -> pd.DataFrame:
    """The tables of every run whose workdir matches the glob ``pattern`` (e.g. ``"runs/sweep/*"``),
    stacked, with a column ``run`` (the workdir) and one column per swept config field (dotted
    name, e.g. ``"lottery.rewind"``): ``swept``, or by default every field whose value differs
    between the runs. Folders without a ``config.json`` are skipped.
    """
    workdirs = [d for d in storage.glob(pattern) if storage.isfile(Layout(d).config_file)]
    if not workdirs:
        raise UserError(f"no jaxlth run matches {pattern!r} (a workdir holds a {CONFIG_FILE})")
    runs = [load(d) for d in workdirs]
    flat = [traverse_util.flatten_dict(run.config, sep=".") for run in runs]
    if swept is None:
        names = list(dict.fromkeys(k for f in flat for k in f))
        swept = [k for k in names if len({json.dumps(f.get(k), sort_keys=True) for f in flat}) > 1]
    frames = []
    for run, fields in zip(runs, flat):
        table = run.table.copy()
        table.insert(0, "run", run.workdir)
        for name in swept:
            value = fields.get(name)
            table[name] = [tuple(value) if isinstance(value, list) else value] * len(table)
        frames.append(table)
    return pd.concat(frames, ignore_index=True, sort=False)

