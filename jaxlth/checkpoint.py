"""Training checkpoints (a bounded series of training states) and named artifacts (init, final, ...).

Checkpoint saves are asynchronous. A single process writing a local folder saves each step as one
safetensors file (:mod:`jaxlth.checkpoint_files`: written in ``<step>.partial/``, renamed to ``<step>``);
object stores and multi-process runs save with Orbax, which writes into a temporary directory and renames
it when complete. Either way a process killed mid-save leaves the previous checkpoint intact and the
half-written one is ignored (and cleaned up) on the next start. Call :meth:`Checkpoints.close` before exiting.
An artifact is a folder holding one safetensors file, written beside its name and renamed onto it:
a small tree takes ~2 ms to save (its fsync) and 0.3 ms to load, where Orbax took ~20 ms and ~8 ms,
a cost every cached step of a run paid twice (it saves, then loads what it saved). Artifacts and
checkpoints that earlier versions saved with Orbax are read by Orbax.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

import jax
import numpy as np
from absl import logging as absl_logging

from jaxlth import arrays_file, checkpoint_files, processes, sharding, storage
from jaxlth.errors import UserError, storage_error
from jaxlth.layout import ARRAYS_FILE, ARTIFACT_FILES, ORBAX_MARKER

PyTree = Any


def _orbax():
    """``orbax.checkpoint``, imported on first use: reading and checking a config needs none of it."""
    import orbax.checkpoint as ocp

    return ocp


def _why(what: str, error: Exception) -> str:
    """``the checkpoint WHAT cannot be read (Type: first line of the error)``."""
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"the checkpoint {what} cannot be read ({type(error).__name__}: {reason[:200]})"


def _unreadable(what: str, error: Exception) -> UserError:
    return UserError(
        f"{_why(what, error)}; move it out of the workdir to resume from the one before, or use a new --workdir"
    )


class Checkpoints:
    """The training checkpoints of one run in ``directory`` (one subfolder per step, the newest
    ``max_to_keep`` kept).

    A single process writing a local folder saves each step as one safetensors file
    (:mod:`jaxlth.checkpoint_files`) in a background thread; object stores and multi-process runs, whose
    arrays no one process holds whole, save with Orbax. Steps of either layout are read, so a workdir of
    an earlier version (Orbax's) resumes and goes on in the new one.
    """

    def __init__(self, directory: str, max_to_keep: int = 3):
        self.directory = storage.absolute(directory)
        self.max_to_keep = int(max_to_keep)
        self._manager = self._reader = None
        self._pending: Future | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._native = storage.is_local(self.directory) and processes.count() == 1
        if self._native:
            os.makedirs(self.directory, exist_ok=True)
            checkpoint_files.remove_partial(self.directory)
        else:
            self._manager = self._orbax_manager(max_to_keep)

    def _orbax_manager(self, max_to_keep: int | None):
        ocp = _orbax()
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True, cleanup_tmp_directories=True)
        return ocp.CheckpointManager(_orbax_path(self.directory), options=options)

    def _orbax_reader(self):
        """An Orbax manager for the steps of Orbax's layout (the writer's own, or one that saves nothing)."""
        if self._manager is not None:
            return self._manager
        if self._reader is None:
            self._reader = self._orbax_manager(None)
        return self._reader

    def latest_step(self) -> int | None:
        steps = self.all_steps()
        return steps[-1] if steps else None

    def all_steps(self) -> list[int]:
        if self._native:
            return checkpoint_files.steps(self.directory)
        return sorted(self._manager.all_steps())

    def save(self, step: int, state: PyTree, meta: dict | None = None) -> None:
        """Starts saving ``state`` at ``step`` in the background (``state`` may be donated after); waits
        for the save before it first, so at most one is pending."""
        meta = dict(meta or {}, step=int(step))
        with writing(self.directory):
            if not self._native:
                ocp = _orbax()
                args = ocp.args.Composite(
                    state=ocp.args.StandardSave(sharding.copy(state)), meta=ocp.args.JsonSave(meta)
                )
                self._manager.save(int(step), args=args, force=True)
                return
            self._wait()
            if self._writer is None:
                self._writer = ThreadPoolExecutor(1, thread_name_prefix="jaxlth-checkpoint")
            self._pending = self._writer.submit(self._commit, int(step), sharding.copy(state), meta)

    def _commit(self, step: int, state: PyTree, meta: dict) -> None:
        """In the writer thread: the state to the host, its step committed, the steps past the newest
        ``max_to_keep`` removed."""
        checkpoint_files.write(self.directory, step, sharding.to_host(state), meta)
        for old in checkpoint_files.steps(self.directory)[: -self.max_to_keep]:
            storage.remove_tree(os.path.join(self.directory, str(old)))

    def _wait(self) -> None:
        """Waits for the pending save; raises its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def restore(self, step: int, like: PyTree | None = None) -> tuple[PyTree, dict]:
        """The state saved at ``step``, shaped like ``like`` (``None``: as nested dicts of numpy arrays, for
        a look at it), and its metadata."""
        try:
            return self._read(step, like)
        except Exception as e:  # Orbax raises many types for damaged files.
            raise _unreadable(f"at step {step} in {self.directory}", e) from None

    def _read(self, step: int, like: PyTree | None) -> tuple[PyTree, dict]:
        path = checkpoint_files.file(self.directory, step)
        if storage.exists(path):
            return checkpoint_files.read(path, like)
        ocp = _orbax()
        abstract = None if like is None else jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        restored = self._orbax_reader().restore(
            int(step), args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore())
        )
        state = restored["state"] if like is not None else jax.tree.map(np.asarray, restored["state"])
        return state, dict(restored["meta"] or {})

    def meta(self, step: int) -> dict:
        """The metadata saved with the checkpoint at ``step`` (``{}`` when it cannot be read)."""
        try:
            path = checkpoint_files.file(self.directory, step)
            if storage.exists(path):
                return checkpoint_files.read_meta(path)
            ocp = _orbax()
            with quiet():
                restored = self._orbax_reader().restore(int(step), args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
            return dict(restored["meta"] or {})
        except Exception:  # noqa: BLE001 (an unreadable checkpoint is dealt with when it is restored)
            return {}

    def restore_latest(
        self, like: PyTree, lowest: int, highest: int, accept: Callable[[int, dict], bool] | None = None
    ) -> tuple[PyTree, int] | None:
        """``(state, step)`` of the newest checkpoint with ``lowest <= step <= highest`` that can be
        read (and that ``accept(step, meta)``, when given, accepts); ``None`` when none can. A
        checkpoint that cannot be read is moved aside (``<directory>.unreadable/<step>``), one that
        is not accepted to ``<directory>.incomplete/<step>`` (both kept for inspection) with one line
        on stderr, and the one before it is tried: a run resumed from an earlier step ends bitwise
        the same."""
        for step in sorted((s for s in self.all_steps() if lowest <= s <= highest), reverse=True):
            try:
                with quiet():
                    state, meta = self._read(step, like)
            except Exception as e:  # Orbax raises many types for damaged files.
                why = _why(f"at step {step} in {self.directory}", e)
                print(
                    f"jaxlth: {why}; moved to {self._set_aside(step)}, resuming from an earlier one",
                    file=sys.stderr,
                    flush=True,
                )
                continue
            if accept is None or accept(step, meta):
                return state, step
            print(
                f"jaxlth: results.csv lacks rows written before the checkpoint at step {step} in {self.directory} "
                f"(lost in a crash); moved to {self._set_aside(step, 'incomplete')}, resuming from an earlier one "
                "to write them again",
                file=sys.stderr,
                flush=True,
            )
        return None

    def _set_aside(self, step: int, why: str = "unreadable") -> str:
        source = os.path.join(self.directory, str(step))
        target = os.path.join(f"{self.directory}.{why}", str(step))
        storage.makedirs(os.path.dirname(target))
        suffix = 0
        while storage.exists(target + (f".{suffix}" if suffix else "")):
            suffix += 1
        target += f".{suffix}" if suffix else ""
        storage.replace(source, target)
        for manager in (self._manager, self._reader):
            if manager is not None:
                manager.reload()
        return target

    def close(self) -> None:
        """Waits for pending saves to be committed (raises the error of one that failed)."""
        with writing(self.directory):
            try:
                self._wait()
                if self._manager is not None:
                    self._manager.wait_until_finished()
            finally:
                if self._writer is not None:
                    self._writer.shutdown(wait=True)
                for manager in (self._manager, self._reader):
                    if manager is not None:
                        manager.close()


@contextlib.contextmanager
def quiet():
    """Orbax's and asyncio's own log lines silenced (their errors become one sentence of ours)."""
    loggers = [logging.getLogger(name) for name in ("absl", "asyncio")]
    levels = [logger.level for logger in loggers]
    verbosity = absl_logging.get_verbosity()
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    absl_logging.set_verbosity(absl_logging.FATAL)
    try:
        yield
    finally:
        absl_logging.set_verbosity(verbosity)
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@contextlib.contextmanager
def writing(path: str):
    """Orbax's failures to write ``path`` (full disk, read-only, ...) as one :class:`UserError`."""
    try:
        yield
    except UserError:
        raise
    except Exception as e:  # Orbax wraps OS errors in ValueError and others
        problem = storage_error(path, e)
        if problem is None:
            raise
        raise problem from None


def save_artifact(path: str, tree: PyTree) -> None:
    """Saves a pytree (params, masks, ...) to the folder ``path`` synchronously, as one safetensors file
    (:mod:`jaxlth.arrays_file`, renamed into place whole); replaces an older one (an Orbax folder too).
    Every process calls it; process 0 writes."""
    host = sharding.to_host(tree)
    # Every process decided to save before any writes (a process still asking ``artifact_exists`` must not
    # see this file and skip its save), and none reads before it is in place.
    processes.barrier(f"artifact {path} to be written")
    with writing(path):
        if storage.exists(os.path.join(path, ORBAX_MARKER)):
            storage.remove_tree(path)
        storage.makedirs(path)
        arrays_file.write_tree(os.path.join(path, ARRAYS_FILE), host)
    processes.barrier(f"artifact {path} written")


def load_artifact(path: str) -> PyTree:
    """The pytree saved at ``path`` as numpy arrays (:func:`arrays_file.read_tree`); an artifact written
    by earlier versions (an Orbax folder) is read by Orbax, which gives back the same kinds of trees."""
    path = storage.absolute(path)
    file = os.path.join(path, ARRAYS_FILE)
    if storage.exists(file):
        try:
            return arrays_file.read_tree(file)
        except Exception as e:  # a truncated or damaged file: UserError, OSError, ValueError, ...
            raise _unreadable(path, e) from None
    if not storage.isdir(path):
        raise UserError(f"there is no saved artifact at {path}")
    checkpointer = _orbax().StandardCheckpointer()
    try:
        tree = checkpointer.restore(_orbax_path(path))
    except Exception as e:
        raise _unreadable(path, e) from None
    finally:
        checkpointer.close()
    return jax.tree.map(np.asarray, tree)


def artifact_exists(path: str) -> bool:
    return any(storage.exists(os.path.join(path, name)) for name in ARTIFACT_FILES)


def _orbax_path(path: str) -> str:
    """The path Orbax is given for ``path``: the same (Orbax writes local folders and ``gs://``
    itself, arrays through TensorStore); the cloud-workdir test maps it to a local folder here."""
    return path
