"""A scores run read back: each training example's EL2N, GraNd and forgetting scores."""

from __future__ import annotations

import numpy as np

from jaxlth import runs, subsets


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
