"""``results.csv``: the tidy table of a run's measurements, written safely and read back.

One row per measurement. Every experiment's rows have the :data:`CORE_COLUMNS`; an experiment
declares the extra coordinates its rows carry (``layer``, ``spawn_step``, ``alpha``, ...), so a
table holds only the columns of its own experiment. Rows are dicts; a missing key is an empty
cell. Values read back are strings (``csv``) or typed columns (``pandas``).

Safety: a batch of rows is appended with one ``write`` and ``fsync``; rewrites go through a
temporary file and ``os.replace`` (:mod:`jaxlth.storage`; a cloud workdir rewrites the object).
A last line cut by a crash (no final newline) is never
appended to: the writer drops it first and the reader ignores it, saying so on stderr.

Ledger: after every write, the number of rows the table holds is noted beside it
(``results.rows``, :func:`ledger_path`). A crash of the machine can lose the tail of a file it had
already written; a table with fewer complete rows than its ledger lost rows, and the run that
reads it checks every part of its work for missing rows (:mod:`jaxlth.experiments.context`).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from typing import Callable, Iterable, Sequence

from jaxlth import storage

CORE_COLUMNS = ("experiment", "arm", "level", "replicate", "density", "step", "epoch", "split", "metric", "value")


def complete_text(path: str) -> tuple[str, bool]:
    """The file's complete lines, and whether a cut last line was left out."""
    text = storage.read_text(path)
    if text and not text.endswith("\n"):
        return text[: text.rfind("\n") + 1], True
    return text, False


def header(path: str) -> list[str]:
    """The column names of ``path`` (empty when the file is absent or empty)."""
    if not storage.exists(path):
        return []
    first = storage.first_line(path)
    return next(csv.reader([first]), []) if first.endswith("\n") else []


def check(path: str) -> str | None:
    """A sentence saying why ``path`` is not a results table jaxlth can extend (``None`` when it is,
    or when it is absent or empty): not UTF-8 text, or a header without :data:`CORE_COLUMNS`."""
    if not storage.exists(path) or storage.size(path) == 0:
        return None
    try:
        text = storage.read_text(path)
    except UnicodeDecodeError:
        return f"{path} is not a text table (it holds bytes that are not UTF-8)"
    first = text[: text.find("\n") + 1] if "\n" in text else text
    missing = [c for c in CORE_COLUMNS if c not in next(csv.reader([first]), [])]
    if missing:
        return f"{path} is not a jaxlth results table (its header lacks {', '.join(missing)})"
    return None


def read_rows(path: str) -> list[dict]:
    """All complete rows as dicts of strings."""
    if not storage.exists(path):
        return []
    text, cut = complete_text(path)
    if cut:
        print(f"jaxlth: {path} ends in a line cut short by a crash; that line is ignored", file=sys.stderr)
    return list(csv.DictReader(io.StringIO(text)))


def ledger_path(path: str) -> str:
    """Where the row count of the table ``path`` is noted: ``results.rows`` beside ``results.csv``."""
    return path.removesuffix(".csv") + ".rows"


def count(text: str) -> int:
    """The data rows of a table's complete text (its lines after the header)."""
    return max(text.count("\n") - 1, 0)


def noted(path: str) -> int | None:
    """The row count the ledger noted when ``path`` was last written (``None``: no readable ledger)."""
    try:
        return int(json.loads(storage.read_text(ledger_path(path)))["rows"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _note(path: str, rows: int) -> None:
    storage.write_text(ledger_path(path), json.dumps({"rows": int(rows)}))


def _write_all(path: str, columns: Sequence[str], rows: Iterable[dict]) -> None:
    rows = list(rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns))
    writer.writeheader()
    writer.writerows(rows)
    storage.write_text(path, buffer.getvalue())
    _note(path, len(rows))


def append(path: str, rows: Sequence[dict], columns: Sequence[str] = CORE_COLUMNS) -> None:
    """Appends ``rows`` (one write). A new file gets ``columns`` plus any other keys the rows use.

    An existing file keeps its header; if the rows use a column it lacks, the file is rewritten
    once with that column added (empty in the older rows).
    """
    rows = list(rows)
    if not rows:
        return
    needed = list(dict.fromkeys([*columns, *(k for row in rows for k in row)]))
    present = header(path)
    if not present:
        _write_all(path, needed, rows)
        return
    text, cut = complete_text(path)
    missing = [c for c in needed if c not in present]
    if cut or missing:
        if cut:
            print(f"jaxlth: {path} ended in a line cut short by a crash; that line was dropped", file=sys.stderr)
        present = present + missing
        _write_all(path, present, [*csv.DictReader(io.StringIO(text)), *rows])
        return
    buffer = io.StringIO()
    csv.DictWriter(buffer, fieldnames=present).writerows(rows)
    storage.append_text(path, buffer.getvalue())
    _note(path, count(text) + len(rows))


def drop(path: str, should_drop: Callable[[dict], bool]) -> None:
    """Rewrites ``path`` without the rows for which ``should_drop(row)`` is true (atomically)."""
    if not storage.exists(path):
        return
    text, cut = complete_text(path)
    rows = list(csv.DictReader(io.StringIO(text)))
    kept = [r for r in rows if not should_drop(r)]
    if len(kept) == len(rows) and not cut:
        return
    _write_all(path, header(path), kept)


def matches(labels: dict) -> Callable[[dict], bool]:
    """A predicate: the row's values equal ``labels`` (compared as strings, as read from the file)."""
    wanted = {k: str(v) for k, v in labels.items()}
    return lambda row: all(row.get(k) == v for k, v in wanted.items())
