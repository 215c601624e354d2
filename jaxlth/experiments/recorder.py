"""A training segment's rows: what the training loop reports, turned into rows of ``results.csv``.

The :class:`Recorder` is the loop's :class:`~jaxlth.training.loop.Reporter` for one segment: it labels
every measurement with the segment's labels and each stacked network's coordinates, forgets what a
resumed segment reports again, and counts the rows it has written for every checkpoint, so that a
resume after a crash that cost rows starts from a checkpoint whose rows are all there.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from jaxlth import records
from jaxlth.experiments.rows import TRAINING_SPLITS, Rows, as_written


class Recorder:
    """A training segment's rows (it starts at step ``start``): ``labels`` plus, for stacked position
    ``i``, ``coordinates[i]`` (one dict, or a list of dicts: one row each)."""

    def __init__(self, context, labels: dict, coordinates: Sequence[dict] | None = None, start: int = 0):
        self.context, self.labels, self.coordinates = context, context.labelled(labels), coordinates
        self.start, self.count = start, None

    def of(self, i: int, count: int | None = None) -> list[dict]:
        """The coordinates of stacked position ``i`` of ``count`` networks: ``coordinates[i]`` (a dict, or a
        list of dicts when one network stands for several, e.g. the dense level shared by every prune
        fraction); in a hyper-parameter sweep, those of its position in its setting's block, with the
        setting's values (:meth:`jaxlth.training.hyper.Grid.at`)."""
        return self.context.setup.grid.at(i, count or self.count or i + 1, self.coordinates)

    def mine(self) -> Callable[[dict], bool]:
        """A predicate: the row is one of this segment's networks' (its labels, and for the labels a
        network's coordinates give, such as ``arm`` and ``level`` of masks trained in one stack, one
        network's coordinates)."""
        if not self.coordinates:
            return records.matches(self.labels)
        each = [c for item in self.coordinates for c in (item if isinstance(item, list) else [item])]
        given = {k for c in each for k in c}
        common = records.matches({k: v for k, v in self.labels.items() if k not in given})
        networks = {tuple(sorted(as_written({k: c.get(k, self.labels.get(k)) for k in given}).items())) for c in each}
        return lambda row: common(row) and tuple(sorted((k, row.get(k)) for k in given)) in networks

    def restart(self, step: int, end: int, resumed: bool) -> None:
        mine = self.mine()

        def stale(row: dict) -> bool:
            if row.get("split") not in TRAINING_SPLITS or not mine(row) or int(row["step"]) > end:
                return False  # a segment owns the rows of its own steps only
            return int(row["step"]) > step if resumed else int(row["step"]) >= step

        self.context.rows.drop(stale)

    def report(self, step: int, density: np.ndarray, metrics: dict) -> None:
        rows = []
        epoch = round(step / self.context.setup.steps_per_epoch, 4)
        self.count = len(density)
        for split, by_metric in metrics.items():
            for metric, values in by_metric.items():
                for i, value in enumerate(np.asarray(values)):
                    for coordinates in self.of(i, len(values)):
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

    def written(self, step: int) -> dict:
        """The segment's rows up to ``step``, counted: saved with the checkpoint at ``step``."""
        steps = (self.start, step)
        return {
            "labels": as_written(self.labels),
            "steps": steps,
            "rows": self.context.rows.count(self.labels, TRAINING_SPLITS, steps),
        }

    def holds(self, step: int, written: dict) -> bool:
        """Whether ``results.csv`` still holds the rows the checkpoint at ``step`` counted."""
        return holds(self.context.rows, written.get("written", written))


def holds(rows: Rows, written: dict) -> bool:
    """Whether ``rows`` hold every row a checkpoint's ``written`` counted (checkpoints saved before
    counts existed hold: nothing can be checked)."""
    if not written or "rows" not in written:
        return True
    first, last = written["steps"]
    return rows.count(written["labels"], TRAINING_SPLITS, (int(first), int(last))) >= int(written["rows"])
