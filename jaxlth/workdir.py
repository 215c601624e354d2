"""A workdir belongs to one experiment: the first run writes ``config.json``, later runs must match.

A rerun must agree with the saved config in every field its experiment reads (the common
fields, its block, ``Experiment.reads``), except those it may change: the caller says what differs
(:func:`jaxlth.experiments.recipes.rerun_differences`).
While a process works in a workdir it holds an exclusive lock on ``.lock``; the operating system
releases it when the process ends, however it ends, so a lock is never stale.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from typing import Callable

import ml_collections

from jaxlth import fields, processes, storage
from jaxlth.errors import UserError
from jaxlth.layout import CONFIG_FILE, Layout


def claim(
    workdir: str, config: ml_collections.ConfigDict, differ: Callable[[dict, dict], list[str]], write: bool = True
) -> bool:
    """Makes ``workdir`` this config's (writing ``config.json``) or checks that it already is.

    ``differ(saved, current)``: the fields a rerun would change (both dicts in today's field names).
    Returns True when the workdir already held this experiment (a resume). Raises UserError,
    touching nothing, when it holds another experiment or unrelated files. ``write=False`` only
    checks (nothing is created or changed).
    """
    if not workdir:
        raise UserError("--workdir is required: the folder where config.json, results.csv and checkpoints go")
    layout = Layout(workdir)
    storage.check_reachable(workdir)
    if storage.exists(workdir) and not storage.isdir(workdir):
        raise UserError(f"--workdir {workdir} is a file, not a folder")
    path = layout.config_file
    current = fields.to_dict(config)
    if storage.exists(path):
        try:
            written = json.loads(storage.read_text(path))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UserError(f"{path} cannot be read ({e}); this workdir is damaged, use another --workdir") from None
        saved = fields.migrate_saved(written)
        if saved.get("experiment") != current["experiment"]:
            raise UserError(
                f"workdir {workdir} holds a {saved.get('experiment')!r} experiment, not "
                f"{current['experiment']!r}; use another --workdir"
            )
        diffs = differ(saved, current)
        if diffs:
            more = f" and {len(diffs) - 1} more" if len(diffs) > 1 else ""
            raise UserError(
                f"workdir {workdir} holds a different experiment ({diffs[0]}{more}); "
                "use another --workdir, or rerun with the config saved in its config.json"
            )
        if write and written != current:  # only fields that may grow or are unread changed: record them
            if saved != written:
                print(
                    f"jaxlth: {path} was written by an older jaxlth; saved again in today's field names",
                    file=sys.stderr,
                    flush=True,
                )
            _write(path, current)
        return True
    if storage.isdir(workdir) and storage.listdir(workdir):
        raise UserError(f"workdir {workdir} is not empty and holds no jaxlth {CONFIG_FILE}; choose a new --workdir")
    if not write:
        return False
    try:
        storage.makedirs(workdir)
        _write(path, current)
    except OSError as e:
        raise UserError(f"cannot write to workdir {workdir} ({e.strerror or e})") from None
    return False


def mark_finished(workdir: str, view: dict) -> None:
    """Records that ``workdir`` finished everything the config ``view`` (what it computed) asks for."""
    _write(Layout(workdir).finished_file, view)


def finished(workdir: str, view: dict, defaults: dict) -> bool:
    """Whether ``workdir`` last finished with the config ``view`` (a field an older ``finished.json``
    lacks counts as its value in ``defaults``)."""
    path = Layout(workdir).finished_file
    try:
        saved = fields.migrate_saved(json.loads(storage.read_text(path)))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return not fields.differences(saved, json.loads(json.dumps(view)), (), defaults)


class Lock:
    """An exclusive lock on a workdir for the life of this object (``with Lock(layout):``).

    Local workdirs only: an object store (``gs://``) has no locks, so there one process at a time
    is the user's to ensure. In a multi-process run, process 0 holds it (it alone writes)."""

    def __init__(self, layout: Layout):
        self.path = layout.lock_file
        self._file = None

    def __enter__(self) -> "Lock":
        if not storage.is_local(self.path) or not processes.is_primary():
            return self
        try:
            self._file = open(self.path, "a")
        except OSError as e:
            raise UserError(f"cannot write to workdir {os.path.dirname(self.path)} ({e.strerror or e})") from None
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._file.close()
            raise UserError(
                f"another jaxlth process is working in {os.path.dirname(self.path)}; wait for it to "
                "finish (or stop it) before running here"
            ) from None
        return self

    def __exit__(self, *exc) -> None:
        if self._file is None:
            return
        fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        self._file.close()


def _write(path: str, config: dict) -> None:
    storage.write_text(path, json.dumps(config, indent=2, sort_keys=True))
