"""A run's ``results.csv`` as its context sees it: read once, kept in step with what it writes, counted.

Every row of a run goes through :class:`Rows` (``Context.record``, ``Context.replace_rows``, the
training recorder). It reads the table once, when first asked, and then keeps its copy of the rows
in step with its own writes, so counting the rows of a training segment or an analysis costs no
file read. It also says whether the table lost rows in a crash: fewer complete rows than the
ledger noted when it was last written (:func:`jaxlth.records.noted`), or a last line cut short.
Then every part of the run checks its own rows (a segment against the counts saved with its
checkpoints, an artifact's rows against what they are made from) and writes what is missing again.
"""

from __future__ import annotations

import csv
import io
import sys
from typing import Callable, Sequence

from jaxlth import records, storage

TRAINING_SPLITS = ("test", "train")  # the splits whose rows a training segment writes (and rewrites on resume)


def as_written(row: dict) -> dict:
    """``row`` as it reads back from the file: every value a string (``None``: empty)."""
    return {k: "" if v is None else str(v) for k, v in row.items()}


class Rows:
    """The rows of the table ``path`` (a results.csv), written through this object."""

    def __init__(self, path: str):
        self.path = path
        self._rows: list[dict] | None = None
        self.lost = 0  # rows the table lacks against its ledger when first read (a crash's loss)
        self.cut = False  # whether its last line was cut short when first read
        self.noted = 0  # the rows its ledger noted when first read

    def all(self) -> list[dict]:
        """Every complete row, as strings (read from the file the first time)."""
        if self._rows is None:
            self._rows = []
            if storage.exists(self.path):
                text, self.cut = records.complete_text(self.path)
                self._rows = list(csv.DictReader(io.StringIO(text)))
                noted = records.noted(self.path)
                self.noted = noted if noted is not None else len(self._rows)
                self.lost = max(0, self.noted - len(self._rows))
                if self.lost or self.cut:
                    what = f"its last {self.lost} row(s)" if self.lost else "the end of its last row"
                    print(
                        f"jaxlth: {self.path} lost {what} in a crash; every part of the run checks its rows and "
                        "writes the missing ones again",
                        file=sys.stderr,
                        flush=True,
                    )
        return self._rows

    @property
    def damaged(self) -> bool:
        """Whether the table lost rows in a crash (then every part of the run checks its own rows)."""
        self.all()
        return bool(self.lost or self.cut)

    def append(self, rows: Sequence[dict], columns: Sequence[str]) -> None:
        """Appends ``rows`` to the table (one write)."""
        known = self.all()
        records.append(self.path, rows, columns)
        known.extend(as_written(row) for row in rows)

    def drop(self, should_drop: Callable[[dict], bool]) -> None:
        """Rewrites the table without the rows for which ``should_drop(row)`` is true."""
        records.drop(self.path, should_drop)
        self._rows = [row for row in self.all() if not should_drop(row)]

    def count(self, labels: dict, splits: Sequence[str] | None = None, steps: tuple[int, int] | None = None) -> int:
        """How many rows match ``labels`` (and lie in ``splits``, and have ``first <= step <= last`` for
        ``steps = (first, last)``)."""
        match = records.matches(labels)

        def kept(row: dict) -> bool:
            if not match(row) or (splits is not None and row.get("split") not in splits):
                return False
            if steps is None:
                return True
            step = row.get("step", "")
            return step.lstrip("-").isdigit() and steps[0] <= int(step) <= steps[1]

        return sum(1 for row in self.all() if kept(row))

    def report_unrecovered(self) -> None:
        """After a run on a damaged table: one sentence when it still holds fewer rows than its ledger
        noted before (rows whose checkpoints were gone or wrote no counts could not be made again)."""
        if self._rows is None or not self.damaged or len(self._rows) >= self.noted:
            return
        print(
            f"jaxlth: warning: {self.path} still holds {self.noted - len(self._rows)} row(s) fewer than before the "
            "crash: they were written by trainings whose checkpoints are gone (or kept no row counts) and could "
            "not be written again; rerun in a new --workdir for a complete table",
            file=sys.stderr,
            flush=True,
        )
