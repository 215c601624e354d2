"""A distill run read back: the distilled sets (the artifact of the contract) and their learning curves."""

from __future__ import annotations

import numpy as np
import pandas as pd

from jaxlth import checkpoint, runs
from jaxlth.errors import UserError
from jaxlth.experiments.distill.arms import SYNTHETIC
from jaxlth.experiments.distill.run import DISTILLED, HISTORY, ROWS, TESTED


class DistillRun(runs.Run):
    """A distill run (``jaxlth.results.load`` of a distill workdir)."""

    def distilled(self, replicate: int | None = None) -> dict:
        """``{"images", "labels", "lr"}``: ``images`` ``(R, N, *image_shape)`` float32 in the real data's
        stored units (class-major: image ``i`` is of class ``i // images_per_class``), ``labels`` ``(R, N)``
        int32 classes or ``(R, N, K)`` float32 logits (learned soft labels), ``lr`` ``(R,)`` float32 the
        learned (MTT) or fixed (DM) learning rate; one set without the leading axis with ``replicate``."""
        if not self.finished_distilling():
            raise UserError(f"{self.workdir} has no distilled set yet; run (or resume) it to the end first")
        tree = self.load(DISTILLED)
        return tree if replicate is None else {k: np.asarray(v)[replicate] for k, v in tree.items()}

    def finished_distilling(self) -> bool:
        return checkpoint.artifact_exists(self.layout.artifact(DISTILLED))

    def history(self) -> dict:
        """``{"losses", "lrs"}``: ``(R, iterations)`` float32, every outer iteration's loss and the learned
        learning rate after it (saved at the end)."""
        return self.load(HISTORY)

    def curve(self, metric: str | None = None) -> pd.DataFrame:
        """The logged rows of the outer loop (``matching_loss`` or ``dm_loss``, and ``lr``): columns
        ``replicate, step, metric, value``."""
        table = self.table
        rows = table[(table["arm"] == ROWS["arm"]) & (table["split"] == ROWS["split"])]
        if metric is not None:
            rows = rows[rows["metric"] == metric]
        return rows[["replicate", "step", "metric", "value"]].reset_index(drop=True)

    def tested(self) -> pd.DataFrame:
        """Test loss and accuracy of a fresh network trained on each set at its start (``step=0``) and at its
        end: columns ``replicate, step, metric, value``."""
        table = self.table
        rows = table[(table["arm"] == SYNTHETIC) & (table["split"] == TESTED["split"])]
        return rows[["replicate", "step", "metric", "value"]].reset_index(drop=True)
