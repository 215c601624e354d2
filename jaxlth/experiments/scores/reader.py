"""A scores run read back: each training example's EL2N, GraNd and forgetting scores, and the networks
they were taken from."""

from __future__ import annotations

import numpy as np

from jaxlth import checkpoint, runs, storage, subsets
from jaxlth import steps as step_specs
from jaxlth.errors import UserError
from jaxlth.experiments.scores.run import network_name
from jaxlth.layout import scores_name


class ScoresRun(runs.Run):
    """A scores run (``jaxlth.results.load`` of a scores workdir)."""

    def score_steps(self) -> list[int]:
        """The steps (iterations) at which EL2N and GraNd were saved."""
        return subsets.steps(self.workdir)

    def has_forgetting(self) -> bool:
        """Whether the forgetting counters are saved (at the end of training)."""
        return subsets.has_forgetting(self.workdir)

    def scores(self, kind: str, step: str | int | None = None, replicates: bool = False) -> np.ndarray:
        """Per-example scores of the training set: ``(N,)`` float32, the mean over replicates, or
        ``(R, N)`` with ``replicates=True``; example ``i`` is the ``i``-th training example of the
        run's data (larger = harder).

        ``kind``: ``"el2n"`` or ``"grand"`` at ``step`` (a step spec such as ``"20ep"`` or an
        iteration count; ``None``: the last scored step), ``"forgetting"`` (forgetting events,
        ``inf`` when never learned) or ``"never_learned"``.
        """
        return subsets.load(self.workdir, kind, step, replicates)

    def network_steps(self) -> list[int]:
        """The steps (iterations) whose networks are saved: every scoring step and the end of training."""
        folder = self.layout.artifact(network_name(0)).rsplit("step_", 1)[0]
        names = storage.listdir(folder) if storage.isdir(folder) else []
        steps = [int(name[len("step_") :]) for name in names if name.startswith("step_")]
        return sorted(s for s in steps if checkpoint.artifact_exists(self.layout.artifact(network_name(s))))

    def network_at(self, step: str | int, replicate: int | None = None) -> dict:
        """``{"params", "batch_stats"}`` of the networks trained to ``step`` (a scoring step or the end of
        training; an iteration count or a step spec such as ``"4ep"``), the replicates stacked on axis 0
        (or one ``replicate``)."""
        saved = self.network_steps()
        if isinstance(step, str):
            scored = self.score_steps()
            if not scored:
                raise UserError(f"{self.workdir} has no saved scores to tell its epoch length yet")
            per_epoch = int(self.load(scores_name(scored[0]))["steps_per_epoch"])
            step = step_specs.to_steps(step, per_epoch, "step")
        if int(step) not in saved:
            raise UserError(f"{self.workdir} has no networks saved at step {step}; it has steps {saved}")
        return self.select(self.load(network_name(int(step))), replicate)
