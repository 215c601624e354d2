"""``experiment = "lottery"``: iterative magnitude pruning with rewinding, and control branches.

Frankle & Carbin (2019), Frankle et al. (2020), Renda et al. (2020). With rewind step ``k`` and
``T`` training steps::

    pretrain 0 -> k once (dense)              -> rewind network (params + batch statistics)
    level 0: dense mask; train k -> T from the rewind network
    level L: mask_L = prune(final_{L-1}, mask_{L-1}); train k -> T from
             weight_rewind: rewind params on mask_L, rewind batch statistics
             lr_rewind:     final_{L-1} params on mask_L, the schedule replayed from k
             finetune:      final_{L-1} params on mask_L, T - k steps at the final learning rate
             branches:      transform(mask_L, rewind network) -> train k -> T (same data order)

Every training restarts the optimizer state and continues the data order and schedule from k.
Workdir layout (``LL`` = two-digit level)::

    artifacts/init/, artifacts/rewind/         networks at step 0 and step k (all replicates)
    artifacts/<arm>/level_LL/mask/, .../final/ mask and trained network of an arm at a level
    checkpoints/<arm>/level_LL/<step>/         resumable training states of the level in progress
    plots/accuracy_vs_weights.png, plots/layer_density.png

What is on disk is never recomputed: a rerun skips finished levels, resumes the level in progress
from its latest checkpoint, and a larger ``lottery.levels`` (or new branches) extends the run.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxlth import checkpoint, results
from jaxlth import workdir as workdir_lib
from jaxlth.experiments import setup as setup_lib
from jaxlth.lottery import branches as branches_lib
from jaxlth.lottery import imp
from jaxlth.pruning import masks as mask_lib
from jaxlth.training import loop
from jaxlth.training.state import TrainState, replicate_keys

IMP = "imp"
PRETRAIN = "pretrain"


def level_name(level: int) -> str:
    return f"level_{level:02d}"


class Lottery:
    """One lottery experiment in a workdir: builds what is missing, reuses what is on disk."""

    def __init__(self, config, workdir: str):
        self.config = config
        self.workdir = workdir
        self.setup = setup_lib.build(config)
        self.rewind_step = self.setup.to_steps(config.lottery.rewind, "lottery.rewind")
        self.total_steps = self.setup.total_steps
        imp.check(config, self.rewind_step, self.total_steps)
        self.branches = branches_lib.get(tuple(config.lottery.branches))
        overrides = imp.parse_overrides(config.lottery.retrain_overrides)
        self.retrain_setup = self.setup.with_train(**overrides) if overrides else self.setup
        if config.lottery.retrain == "finetune":
            final_lr = float(self.setup.program.schedule(jnp.int32(self.total_steps - 1)))
            self.finetune_setup = self.setup.with_train(schedule="constant", lr=final_lr, warmup="0it")

    # ----- files -------------------------------------------------------------------------------
    def _artifact(self, name: str, arm: str | None = None, level: int | None = None) -> str:
        parts = [arm, level_name(level), name] if arm is not None else [name]
        return results.artifact_dir(self.workdir, os.path.join(*parts))

    def _load(self, path: str):
        return jax.tree.map(jnp.asarray, checkpoint.load_artifact(path))

    # ----- the networks at step 0 and step k --------------------------------------------------
    def init_network(self) -> dict:
        path = self._artifact("init")
        if not checkpoint.artifact_exists(path):
            state = self.setup.init_state()
            checkpoint.save_artifact(path, {"params": state.params, "batch_stats": state.batch_stats})
        return self._load(path)

    def rewind_network(self) -> dict:
        """Params and batch statistics at step k (training 0 -> k once, dense)."""
        path = self._artifact("rewind")
        if checkpoint.artifact_exists(path):
            return self._load(path)
        init = self.init_network()
        if self.rewind_step == 0:
            network = init
        else:
            state = self._train(PRETRAIN, 0, {}, init, self.setup, start=0, end=self.rewind_step,
                                description="pretrain to rewind step")
            network = {"params": state.params, "batch_stats": state.batch_stats}
        checkpoint.save_artifact(path, network)
        return self._load(path)

    # ----- training -----------------------------------------------------------------------------
    def _train(self, arm: str, level: int, mask, network: dict, setup, start: int, end: int,
               description: str) -> TrainState:
        """Trains ``network`` on ``mask`` from step ``start`` to ``end``, resumably."""
        program = setup.program

        def initial_state() -> TrainState:
            params = imp.on_mask(network["params"], mask)
            batch_stats = jax.tree.map(lambda x: x.copy(), network["batch_stats"])
            return TrainState(params, batch_stats, program.fresh_opt_state(params), self.setup.data_keys())

        segment = loop.Segment(
            start=start, end=end, eval_every=self.setup.eval_every, checkpoint_every=self.setup.checkpoint_every,
            labels={"experiment": "lottery", "arm": arm, "level": level}, steps_per_epoch=self.setup.steps_per_epoch,
            eval_train=self.config.eval_train, progress=self.config.progress, description=description,
        )
        checkpoints = checkpoint.Checkpoints(os.path.join(self.workdir, "checkpoints", arm, level_name(level)),
                                             self.config.keep_checkpoints)
        try:
            return loop.run_segment(program, self.setup.data, mask, segment, initial_state, checkpoints, self.workdir,
                                    place=self.setup.place)
        finally:
            checkpoints.close()

    def trained(self, arm: str, level: int, mask, network: dict, setup) -> dict:
        """The network of ``arm`` at ``level`` trained k -> T (loaded when already on disk)."""
        path = self._artifact("final", arm, level)
        if not checkpoint.artifact_exists(path):
            state = self._train(arm, level, mask, network, setup, self.rewind_step, self.total_steps,
                                description=f"{arm} level {level}")
            checkpoint.save_artifact(path, {"params": state.params, "batch_stats": state.batch_stats})
        return self._load(path)

    # ----- masks ------------------------------------------------------------------------------
    def _save_mask(self, arm: str, level: int, mask) -> None:
        checkpoint.save_artifact(self._artifact("mask", arm, level), mask)
        self._record_mask(arm, level, mask)

    def _record_mask(self, arm: str, level: int, mask) -> None:
        """Per-layer density rows of a mask (rewritten, so a rerun never duplicates them)."""
        labels = {"experiment": "lottery", "arm": arm, "level": str(level), "split": "mask"}
        results.drop_rows(self.workdir, lambda row: all(row.get(k) == v for k, v in labels.items()))
        overall = np.asarray(mask_lib.density(mask, replicate_axis=True))
        rows = []
        for layer, values in mask_lib.layer_density(mask, replicate_axis=True).items():
            for r, value in enumerate(np.asarray(values)):
                rows.append(dict(experiment="lottery", arm=arm, level=level, replicate=r, density=float(overall[r]),
                                 step=self.rewind_step, epoch=round(self.rewind_step / self.setup.steps_per_epoch, 4),
                                 split="mask", metric="density", value=float(value), layer=layer))
        results.append_rows(self.workdir, rows)

    def imp_mask(self, level: int, previous_final: dict | None, previous_mask) -> dict:
        """The IMP mask of ``level`` (dense at level 0), computed once and saved."""
        path = self._artifact("mask", IMP, level)
        if checkpoint.artifact_exists(path):
            return self._load(path)
        if level == 0:
            mask = self.setup.dense_mask(self.init_network()["params"])
        else:
            lot = self.config.lottery
            mask = imp.prune(previous_final["params"], previous_mask, float(lot.prune_fraction), lot.scope)
        self._save_mask(IMP, level, mask)
        return self._load(path)

    # ----- branches -----------------------------------------------------------------------------
    def branch(self, branch: branches_lib.Branch, level: int, imp_mask, rewind: dict) -> None:
        if checkpoint.artifact_exists(self._artifact("final", branch.name, level)):
            return
        mask_path = self._artifact("mask", branch.name, level)
        start_path = self._artifact("start", branch.name, level)
        if not checkpoint.artifact_exists(start_path):
            c = self.config
            stream = (branch.stream + 7919 * level) & 0x7FFFFFFF
            keys = replicate_keys(c.seed, c.replicates, stream)
            fresh = None
            if branch.needs_fresh_init:
                state = self.setup.program.init(replicate_keys(c.seed, c.replicates, stream + 1), self.setup.data_keys())
                fresh = {"params": state.params, "batch_stats": state.batch_stats}
            transform = jax.jit(jax.vmap(lambda k, m, rw, fr: branch.transform(k, m, rw, fr, c.lottery)))
            mask, network = transform(keys, imp_mask, rewind, fresh)
            self._save_mask(branch.name, level, mask)
            checkpoint.save_artifact(start_path, network)
        mask, network = self._load(mask_path), self._load(start_path)
        setup = self.retrain_setup if branch.other_training else self.setup
        self.trained(branch.name, level, mask, network, setup)

    # ----- the experiment ---------------------------------------------------------------------
    def run(self) -> None:
        lot = self.config.lottery
        rewind = self.rewind_network()
        final, mask = None, None
        for level in range(lot.levels + 1):
            mask = self.imp_mask(level, final, mask)
            if level == 0 or lot.retrain == "weight_rewind":
                start, setup = rewind, self.setup
            else:
                start = final
                setup = self.finetune_setup if lot.retrain == "finetune" else self.setup
            final = self.trained(IMP, level, mask, start, setup)
            if level > 0:
                for branch in self.branches:
                    self.branch(branch, level, mask, rewind)


def run(config, workdir: str) -> None:
    """Runs (or resumes, or extends) the lottery experiment of ``config`` in ``workdir``."""
    from jaxlth import plots  # noqa: PLC0415 (matplotlib is slow to import)

    workdir_lib.claim(workdir, config)
    lottery = Lottery(config, workdir)
    s = lottery.setup
    print(setup_lib.describe(s), flush=True)
    print(f"IMP: {config.lottery.levels} levels of {config.lottery.scope} pruning ({config.lottery.prune_fraction:g} "
          f"of the remaining weights each), {config.lottery.retrain} to step {lottery.rewind_step}; branches: "
          f"{', '.join(config.lottery.branches) or 'none'}", flush=True)
    lottery.run()
    table = results.load(workdir).table
    print(plots.format_summary(table), flush=True)
    paths = plots.save_figures(table, os.path.join(workdir, "plots"))
    print("figures: " + ", ".join(paths), flush=True)


