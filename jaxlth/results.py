"""The results of a workdir: the tidy ``results.csv`` (writing and reading) and ``load(workdir)``.

``results.csv`` holds one row per measurement with the columns :data:`COLUMNS`; a notebook gets
everything with ``jaxlth.results.load(workdir)``, whose ``.config``, ``.table``, ``.params(...)``
and ``.mask(...)`` return plain Python, pandas and numpy objects.
"""

from __future__ import annotations

import csv
import json
import os
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from jaxlth import checkpoint
from jaxlth.errors import UserError

COLUMNS = ("experiment", "arm", "level", "replicate", "density", "step", "epoch", "split", "metric", "value", "layer",
           "spawn_step", "pair", "alpha")
RESULTS_FILE = "results.csv"
CONFIG_FILE = "config.json"

PyTree = Any


def append_rows(workdir: str, rows: Iterable[dict]) -> None:
    """Appends measurement rows (dicts with the keys :data:`COLUMNS`) to ``results.csv``."""
    path = os.path.join(workdir, RESULTS_FILE)
    new_file = not os.path.exists(path)
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new_file:
            writer.writeheader()
        writer.writerows(rows)
        f.flush()
        os.fsync(f.fileno())


def drop_rows(workdir: str, should_drop: Callable[[dict], bool]) -> None:
    """Rewrites ``results.csv`` without the rows for which ``should_drop(row)`` is true (atomic).

    Used on resume to forget measurements made after the checkpoint the run restarts from.
    """
    path = os.path.join(workdir, RESULTS_FILE)
    if not os.path.exists(path):
        return
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    kept = [r for r in rows if not should_drop(r)]
    if len(kept) == len(rows):
        return
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(kept)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def artifact_dir(workdir: str, name: str) -> str:
    """Where the named artifact (``init``, ``final``, ``level_03/mask``, ...) of a run is saved."""
    return os.path.join(workdir, "artifacts", name)


class Run:
    """A finished or running experiment in a workdir, read-only."""

    def __init__(self, workdir: str):
        self.workdir = workdir
        config_path = os.path.join(workdir, CONFIG_FILE)
        if not os.path.exists(config_path):
            raise UserError(f"{workdir} holds no jaxlth run (no {CONFIG_FILE})")
        with open(config_path) as f:
            self.config: dict = json.load(f)

    @property
    def experiment(self) -> str:
        return self.config["experiment"]

    @property
    def table(self) -> pd.DataFrame:
        """All measurements as a tidy DataFrame (empty with the right columns before the first)."""
        path = os.path.join(self.workdir, RESULTS_FILE)
        if not os.path.exists(path):
            return pd.DataFrame(columns=list(COLUMNS))
        return pd.read_csv(path)

    @property
    def default_arm(self) -> str:
        """The main arm: ``imp`` for lottery runs, ``main`` for plain training."""
        return "imp" if self.experiment == "lottery" else "main"

    def levels(self, arm: str | None = None) -> list[int]:
        """The levels of ``arm`` whose training has finished (their final network is saved)."""
        base = os.path.join(self.workdir, "artifacts", arm or self.default_arm)
        if not os.path.isdir(base):
            return []
        found = []
        for name in os.listdir(base):
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

    def _replicate(self, tree: PyTree, replicate: int | None) -> PyTree:
        if replicate is None:
            return tree
        replicates = self.config["replicates"]
        if not 0 <= replicate < replicates:
            raise UserError(f"replicate must be in [0, {replicates}), got {replicate}")
        return _select(tree, replicate)

    def _load(self, *parts: str) -> PyTree:
        return checkpoint.load_artifact(os.path.join(self.workdir, "artifacts", *parts))

    def network(self, level: int | None = None, replicate: int | None = None, which: str = "final",
                arm: str | None = None) -> dict:
        """``{"params", "batch_stats"}`` of a network as numpy arrays (see :meth:`params`)."""
        arm = arm or self.default_arm
        if which == "init":
            network = self._load("init")
        elif which == "final":
            network = self._load(arm, f"level_{self._level(level, arm):02d}", "final")
        elif which == "rewind":
            if self.experiment != "lottery":
                raise UserError(f"a {self.experiment!r} run has no rewind point")
            level = self._level(level, arm)
            start = os.path.join(self.workdir, "artifacts", arm, f"level_{level:02d}", "start")
            network = self._load(arm, f"level_{level:02d}", "start") if checkpoint.artifact_exists(start) \
                else self._load("rewind")
            mask = self.mask(level, arm=arm)
            network["params"] = _apply_mask(network["params"], mask)
        else:
            raise UserError(f"which must be 'init', 'rewind' or 'final', got {which!r}")
        return self._replicate(network, replicate)

    def params(self, level: int | None = None, replicate: int | None = None, which: str = "final",
               arm: str | None = None) -> PyTree:
        """Parameters as numpy arrays; ``replicate=None`` stacks all replicates on axis 0.

        ``which``: ``"init"`` (step 0), ``"rewind"`` (the network level ``level`` starts from:
        the rewind weights on its mask, or a branch's transformed weights) or ``"final"``.
        ``level`` defaults to the last finished level and is ignored by plain training runs;
        ``arm`` defaults to ``"imp"`` (lottery) or ``"main"`` (train).
        """
        return self.network(level, replicate, which, arm)["params"]

    def batch_stats(self, level: int | None = None, replicate: int | None = None, which: str = "final",
                    arm: str | None = None) -> PyTree:
        """BatchNorm statistics saved with :meth:`params` (``{}`` for models without BN)."""
        return self.network(level, replicate, which, arm).get("batch_stats", {})

    def mask(self, level: int | None = None, replicate: int | None = None, arm: str | None = None) -> PyTree:
        """The mask of a level: booleans over the prunable kernels (all True when dense)."""
        arm = arm or self.default_arm
        if level is None:
            level = self._level(None, arm) if self.levels(arm) else 0
        return self._replicate(self._load(arm, f"level_{level:02d}", "mask"), replicate)


    def copies(self, spawn_step: int, replicate: int | None = None, copy: int | None = None) -> dict:
        """(instability runs) The trained copies spawned at ``spawn_step``: ``{"params", "batch_stats"}``.

        Leaves have a leading axis of ``replicates * copies`` (copy ``c`` of replicate ``r`` at
        ``r * copies + c``); ``replicate`` and/or ``copy`` select from it.
        """
        if self.experiment != "instability":
            raise UserError(f"a {self.experiment!r} run has no spawned copies")
        path = os.path.join(self.workdir, "artifacts", f"spawn_{int(spawn_step):07d}", "final")
        if not checkpoint.artifact_exists(path):
            raise UserError(f"the copies spawned at step {spawn_step} are not finished in {self.workdir}")
        network = checkpoint.load_artifact(path)
        copies, replicates = int(self.config["instability"]["copies"]), self.config["replicates"]
        if replicate is not None and not 0 <= replicate < replicates:
            raise UserError(f"replicate must be in [0, {replicates}), got {replicate}")
        if copy is not None and not 0 <= copy < copies:
            raise UserError(f"copy must be in [0, {copies}), got {copy}")
        rows = [r * copies + c for r in ([replicate] if replicate is not None else range(replicates))
                for c in ([copy] if copy is not None else range(copies))]
        pick = rows[0] if replicate is not None and copy is not None else np.asarray(rows)
        return _map(network, lambda x: np.asarray(x)[pick])


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
