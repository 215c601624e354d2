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
Artifacts: ``init``, ``rewind``, ``<arm>/level_LL/{mask,start,final}``; figures
``plots/accuracy_vs_weights.png`` and ``plots/layer_density.png``. What is on disk is never
recomputed: a rerun skips finished levels, resumes the level in progress from its latest
checkpoint, and a larger ``lottery.levels`` (or new branches) extends the run.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from jaxlth import arms, rng
from jaxlth import steps as step_specs
from jaxlth.errors import UserError
from jaxlth.experiments import networks
from jaxlth.experiments.context import Context
from jaxlth.experiments.protocol import Experiment
from jaxlth.layout import level_name
from jaxlth.lottery import branches as branches_lib
from jaxlth.lottery import imp


def defaults() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.levels = 0  # pruning levels after the dense level 0
    c.rewind = "0it"  # step spec k: weights (and BN statistics) rewind to step k
    c.prune_fraction = 0.2  # of the remaining prunable weights, per level
    c.scope = "global"  # global | layerwise magnitude pruning
    c.layers_to_ignore = ()  # regular expressions matched against e.g. "output/kernel"
    c.retrain = "weight_rewind"  # weight_rewind | lr_rewind | finetune (Renda et al. 2020)
    c.branches = ()  # control arms run at every pruned level, see jaxlth/lottery/branches.py
    c.random_prune_scope = "layerwise"  # random_prune: same per-layer density | global density
    c.retrain_overrides = ""  # retrain branch: train fields, e.g. "lr=0.05,optimizer=adam"
    return c


def validate(config) -> None:
    """The lottery settings, checked without the data (the rewind step against the length of
    training too, when that does not depend on the epoch length)."""
    imp.check_settings(config)
    branches_lib.get(tuple(config.lottery.branches))
    for key in imp.parse_overrides(config.lottery.retrain_overrides):
        if key not in config.train:
            raise UserError(f"lottery.retrain_overrides names train.{key}, which does not exist; "
                            f"fields: {', '.join(sorted(config.train))}")
    if step_specs.before(config.lottery.rewind, config.train.steps, "lottery.rewind", "train.steps") is False:
        raise UserError(f"lottery.rewind ({config.lottery.rewind}) must come before the end of training "
                        f"({config.train.steps})")


class Lottery:
    """One lottery experiment in a workdir: builds what is missing, reuses what is on disk."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.config = config = ctx.config
        self.setup = setup = ctx.setup
        self.rewind_step = ctx.steps(config.lottery.rewind, "lottery.rewind")
        self.total_steps = setup.total_steps
        imp.check(config, self.rewind_step, self.total_steps)
        self.branches = branches_lib.get(tuple(config.lottery.branches))
        overrides = imp.parse_overrides(config.lottery.retrain_overrides)
        self.retrain_setup = setup.with_train(**overrides) if overrides else setup
        if config.lottery.retrain == "finetune":
            final_lr = float(setup.program.schedule(jnp.int32(self.total_steps - 1)))
            self.finetune_setup = setup.with_train(schedule="constant", lr=final_lr, warmup="0it")

    def trained(self, arm: str, level: int, mask, network: dict, setup) -> dict:
        """The network of ``arm`` at ``level`` trained k -> T (loaded when already on disk)."""
        return self.ctx.trained(f"{arm}/{level_name(level)}", lambda: networks.train_level(
            self.ctx, arm, level, mask, network, self.rewind_step, self.total_steps, f"{arm} level {level}",
            program=setup.program))

    def mask(self, arm: str, level: int, compute) -> dict:
        """The mask of ``arm`` at ``level`` (saved once, with its per-layer density rows)."""
        return self.ctx.cached(f"{arm}/{level_name(level)}/mask", compute,
                               rows=networks.mask_rows(self.ctx, arm, level, self.rewind_step))

    def imp_mask(self, level: int, previous_final: dict | None, previous_mask) -> dict:
        """The IMP mask of ``level`` (dense at level 0)."""
        def compute():
            if level == 0:
                return self.setup.dense_mask(networks.init_network(self.ctx)["params"])
            lot = self.config.lottery
            return imp.prune(previous_final["params"], previous_mask, float(lot.prune_fraction), lot.scope)

        return self.mask(arms.IMP, level, compute)

    def branch(self, branch: branches_lib.Branch, level: int, imp_mask, rewind: dict) -> None:
        """Transforms (IMP mask, rewind network) as ``branch`` says and trains the result."""
        if self.ctx.exists(f"{branch.name}/{level_name(level)}/final"):
            return
        c = self.config
        transformed = {}

        def transform() -> dict:
            if not transformed:
                stream = rng.branch_stream(branch.name, level)
                keys = rng.replicate_keys(c.seed, c.replicates, stream)
                fresh = None
                if branch.needs_fresh_init:
                    state = self.setup.program.init(rng.replicate_keys(c.seed, c.replicates, stream + 1),
                                                    self.setup.data_keys())
                    fresh = {"params": state.params, "batch_stats": state.batch_stats}
                fn = jax.jit(jax.vmap(lambda k, m, rw, fr: branch.transform(k, m, rw, fr, c.lottery)))
                transformed["mask"], transformed["network"] = fn(keys, imp_mask, rewind, fresh)
            return transformed

        mask = self.mask(branch.name, level, lambda: transform()["mask"])
        network = self.ctx.cached(f"{branch.name}/{level_name(level)}/start", lambda: transform()["network"])
        setup = self.retrain_setup if branch.other_training else self.setup
        self.trained(branch.name, level, mask, network, setup)

    def run(self) -> None:
        lot = self.config.lottery
        rewind = networks.rewind_network(self.ctx, self.rewind_step)
        final, mask = None, None
        for level in range(lot.levels + 1):
            mask = self.imp_mask(level, final, mask)
            if level == 0 or lot.retrain == "weight_rewind":
                start, setup = rewind, self.setup
            else:
                start = final
                setup = self.finetune_setup if lot.retrain == "finetune" else self.setup
            final = self.trained(arms.IMP, level, mask, start, setup)
            if level > 0:
                for branch in self.branches:
                    self.branch(branch, level, mask, rewind)


def run(ctx: Context) -> None:
    """Runs (or resumes, or extends) the lottery experiment of the context's config."""
    lottery = Lottery(ctx)
    lot = ctx.config.lottery
    print(f"IMP: {lot.levels} levels of {lot.scope} pruning ({lot.prune_fraction:g} of the remaining weights "
          f"each), {lot.retrain} to step {lottery.rewind_step}; branches: {', '.join(lot.branches) or 'none'}",
          flush=True)
    lottery.run()


def report(table, directory: str) -> tuple[str, list[str]]:
    from jaxlth import plots  # noqa: PLC0415 (matplotlib is slow to import)

    return plots.format_summary(table), plots.save_figures(table, directory)


EXPERIMENT = Experiment(
    name="lottery",
    summary="iterative magnitude pruning with rewinding, and control branches",
    run=run,
    defaults=defaults,
    validate=validate,
    columns=("layer",),
    may_change=("lottery.levels", "lottery.branches"),
    report=report,
    order=1,
)
