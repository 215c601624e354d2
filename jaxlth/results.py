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

COLUMNS = ("experiment", "arm", "level", "replicate", "density", "step", "epoch", "split", "metric", "value")
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

    def _artifact(self, name: str, replicate: int | None) -> PyTree:
        tree = checkpoint.load_artifact(artifact_dir(self.workdir, name))
        if replicate is None:
            return tree
        replicates = self.config["replicates"]
        if not 0 <= replicate < replicates:
            raise UserError(f"replicate must be in [0, {replicates}), got {replicate}")
        return _select(tree, replicate)

    def params(self, level: int | None = None, replicate: int | None = None, which: str = "final") -> PyTree:
        """Parameters as numpy arrays; ``replicate=None`` stacks all replicates on axis 0.

        ``which`` is ``"init"``, ``"rewind"`` or ``"final"``; ``level`` is ignored by
        experiments without levels.
        """
        if which not in ("init", "rewind", "final"):
            raise UserError(f"which must be 'init', 'rewind' or 'final', got {which!r}")
        return self._artifact(which, replicate)["params"]

    def batch_stats(self, level: int | None = None, replicate: int | None = None, which: str = "final") -> PyTree:
        """BatchNorm statistics saved with :meth:`params` (``{}`` for models without BN)."""
        return self._artifact(which, replicate).get("batch_stats", {})

    def mask(self, level: int | None = None, replicate: int | None = None) -> PyTree:
        """The pruning mask (booleans over the prunable kernels); dense runs have an all-True mask."""
        return self._artifact("mask", replicate)


def _select(tree: PyTree, replicate: int) -> PyTree:
    return {k: _select(v, replicate) for k, v in tree.items()} if isinstance(tree, dict) else np.asarray(tree)[replicate]


def load(workdir: str) -> Run:
    """The run saved in ``workdir``."""
    return Run(workdir)
