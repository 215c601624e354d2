"""An instability run read back: the copies spawned at a step, and tables written by older releases
in today's terms."""

from __future__ import annotations

import numpy as np
import pandas as pd

from jaxlth import checkpoint, nested, runs
from jaxlth.errors import UserError
from jaxlth.experiments.instability.arms import PERTURB, RENAMED, spawn_name
from jaxlth.training import copies as copies_lib


class InstabilityRun(runs.Run):
    """An instability run (``jaxlth.results.load`` of an instability workdir)."""

    def upgrade(self, table: pd.DataFrame) -> pd.DataFrame:
        """Renamed arms (``perturbed``), and the perturbation's noise scale moved from ``pair`` to
        ``noise_scale``, as releases before the experiment protocol wrote them."""
        table = table.copy()
        if "arm" in table:
            table["arm"] = table["arm"].replace(RENAMED)
        if "pair" in table and "arm" in table:
            old = (table["arm"] == PERTURB) & table["pair"].notna()
            if "noise_scale" not in table:
                table["noise_scale"] = np.nan
            if old.any():
                table["noise_scale"] = table["noise_scale"].astype(float)
                table.loc[old, "noise_scale"] = pd.to_numeric(table.loc[old, "pair"], errors="coerce")
                table.loc[old, "pair"] = np.nan
        return table

    def copies(self, spawn_step: int, replicate: int | None = None, copy: int | None = None, **setting) -> dict:
        """The trained copies spawned at ``spawn_step``: ``{"params", "batch_stats"}``.

        Leaves have a leading axis of ``replicates * copies`` (copy ``c`` of replicate ``r`` at
        ``r * copies + c``, ``jaxlth.training.copies``); ``replicate`` and/or ``copy`` select from it.
        A hyper-parameter sweep stacks that for every setting: ``setting`` (``lr=0.05``) chooses one.
        """
        path = self.layout.artifact(f"{spawn_name(spawn_step)}/final")
        if not checkpoint.artifact_exists(path):
            raise UserError(f"the copies spawned at step {spawn_step} are not finished in {self.workdir}")
        network = checkpoint.load_artifact(path)
        if setting or (self.grid.fields and (replicate is not None or copy is not None)):
            network = self.of_setting(network, **setting)
        elif self.grid.fields:
            return network
        copies, replicates = int(self.config["instability"]["copies"]), self.config["replicates"]
        if replicate is not None and not 0 <= replicate < replicates:
            raise UserError(f"replicate must be in [0, {replicates}), got {replicate}")
        if copy is not None and not 0 <= copy < copies:
            raise UserError(f"copy must be in [0, {copies}), got {copy}")
        rows = copies_lib.positions(replicates, copies, replicate, copy)
        pick = rows[0] if replicate is not None and copy is not None else rows
        return nested.map_tree(network, lambda x: np.asarray(x)[pick])
