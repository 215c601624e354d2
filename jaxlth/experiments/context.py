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
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxlth import checkpoint, records, storage
from jaxlth.layout import Layout
from jaxlth.training import loop
from jaxlth.training import setup as setup_lib
from jaxlth.training.state import TrainState

PyTree = Any
TRAINING_SPLITS = ("test", "train")  # the splits whose rows a training segment writes (and rewrites on resume)


def network_of(state: TrainState) -> dict:
    """``{"params", "batch_stats"}`` of a training state: what is saved as a network."""
    return {"params": state.params, "batch_stats": state.batch_stats}


class Recorder:
    """A training segment's rows: ``labels`` plus, for stacked position ``i``, ``coordinates[i]``
    (one dict, or a list of dicts: one row each)."""

    def __init__(self, context: "Context", labels: dict, coordinates: Sequence[dict] | None = None):
        self.context, self.labels, self.coordinates = context, context.labelled(labels), coordinates

    def of(self, i: int) -> list[dict]:
        """The coordinates of stacked position ``i``: ``coordinates[i]`` (a dict, or a list of dicts when
        one network stands for several, e.g. the dense level shared by every prune fraction)."""
        if self.coordinates is None:
            return [{"replicate": i}]
        found = self.coordinates[i]
        return list(found) if isinstance(found, (list, tuple)) else [found]

    def restart(self, step: int, end: int, resumed: bool) -> None:
        mine = records.matches(self.labels)

        def stale(row: dict) -> bool:
            if row.get("split") not in TRAINING_SPLITS or not mine(row) or int(row["step"]) > end:
                return False  # a segment owns the rows of its own steps only
            return int(row["step"]) > step if resumed else int(row["step"]) >= step

        records.drop(self.context.layout.results_file, stale)

    def report(self, step: int, density: np.ndarray, metrics: dict) -> None:
        rows = []
        epoch = round(step / self.context.setup.steps_per_epoch, 4)
        for split, by_metric in metrics.items():
            for metric, values in by_metric.items():
                for i, value in enumerate(np.asarray(values)):
                    for coordinates in self.of(i):
                        rows.append(
                            dict(
                                self.labels,
                                **coordinates,
                                density=float(density[i]),
                                step=step,
                                epoch=epoch,
                                split=split,
                                metric=metric,
                                value=float(value),
                            )
                        )
        self.context.record(rows)

    def describe(self, positions: list[int]) -> str:
        head = ", ".join(f"{k} {self.labels[k]}" for k in ("arm", "level") if k in self.labels)
        found = "; ".join(", ".join(f"{k} {v}" for k, v in self.of(i)[0].items()) for i in positions)
        return f"{head}: {found}" if head else found


class Context:
    """One experiment's run in one workdir (``experiment``: its declaration)."""

    def __init__(self, config, workdir: str, experiment):
        self.config = config
        self.experiment = experiment
        self.layout = Layout(workdir)
        self.columns = (*records.CORE_COLUMNS, *experiment.columns)
        self._setup = None

    @property
    def setup(self) -> setup_lib.Setup:
        """Data, model and program of the config (loaded and compiled on first use)."""
        if self._setup is None:
            self._setup = setup_lib.build(self.config)
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
        records.append(self.layout.results_file, [self.labelled(row) for row in rows], self.columns)

    def replace_rows(self, labels: dict, rows: Sequence[dict], matching: Callable[[dict], bool] | None = None) -> None:
        """Drops this experiment's rows matching ``labels`` (and the predicate ``matching``), then appends ``rows``."""
        match = records.matches(self.labelled(labels))
        records.drop(self.layout.results_file, lambda row: match(row) and (matching is None or matching(row)))
        self.record(rows)

    def has_rows(self, labels: dict) -> bool:
        match = records.matches(self.labelled(labels))
        return any(match(row) for row in records.read_rows(self.layout.results_file))

    # ----- artifacts ----------------------------------------------------------------------------------
    def exists(self, name: str) -> bool:
        return checkpoint.artifact_exists(self.layout.artifact(name))

    def load(self, name: str) -> PyTree:
        """The artifact ``name`` as device arrays, sharded like the states (so one process of four
        devices and two of two compute it alike)."""
        return self.setup.place(jax.tree.map(jnp.asarray, checkpoint.load_artifact(self.layout.artifact(name))))

    def save(self, name: str, tree: PyTree) -> None:
        checkpoint.save_artifact(self.layout.artifact(name), tree)

    def cached(
        self, name: str, compute: Callable[[], PyTree], rows: tuple[dict, Callable[[PyTree], list[dict]]] | None = None
    ) -> PyTree:
        """The artifact ``name``: loaded when on disk, else ``compute()``-d, saved and loaded.

        ``rows = (labels, make_rows)``: when no row of ``results.csv`` matches ``labels``,
        ``make_rows(tree)`` are recorded (after a crash too: artifact and rows are one unit).
        """
        if not self.exists(name):
            self.save(name, compute())
        tree = self.load(name)
        if rows is not None and not self.has_rows(rows[0]):
            self.record(rows[1](tree))
        return tree

    def done(self, name: str) -> bool:
        """Whether the analysis ``name`` was marked recorded (:meth:`mark_done`)."""
        return storage.exists(self.layout.marker(name))

    def mark_done(self, name: str) -> None:
        storage.touch(self.layout.marker(name))

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
                Recorder(self, labels, coordinates),
                place=self.setup.place,
            )
        finally:
            checkpoints.close()

    def trained(self, name: str, train: Callable[[], TrainState]) -> dict:
        """The network saved as ``<name>/final``, trained by ``train()`` when it is not on disk."""
        return self.cached(f"{name}/final", lambda: network_of(train()))
