"""Orbax checkpoints: a bounded series of training states, and named artifacts (init, final, ...).

Saves are asynchronous; Orbax writes into a temporary directory and renames it when complete,
so a process killed mid-save leaves the previous checkpoint intact and the half-written one is
ignored (and cleaned up) on the next start. Call :meth:`Checkpoints.close` before exiting.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxlth.errors import UserError
from jaxlth.training.state import copy as device_copy

PyTree = Any


def _unreadable(what: str, error: Exception) -> UserError:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return UserError(
        f"the checkpoint {what} cannot be read ({type(error).__name__}: {reason[:200]}); "
        "move it out of the workdir to resume from the one before, or use a new --workdir"
    )


class Checkpoints:
    """The training checkpoints of one run in ``directory`` (one subfolder per step)."""

    def __init__(self, directory: str, max_to_keep: int = 3):
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True, cleanup_tmp_directories=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state: PyTree, meta: dict | None = None) -> None:
        """Starts saving ``state`` at ``step`` in the background (``state`` may be donated after)."""
        args = {"state": ocp.args.StandardSave(device_copy(state))}
        args["meta"] = ocp.args.JsonSave(dict(meta or {}, step=int(step)))
        self._manager.save(int(step), args=ocp.args.Composite(**args), force=True)

    def restore(self, step: int, like: PyTree) -> tuple[PyTree, dict]:
        """The state saved at ``step``, shaped like ``like``, and its metadata."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        try:
            restored = self._manager.restore(
                int(step),
                args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()),
            )
        except Exception as e:  # Orbax raises many types for damaged files.
            raise _unreadable(f"at step {step} in {self.directory}", e) from None
        return restored["state"], dict(restored["meta"] or {})

    def close(self) -> None:
        """Waits for pending saves to be committed."""
        self._manager.wait_until_finished()
        self._manager.close()


def save_artifact(path: str, tree: PyTree) -> None:
    """Saves a pytree (params, masks, ...) to ``path`` synchronously; replaces an older one."""
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(os.path.abspath(path), jax.device_get(tree), force=True)
    checkpointer.wait_until_finished()
    checkpointer.close()


def load_artifact(path: str) -> PyTree:
    """The pytree saved at ``path`` as numpy arrays."""
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        raise UserError(f"there is no saved artifact at {path}")
    checkpointer = ocp.StandardCheckpointer()
    try:
        tree = checkpointer.restore(path)
    except Exception as e:
        raise _unreadable(path, e) from None
    finally:
        checkpointer.close()
    return jax.tree.map(np.asarray, tree)


def artifact_exists(path: str) -> bool:
    return os.path.isdir(path) and os.path.exists(os.path.join(path, "_CHECKPOINT_METADATA"))
