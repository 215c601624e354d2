"""Watching a run live: its rows as TensorBoard scalars and as a Weights & Biases run.

``results.csv`` stays the record. The writers here are fed the rows at the moment the run context
appends them (``Context.record``) and the report's figures at the end. They never change the run:
a writer that fails (its package missing, no space left, any exception inside it) says so in one
line on stderr, once, and is dropped; the table, the artifacts and the exit status are those of a
run without it. Only the primary process writes.

* ``log.tensorboard``: ``tensorboard/<arm>/level_LL/replicate_R[/<column>_<value>...]`` is one
  TensorBoard run per network (every other coordinate a row carries, such as ``prune_fraction``,
  ``particle`` or ``spawn_step``, is one more folder of its path), with the scalar
  ``<split>/<metric>`` at ``step``. Before a run is first written by a process, its event files are
  read back, and a ``(tag, step)`` they hold is not written again: a resumed run, which records the
  steps after its checkpoint again (bitwise the same values), continues the same runs without a
  duplicate. The files are written with tensorboardX's protocol buffers and record framing, one
  file per run and process, appended and closed at every batch of rows (no thread, no open file).
* ``log.wandb_project``: one W&B run per workdir, its id kept in ``wandb_run.json`` with the last
  step logged under each key (a resumed run continues the run, ``resume="allow"``, and logs no step
  twice); the config; each row under ``<run path>/<split>/<metric>`` against its own step axis
  ``<run path>/step`` (``define_metric``: runs of different arms and levels restart their steps);
  the report's figures as images at the end. wandb writes asynchronously: a kill -9 can cost the
  W&B run the points of its last second (never logged twice; results.csv and TensorBoard keep them).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import string
import sys
from typing import Callable, Sequence

from jaxlth import fields, processes, records, storage
from jaxlth.event_files import TensorBoard
from jaxlth.layout import Layout, level_name

_UNSAFE = re.compile(r"[^A-Za-z0-9_.=+-]")  # characters a run folder's name does not keep


# ----- rows as points ----------------------------------------------------------------------------------
def text(value) -> str:
    """A value as ``results.csv`` writes it (``None``: empty)."""
    return "" if value is None else str(value)


def _safe(value: str) -> str:
    return _UNSAFE.sub("_", value)


def run_path(row: dict, columns: Sequence[str] = ()) -> tuple[str, ...]:
    """The TensorBoard run of a row: ``(arm, level_LL, replicate_R, <column>_<value>, ...)``, one part per
    coordinate it carries (``columns``: the experiment's extra coordinates, in their order; then any other)."""
    arm, level, replicate = (text(row.get(k)) for k in ("arm", "level", "replicate"))
    parts = [_safe(arm)] if arm else []
    if level:
        parts.append(level_name(int(level)) if level.isdigit() else f"level_{_safe(level)}")
    if replicate:
        parts.append(f"replicate_{_safe(replicate)}")
    others = sorted(k for k in row if k not in columns)
    for column in (*columns, *others):
        if column not in records.CORE_COLUMNS and text(row.get(column)):
            parts.append(f"{column}_{_safe(text(row[column]))}")
    return tuple(parts)


def tag(row: dict) -> str:
    """``<split>/<metric>``: the row's name in its run (``<metric>`` when it has no split)."""
    split, metric = text(row.get("split")), text(row.get("metric"))
    return f"{split}/{metric}" if split else metric


def points(rows: Sequence[dict], columns: Sequence[str] = ()) -> list[tuple[tuple[str, ...], str, int, float]]:
    """``(run path, tag, step, value)`` of each row with an integer step and a number (others are left out)."""
    out = []
    for row in rows:
        try:
            step, value = int(text(row.get("step"))), float(text(row.get("value")))
        except ValueError:
            continue
        out.append((run_path(row, columns), tag(row), step, value))
    return out


def wandb_key(path: Sequence[str], name: str) -> str:
    """The W&B key of a run path's tag: joined by ``/``, ``.`` written ``p`` (W&B's charts take a dot for
    nesting and lose the step axis)."""
    return "/".join((*path, name)).replace(".", "p")


# ----- Weights & Biases --------------------------------------------------------------------------------
class WandB:
    """The workdir's W&B run (``log``: the config's ``log`` block; ``config``: the whole config, a dict)."""

    def __init__(self, log, config: dict, layout: Layout):
        import wandb

        self.wandb, self.file = wandb, layout.wandb_file
        saved = json.loads(storage.read_text(self.file)) if storage.exists(self.file) else {}
        self.id = saved.get("id") or "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
        self.logged: dict[str, int] = dict(saved.get("logged", {}))  # key -> the last step logged under it
        self._save()  # the id is kept before anything is logged: a kill now still resumes this run
        local, options = storage.is_local(layout.workdir), {"console": "off", "quiet": True}
        if "x_transaction_log_flush_interval" in getattr(wandb.Settings, "model_fields", {}):
            options["x_transaction_log_flush_interval"] = 1.0  # seconds of points a kill -9 can cost the run
        self.run = wandb.init(
            project=log.wandb_project,
            entity=log.wandb_entity or None,
            mode=log.wandb_mode or None,
            id=self.id,
            resume="allow",
            name=os.path.basename(os.path.normpath(layout.workdir)),
            dir=storage.absolute(layout.workdir) if local else None,
            settings=wandb.Settings(**options),
        )
        self.run.config.update(config, allow_val_change=True)
        self.defined: set[str] = set()

    def rows(self, found: list) -> None:
        groups: dict[tuple, dict] = {}
        for path, name, step, value in found:
            key = wandb_key(path, name)
            if self.logged.get(key, -1) < step:
                groups.setdefault((path, step), {})[key] = value
        for (path, step), values in groups.items():
            axis = wandb_key(path, "step")
            if axis not in self.defined:
                self.run.define_metric(axis, hidden=True)
                self.defined.add(axis)
            for key in values.keys() - self.defined:
                self.run.define_metric(key, step_metric=axis)
                self.defined.add(key)
            self.run.log({axis: step, **values})
            self.logged.update(dict.fromkeys(values, step))
        if groups:
            self._save()

    def figures(self, paths: Sequence[str]) -> None:
        images = {
            f"figures/{os.path.splitext(os.path.basename(p))[0]}": self.wandb.Image(p)
            for p in paths
            if storage.is_local(p) and p.endswith(".png") and os.path.isfile(p)
        }
        if images:
            self.run.log(images)

    def close(self, failed: bool = False) -> None:
        self.run.finish(exit_code=1 if failed else 0)

    def _save(self) -> None:
        storage.write_text(self.file, json.dumps({"id": self.id, "logged": self.logged}, indent=1, sort_keys=True))


# ----- what the run context holds ----------------------------------------------------------------------
PACKAGES = {"log.tensorboard": "tensorboardX", "log.wandb_project": "wandb"}


class Watcher:
    """The writers ``config.log`` asks for, fed by the run context; each is opened on first use and
    dropped, with one line on stderr, when it fails. ``with watcher:`` closes them at the end."""

    def __init__(self, makers: dict[str, Callable[[], object]], columns: Sequence[str] = ()):
        self.makers, self.columns = dict(makers), tuple(columns)  # field -> how to open its writer
        self.open: dict[str, object] = {}

    @classmethod
    def of(cls, config, workdir: str, columns: Sequence[str] = ()) -> "Watcher":
        """The writers of ``config.log`` for ``workdir`` (none in a process other than the primary one)."""
        log, layout, makers = config.get("log"), Layout(workdir), {}
        if log is None or not processes.is_primary():
            return cls(makers, columns)
        if log.get("tensorboard", False):
            makers["log.tensorboard"] = lambda: TensorBoard(layout.tensorboard)
        if log.get("wandb_project", ""):
            makers["log.wandb_project"] = lambda: WandB(log, fields.to_dict(config), layout)
        return cls(makers, columns)

    def rows(self, rows: Sequence[dict]) -> None:
        """Writes rows just appended to ``results.csv`` (dicts, as recorded)."""
        if self.makers:
            found = points(rows, self.columns)
            if found:
                self._each("rows", found)

    def figures(self, paths: Sequence[str]) -> None:
        """Logs the report's figures (PNG paths)."""
        if self.makers and paths:
            self._each("figures", list(paths))

    def close(self, failed: bool = False) -> None:
        for field in [f for f in self.makers if f in self.open]:
            self._call(field, "close", failed)
        self.open.clear()

    def __enter__(self) -> "Watcher":
        return self

    def __exit__(self, kind, error, trace) -> bool:
        self.close(failed=kind is not None)
        return False

    def _each(self, method: str, *args) -> None:
        for field in list(self.makers):
            self._call(field, method, *args)

    def _call(self, field: str, method: str, *args) -> None:
        try:
            if field not in self.open:
                self.open[field] = self.makers[field]()
            getattr(self.open[field], method)(*args)
        except Exception as e:  # noqa: BLE001 (whatever a writer does wrong, the run goes on)
            del self.makers[field]
            print(failure(field, e), file=sys.stderr, flush=True)
            broken = self.open.pop(field, None)
            try:
                if broken is not None and method != "close":
                    broken.close(failed=True)  # what it holds is let go (a W&B run is finished)
            except Exception:  # noqa: BLE001
                pass


def failure(field: str, error: Exception) -> str:
    """The one line a failed writer leaves on stderr."""
    if isinstance(error, ImportError):
        return (
            f"jaxlth: {field} needs the {PACKAGES[field]} package (pip install 'jaxlth[watch]'); "
            "the run goes on without it"
        )
    reason = (str(error).strip().splitlines() or [""])[0][:200]
    return f"jaxlth: {field} stopped writing ({type(error).__name__}: {reason}); the run goes on without it"
