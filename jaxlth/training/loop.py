"""Running a training segment ``[start, end)`` with evaluations, checkpoints and exact resume.

Chunk boundaries are absolute step numbers (multiples of ``eval_every`` and ``checkpoint_every``,
and ``end``), never "steps since this process started": a run resumed from the checkpoint at
step ``s`` executes exactly the compiled chunks the uninterrupted run executed after ``s``, so
its final state is bitwise the same.

The loop knows no workdir and no file format: it reports measurements to a :class:`Reporter`
(the experiment's recorder) and saves states through a :class:`~jaxlth.checkpoint.Checkpoints`.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Callable, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxlth import processes, sharding, timing
from jaxlth.checkpoint import Checkpoints
from jaxlth.errors import UserError
from jaxlth.pruning import masks as mask_lib
from jaxlth.training.program import DeviceData, Program
from jaxlth.training.state import TrainState

PyTree = Any


@dataclasses.dataclass
class Segment:
    """What to train.

    Attributes:
      start, end: global steps; the segment trains steps ``start .. end - 1``.
      eval_every, checkpoint_every: intervals in steps (absolute multiples are used).
      eval_train: also evaluate on the whole training set.
      progress, description: the progress bar on stderr.
      on_nan: a stacked network whose training loss or weights turn non-finite ``"stop"``s the
        run (no checkpoint of it is saved) or, ``"mask_replicate"``, is reported once and left
        to run on (its rows are NaN; the others are unaffected: they train independently).
    """

    start: int
    end: int
    eval_every: int
    checkpoint_every: int
    eval_train: bool = False
    progress: bool = True
    description: str = "train"
    on_nan: str = "stop"  # stop | mask_replicate (see run_segment)
    chunk_every: int = 0  # also cut chunks at multiples of this (streamed data: its batches are on the device); 0: no


class Reporter(Protocol):
    """Where a segment's measurements go."""

    def restart(self, step: int, end: int, resumed: bool) -> None:
        """Forget what was reported for steps in ``(step, end]`` (``[step, end]`` unless ``resumed``)."""

    def report(self, step: int, density: np.ndarray, metrics: dict) -> None:
        """Measurements at ``step``: ``{split: {metric: (N,) values}}``, ``density`` ``(N,)``."""

    def describe(self, positions: list[int]) -> str:
        """Stacked positions in words, e.g. ``"arm imp, level 1: replicate 0; replicate 3"``."""

    def written(self, step: int) -> dict:
        """What it has written for the steps up to ``step`` (JSON), saved with the checkpoint at ``step``."""

    def holds(self, step: int, written: dict) -> bool:
        """Whether everything ``written(step)`` said is still there (a crash can lose what was written)."""


def boundaries(start: int, end: int, *intervals: int) -> list[int]:
    """Sorted absolute steps in ``(start, end]`` that are multiples of an interval, plus ``end``."""
    points = {end}
    for every in intervals:
        points.update(range((start // every + 1) * every, end, every))
    return sorted(p for p in points if start < p <= end)


def evaluate(program: Program, state: TrainState, data: DeviceData, eval_train: bool) -> dict:
    """``{split: {"loss": (R,), "accuracy": (R,)}}`` on the test (and train) split; for text, the
    task's metrics instead of ``accuracy``, and the data's extra test splits too (MNLI mismatched)."""
    if program.spec.text is not None:
        splits = ["test", *data.extra_tests, *(["train"] if eval_train else [])]
        return sharding.to_host(program.evaluate_splits(state.params, state.batch_stats, data, splits))
    out = {}
    for split in ("test", "train") if eval_train else ("test",):
        loss, acc = sharding.to_host(program.evaluate_data(state.params, state.batch_stats, data, split))
        out[split] = {"loss": loss, "accuracy": acc}
    return out


@jax.jit
def _finite(params: PyTree) -> jax.Array:
    """``(N,)``: whether every weight of each stacked network is finite."""
    leaves = [jnp.all(jnp.isfinite(x).reshape(x.shape[0], -1), axis=1) for x in jax.tree.leaves(params)]
    return jnp.all(jnp.stack(leaves), axis=0)


def _check_finite(
    state: TrainState,
    batch_loss,
    segment: Segment,
    first: int,
    last: int,
    reporter: Reporter,
    checkpoints: Checkpoints,
    diverged: set,
) -> None:
    """Stops the run (``on_nan="stop"``) or reports once (``"mask_replicate"``) each network whose
    training loss over steps ``first .. last - 1`` or weights at ``last`` are not finite."""
    finite = sharding.to_host(_finite(state.params)) & np.isfinite(batch_loss)
    new = [int(i) for i in np.flatnonzero(~finite) if int(i) not in diverged]
    if not new:
        return
    who = reporter.describe(new)
    if segment.on_nan == "stop":
        kept = checkpoints.latest_step()
        raise UserError(
            f"training diverged (non-finite loss or weights) between steps {first} and {last} of "
            f"'{segment.description}' ({who}); "
            + (f"the last checkpoint, at step {kept}, is kept" if kept is not None else "no checkpoint was saved")
            + "; lower train.lr in a new --workdir, or rerun with --config.on_nan=mask_replicate "
            "to let the other networks go on"
        )
    diverged.update(new)
    print(
        f"jaxlth: warning: training diverged between steps {first} and {last} of '{segment.description}' ({who}); "
        f"their rows are NaN from here on, the other networks go on (on_nan=mask_replicate)",
        file=sys.stderr,
        flush=True,
    )


def run_segment(
    program: Program,
    data: DeviceData,
    mask: PyTree,
    segment: Segment,
    initial_state: Callable[[], TrainState],
    checkpoints: Checkpoints,
    reporter: Reporter,
    place: Callable[[PyTree], PyTree] = lambda tree: tree,
    phases: timing.Phases | None = None,
) -> TrainState:
    """Trains ``initial_state()`` (or resumes from the latest readable checkpoint) to ``segment.end``.

    Reports an evaluation at ``start`` and at every multiple of ``eval_every``; saves a
    checkpoint at every multiple of ``checkpoint_every`` and at ``end``, with what the reporter has
    written by then. It resumes from the newest checkpoint whose reported measurements are all still
    there (a crash can lose the tail of what was written; the steps after it are replayed and report
    the same again), and the reporter first forgets what it was told after that checkpoint, so
    nothing is duplicated. ``place`` puts the state and mask on the devices (sharding the replicate axis).
    ``phases`` counts the time spent training, evaluating and saving (:mod:`jaxlth.timing`; measured
    where the loop waits for the device anyway).
    """
    phases = phases if phases is not None else timing.Phases()
    with phases("checkpoints"):
        found = checkpoints.restore_latest(
            place(jax.eval_shape(initial_state)), segment.start, segment.end, accept=reporter.holds
        )
    resumed = found is not None
    state, step = found if resumed else (initial_state(), segment.start)
    state, mask = place(state), place(mask)
    reporter.restart(step, segment.end, resumed)

    density = mask_lib.replicate_density(mask, state.data_key.shape[0])
    if not resumed:
        with phases("evaluation"):
            metrics = evaluate(program, state, data, segment.eval_train)
        reporter.report(step, density, metrics)
    points = boundaries(
        step,
        segment.end,
        segment.eval_every,
        segment.checkpoint_every,
        *([segment.chunk_every] if segment.chunk_every else []),
    )
    bar = tqdm(
        total=segment.end - segment.start,
        initial=step - segment.start,
        desc=segment.description,
        unit="step",
        disable=not segment.progress or not processes.is_primary(),
        file=sys.stderr,
        dynamic_ncols=True,
        leave=True,
    )
    diverged: set[int] = set()
    for point in points:
        phases.step()
        with phases("training"):  # to_host waits for the chunk
            state, batch_metrics = program.train_chunk(state, mask, data, step, num_steps=point - step)
            batch_loss, batch_acc = sharding.to_host(batch_metrics)
        _check_finite(state, batch_loss, segment, step, point, reporter, checkpoints, diverged)
        step = point
        if step % segment.eval_every == 0 or step == segment.end:
            with phases("evaluation"):
                metrics = evaluate(program, state, data, segment.eval_train)
            metrics.setdefault("train", {}).update(batch_loss=batch_loss, batch_accuracy=batch_acc)
            reporter.report(step, density, metrics)
            main = next(m for m in metrics["test"] if m != "loss")  # accuracy, or a text task's main metric
            shown = {"test_acc" if main == "accuracy" else f"test_{main}": f"{np.mean(metrics['test'][main]):.4f}"}
            bar.set_postfix(shown, refresh=False, loss=f"{np.mean(batch_loss):.4f}")
        if step % segment.checkpoint_every == 0 or step == segment.end:
            with phases("rows"):
                written = reporter.written(step)
            with phases("checkpoints"):
                checkpoints.save(step, state, {**program.data_state(step), "written": written})
        bar.update(step - segment.start - bar.n)
    bar.close()
    return state
