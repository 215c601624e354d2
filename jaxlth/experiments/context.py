"""What an experiment works with: the run context (layout, cached artifacts, training, recorder).

An experiment's ``run(context)`` never spells a path, never writes a CSV row by hand and never
builds the checkpoint scaffold itself:

* ``context.layout``: every path of the workdir (:class:`jaxlth.layout.Layout`);
* ``context.setup``: data, model and compiled program, built on first use;
* ``context.cached(name, compute, rows=...)``: the artifact ``name`` loaded from disk, or computed,
  saved (atomically, by Orbax) and loaded; its derived rows are written whenever they are missing,
  so a kill between the artifact's commit and its rows loses nothing;
* ``context.train(name, segment, ...)``: a resumable training segment with its checkpoints and a
  recorder for its rows;
* ``context.record`` / ``context.replace_rows``: measurement rows into ``results.csv``, each
  stamped with the experiment's name (``experiment`` column).

After a crash that cost ``results.csv`` rows (:mod:`jaxlth.experiments.rows`), every part checks its
own: a training segment resumes from its newest checkpoint whose rows are all there (the counts are
saved with each checkpoint) and replays the steps after it, a finished one is replayed from its
kept checkpoints, an artifact's rows are made again from it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Callable, Sequence

import jax

from jaxlth import checkpoint, records, storage, timing, watching
from jaxlth.experiments import pretrained_source
from jaxlth.experiments.recorder import Recorder, holds
from jaxlth.experiments.rows import Rows, as_written
from jaxlth.layout import Layout
from jaxlth.training import hyper, loop
from jaxlth.training import setup as setup_lib
from jaxlth.training.state import TrainState

PyTree = Any


def network_of(state: TrainState) -> dict:
    """``{"params", "batch_stats"}`` of a training state: what is saved as a network."""
    return {"params": state.params, "batch_stats": state.batch_stats}


class Context:
    """One experiment's run in one workdir (``experiment``: its declaration; ``phases``: where its
    time goes, :mod:`jaxlth.timing`)."""

    def __init__(self, config, workdir: str, experiment, phases: timing.Phases | None = None):
        self.config = config
        self.experiment = experiment
        self.phases = phases if phases is not None else timing.Phases()
        self.layout = Layout(workdir)
        swept = hyper.grid(config.train).fields  # a hyper-parameter sweep: its fields are columns too
        self.columns = (*records.CORE_COLUMNS, *experiment.columns, *swept)
        self.rows = Rows(self.layout.results_file)
        self.watcher = watching.Watcher.of(config, workdir, (*experiment.columns, *swept))  # log.*: fed every row
        self._setup = None

    @property
    def setup(self) -> setup_lib.Setup:
        """Data, model and program of the config (loaded and compiled on first use)."""
        if self._setup is None:
            setup = setup_lib.build(self.config)
            if self.config.model.get("pretrained", ""):  # the checkpoint's networks, read once per process
                setup = dataclasses.replace(setup, pretrained=pretrained_source.read(self.config, setup))
            self._setup = setup
        return self._setup

    def steps(self, spec, field: str) -> int:
        """A step spec of the config in iterations."""
        return self.setup.to_steps(spec, field)

    def program(self, program=None):
        """``program``, or the setup's when ``None``: the one place that default is taken."""
        return program if program is not None else self.setup.program

    # ----- rows -------------------------------------------------------------------------------------
    def labelled(self, labels: dict) -> dict:
        """``labels`` with the experiment's name (``experiment``) unless they name it."""
        return {"experiment": self.experiment.name, **labels}

    def record(self, rows: Sequence[dict]) -> None:
        """Appends measurement rows to ``results.csv``, each stamped with the experiment's name."""
        labelled = [self.labelled(row) for row in rows]
        with self.phases("rows"):
            self.rows.append(labelled, self.columns)
            self.watcher.rows(labelled)

    def replace_rows(self, labels: dict, rows: Sequence[dict], matching: Callable[[dict], bool] | None = None) -> None:
        """Drops this experiment's rows matching ``labels`` (and the predicate ``matching``), then appends ``rows``."""
        match = records.matches(self.labelled(labels))
        with self.phases("rows"):
            self.rows.drop(lambda row: match(row) and (matching is None or matching(row)))
        self.record(rows)

    def has_rows(self, labels: dict) -> bool:
        return self.rows.count(self.labelled(labels)) > 0

    # ----- artifacts ----------------------------------------------------------------------------------
    def exists(self, name: str) -> bool:
        return checkpoint.artifact_exists(self.layout.artifact(name))

    def load(self, name: str) -> PyTree:
        """The artifact ``name`` as device arrays, sharded like the states (so one process of four
        devices and two of two compute it alike)."""
        with self.phases("checkpoints"):
            tree = checkpoint.load_artifact(self.layout.artifact(name))
        return self.setup.place(jax.device_put(tree))  # (jnp.asarray compiles a program per leaf shape)

    def save(self, name: str, tree: PyTree) -> None:
        with self.phases("checkpoints"):
            checkpoint.save_artifact(self.layout.artifact(name), tree)

    def cached(
        self, name: str, compute: Callable[[], PyTree], rows: tuple[dict, Callable[[PyTree], list[dict]]] | None = None
    ) -> PyTree:
        """The artifact ``name``: loaded when on disk, else ``compute()``-d, saved and loaded.

        ``rows = (labels, make_rows)``: when no row of ``results.csv`` matches ``labels``,
        ``make_rows(tree)`` are recorded (after a kill too: artifact and rows are one unit); when the
        table lost rows in a crash, they are made again and replace what is left of them.
        """
        if not self.exists(name):
            self.save(name, compute())
        tree = self.load(name)
        if rows is not None:
            labels, make = rows
            if not self.has_rows(labels):
                self.record(make(tree))
            elif self.rows.damaged:
                made = make(tree)
                if self.rows.count(self.labelled(labels)) < len(made):
                    self.replace_rows(labels, made)
        return tree

    def done(self, name: str) -> bool:
        """Whether the analysis ``name`` was marked recorded (:meth:`mark_done`) and, when the table lost
        rows in a crash, still holds every row it counted then (else it is measured again)."""
        path = self.layout.marker(name)
        if not storage.exists(path):
            return False
        if not self.rows.damaged:
            return True
        try:
            counted = json.loads(storage.read_text(path) or "{}")
        except ValueError:
            return True  # a marker of an older jaxlth: nothing to check
        return "rows" not in counted or self.rows.count(counted["labels"]) >= int(counted["rows"])

    def mark_done(self, name: str, labels: dict | None = None) -> None:
        """Marks the analysis ``name`` recorded; with ``labels``, the marker counts this experiment's
        rows matching them, so that a crash that loses some of them measures the analysis again."""
        counted = {}
        if labels is not None:
            mine = as_written(self.labelled(labels))
            counted = {"labels": mine, "rows": self.rows.count(mine)}
        path = self.layout.marker(name)
        storage.makedirs(os.path.dirname(path))
        storage.write_text(path, json.dumps(counted) if counted else "")

    # ----- training -----------------------------------------------------------------------------------
    def segment(
        self,
        start: int,
        end: int,
        description: str,
        eval_train: bool | None = None,
        setup: setup_lib.Setup | None = None,
    ) -> loop.Segment:
        """A segment with the evaluation and checkpoint intervals of ``setup`` (default: the config's)."""
        s = setup or self.setup
        return loop.Segment(
            start=start,
            end=end,
            eval_every=s.eval_every,
            checkpoint_every=s.checkpoint_every,
            eval_train=self.config.eval_train if eval_train is None else eval_train,
            progress=self.config.progress,
            description=description,
            on_nan=self.config.get("on_nan", "stop"),
            chunk_every=s.chunk_every,
        )

    def train(
        self,
        name: str,
        segment: loop.Segment,
        mask: PyTree,
        initial_state: Callable[[], TrainState],
        labels: dict,
        coordinates: Sequence[dict] | None = None,
        program=None,
        keep: int | None = None,
    ) -> TrainState:
        """Trains (or resumes) ``segment`` with checkpoints in ``checkpoints/<name>``; rows get ``labels``.

        ``coordinates[i]`` are the row coordinates of stacked position ``i`` (default
        ``{"replicate": i}``); ``program`` defaults to the setup's.
        """
        checkpoints = checkpoint.Checkpoints(self.layout.checkpoints(name), keep or self.config.keep_checkpoints)
        try:
            return loop.run_segment(
                self.program(program),
                self.setup.data,
                mask,
                segment,
                initial_state,
                checkpoints,
                Recorder(self, labels, coordinates, segment.start),
                place=self.setup.place,
                phases=self.phases,
            )
        finally:
            with self.phases("checkpoints"):
                checkpoints.close()

    def trained(self, name: str, train: Callable[[], TrainState], checkpoints: str | None = None) -> dict:
        """The network saved as ``<name>/final``, trained by ``train()`` when it is not on disk, or
        replayed by it when the table lost rows of its training (``checkpoints``: the folder name of its
        checkpoints when it is not ``name``)."""
        if self.exists(f"{name}/final") and self.rows_lost(name if checkpoints is None else checkpoints):
            train()  # resumes from the newest checkpoint whose rows are there: the same network, its rows again
        return self.cached(f"{name}/final", lambda: network_of(train()))

    def rows_lost(self, name: str) -> bool:
        """Whether the table lost rows (in a crash) that the finished training ``checkpoints/<name>``
        wrote: the counts saved with its last checkpoint are more than the table holds."""
        if not self.rows.damaged:
            return False
        checkpoints = checkpoint.Checkpoints(self.layout.checkpoints(name), self.config.keep_checkpoints)
        try:
            last = checkpoints.latest_step()
            return last is not None and not holds(self.rows, checkpoints.meta(last).get("written", {}))
        finally:
            checkpoints.close()
