"""Where everything of a run lives inside its workdir: the one owner of every path.

::

    config.json                         the resolved config (written first; later runs must match it)
    finished.json                       the config a run last finished with (a sweep skips finished runs)
    results.csv                         tidy measurements (jaxlth.records)
    results.rows                        the ledger: how many rows results.csv held when last written
    pretrained.json                     model.pretrained: where each replicate started, what was loaded
    .lock                               held by the process working in the workdir
    timing.json                         where the last run's process spent its time (jaxlth.timing)
    artifacts/<name>/                   Orbax pytrees saved once and never recomputed, e.g.
      init/, rewind/                      networks at step 0 and at the rewind step (all replicates)
      <arm>/level_LL/{mask,start,final}/  a level's mask, starting network and trained network
      spawn_KKKKKKK/final/                instability: copies spawned at step K, trained
      <name>/measured                     an empty file: the analysis <name> is recorded
      scores/step_SSSSSSS/                per-example EL2N and GraNd of every replicate at step S
      scores/forgetting/                  per-example training history (forgetting events)
      data_diet/pruned_F/{examples,final} the examples kept with fraction F pruned, the trained networks
    checkpoints/<name>/<step>/          resumable training states of a segment in progress
    plots/                              figures
    tensorboard/<arm>/level_LL/...      log.tensorboard: event files, one folder per TensorBoard run
    wandb_run.json, wandb/              log.wandb_project: the W&B run id, the steps logged; wandb's files

``LL`` is a two-digit level, ``KKKKKKK`` a seven-digit step. Nothing else in jaxlth spells a
path inside a workdir.
"""

from __future__ import annotations

import dataclasses
import os

CONFIG_FILE = "config.json"
RESULTS_FILE = "results.csv"
FINISHED_FILE = "finished.json"
LOCK_FILE = ".lock"
WANDB_FILE = "wandb_run.json"
PRETRAINED_FILE = "pretrained.json"
TIMING_FILE = "timing.json"
ARRAYS_FILE = "arrays.safetensors"  # an artifact is a folder holding this file (jaxlth.checkpoint)
ORBAX_MARKER = "_CHECKPOINT_METADATA"  # what Orbax writes last: an artifact of earlier versions is complete
ARTIFACT_FILES = (ARRAYS_FILE, ORBAX_MARKER)  # an artifact folder holding either is complete


def level_name(level: int) -> str:
    """``3 -> "level_03"``."""
    return f"level_{int(level):02d}"


def scores_name(step: int) -> str:
    """``4 -> "scores/step_0000004"``: the per-example scores taken at ``step``."""
    return f"{SCORES}/step_{int(step):07d}"


SCORES = "scores"
FORGETTING = f"{SCORES}/forgetting"


@dataclasses.dataclass(frozen=True)
class Layout:
    """The paths of one workdir."""

    workdir: str

    @property
    def config_file(self) -> str:
        return os.path.join(self.workdir, CONFIG_FILE)

    @property
    def results_file(self) -> str:
        return os.path.join(self.workdir, RESULTS_FILE)

    @property
    def finished_file(self) -> str:
        return os.path.join(self.workdir, FINISHED_FILE)

    @property
    def lock_file(self) -> str:
        return os.path.join(self.workdir, LOCK_FILE)

    @property
    def timing_file(self) -> str:
        """``timing.json``: where the last run's process spent its time (:mod:`jaxlth.timing`)."""
        return os.path.join(self.workdir, TIMING_FILE)

    @property
    def plots(self) -> str:
        return os.path.join(self.workdir, "plots")

    @property
    def tensorboard(self) -> str:
        """``tensorboard/``: TensorBoard event files (``log.tensorboard``), a folder per TensorBoard run."""
        return os.path.join(self.workdir, "tensorboard")

    @property
    def wandb_file(self) -> str:
        """``wandb_run.json``: the W&B run of the workdir (``log.wandb_project``) and the steps it logged."""
        return os.path.join(self.workdir, WANDB_FILE)

    @property
    def pretrained_file(self) -> str:
        """``pretrained.json``: where the replicates of a ``model.pretrained`` run started."""
        return os.path.join(self.workdir, PRETRAINED_FILE)

    def artifact(self, name: str) -> str:
        """``artifacts/<name>``; ``name`` may hold ``/`` (``"imp/level_02/mask"``)."""
        return os.path.join(self.workdir, "artifacts", *name.split("/"))

    def level_artifact(self, arm: str, level: int, what: str) -> str:
        """``artifacts/<arm>/level_LL/<what>`` (``what``: mask, start or final)."""
        return self.artifact(f"{arm}/{level_name(level)}/{what}")

    def arm_dir(self, arm: str) -> str:
        """``artifacts/<arm>``: the levels of an arm are its ``level_LL`` subfolders."""
        return self.artifact(arm)

    def checkpoints(self, name: str) -> str:
        """``checkpoints/<name>``; ``name`` may hold ``/``; ``""`` is the folder itself (plain training)."""
        return os.path.join(self.workdir, "checkpoints", *filter(None, name.split("/")))

    def marker(self, name: str) -> str:
        """``artifacts/<name>``: an empty file whose presence says an analysis is recorded."""
        return self.artifact(name)
