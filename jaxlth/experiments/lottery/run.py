"""``experiment = "lottery"``: iterative magnitude pruning with rewinding, and control branches.

Frankle & Carbin (2019), Frankle et al. (2020), Renda et al. (2020). With rewind step ``k`` and
``T`` training steps::

    pretrain 0 -> k once (dense)              -> rewind network (params + batch statistics)
    level 0: dense mask; train k -> T from the rewind network
    level L: mask_L = prune(final_{L-1}, mask_{L-1}) by |w| (``lottery.scorer``: another scorer of
             final_{L-1}, e.g. SNIP, :mod:`jaxlth.pruning.scorers`); train k -> T from
             weight_rewind: rewind params on mask_L, rewind batch statistics
             lr_rewind:     final_{L-1} params on mask_L, the schedule replayed from k
             finetune:      final_{L-1} params on mask_L, T - k steps at the final learning rate
             branches:      transform(mask_L, rewind network) -> train k -> T (same data order)

Every training restarts the optimizer state and continues the data order and schedule from k.

Data diet (Paul et al. 2022): ``lottery.pretrain_data`` (a subset spec, :mod:`jaxlth.data.selection`)
runs the dense pretraining ``0 -> k`` on a subset of the training set (random, or the easiest or
hardest by a scores run), for its own ``steps`` if given; the levels then train on the whole
training set from step ``k`` (:func:`jaxlth.experiments.networks.pretrain_on_subset`).

Averaging inside IMP (Choi et al. 2024; Zimmer et al. 2024): ``lottery.average_copies = n`` trains
every level (the dense level 0 too) as ``n`` particles per replicate with different SGD noise and
continues from their average (BatchNorm recomputed): :mod:`jaxlth.experiments.averaging`; with
``lottery.average_swa_start`` each particle is its own SWA average first (SWAMP's schedule).

Hyper-parameter sweep (``train.lr``, ... as tuples, :mod:`jaxlth.training.hyper`): the ``H`` settings'
level sequences at once, setting ``h``'s networks a block ``[h N, (h + 1) N)`` of every stack laid out
as the one-setting run's (``N = R`` or ``R * F``); the replicate-level keys and data are tiled.

Prune-fraction sweep: ``lottery.prune_fraction = (p_1, ..., p_F)`` runs F level sequences at once.
The ``R * F`` networks (fraction ``f`` of replicate ``r`` at ``r * F + f``, :mod:`jaxlth.training.copies`)
train in one vmapped program at every level; each prunes with its own fraction, and its branches
use the keys and data order the one-fraction run would. The dense level 0 is trained once per
replicate and shared (its rows are written once per fraction). Rows carry ``prune_fraction``;
artifacts hold the ``R * F`` stack (``F = 1``: the replicates, as without a sweep).
Artifacts: ``init``, ``rewind``, ``<arm>/level_LL/{mask,start,final}``; figures
``plots/accuracy_vs_weights.png`` and ``plots/layer_density.png``. What is on disk is never
recomputed: a rerun skips finished levels, resumes the level in progress from its latest
checkpoint, and a larger ``lottery.levels`` (or new branches) extends the run.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxlth import rng
from jaxlth.experiments import networks, scoring
from jaxlth.experiments.context import Context, network_of
from jaxlth.experiments.lottery import averaging, block, pretrain, transfer
from jaxlth.experiments.lottery.arms import IMP
from jaxlth.experiments.networks import ArmLevel
from jaxlth.layout import level_name
from jaxlth.pruning import at_init, imp
from jaxlth.pruning import branches as branches_lib
from jaxlth.training import copies as copies_lib


class Lottery:
    """One lottery experiment in a workdir: builds what is missing, reuses what is on disk."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.config = config = ctx.config
        self.setup = setup = ctx.setup
        self.rewind_step = ctx.steps(block.rewind_spec(config.lottery.rewind), "lottery.rewind")
        self.total_steps = setup.total_steps
        block.check_rewind(config, self.rewind_step, self.total_steps)
        self.branches = block.branches(tuple(config.lottery.branches))
        # one compiled transform per branch, for every level (a jit built per level compiles per level)
        self.transforms = {
            b.name: jax.jit(jax.vmap(functools.partial(_transform, b, config.lottery))) for b in self.branches
        }
        self.fractions = block.fractions(config)
        self.copies = len(self.fractions)
        self.particles = int(config.lottery.average_copies)
        self.averaging = self.particles > 1 or bool(config.lottery.average_swa_start)
        stack = copies_lib.coordinates(config.replicates, self.copies)
        self.coordinates = [{"replicate": r, "prune_fraction": self.fractions[f]} for r, f in stack]
        self.position_fractions = setup.grid.tile(jnp.asarray([self.fractions[f] for _, f in stack], jnp.float32))
        overrides = block.parse_overrides(config.lottery.retrain_overrides)
        self.retrain_setup = setup.with_train(**overrides) if overrides else setup
        if config.lottery.retrain == "finetune":
            final_lr = float(setup.program.schedule(jnp.int32(self.total_steps - 1)))
            self.finetune_setup = setup.with_train(schedule="constant", lr=final_lr, warmup="0it")

    def stacked(self, tree):
        """A tree of the ``R`` replicates repeated for the ``F`` prune fractions: ``(R * F, ...)``."""
        return copies_lib.repeat(tree, self.copies) if self.copies > 1 else tree

    def trained(self, arm: str, level: int, mask, network: dict, setup) -> dict:
        """The ``R * F`` networks of ``arm`` at ``level`` trained k -> T (loaded when already on disk);
        IMP with ``average_copies > 1`` or SWA: the average of its particles (:mod:`.averaging`)."""
        what = ArmLevel(arm, level, mask, network, self.rewind_step, self.total_steps, setup.program, self.coordinates)
        if arm == IMP and self.averaging:
            return averaging.averaged_level(self.ctx, what, self.particles)
        return networks.trained(self.ctx, what)

    def dense(self, mask) -> dict:
        """Level 0: the dense network of each replicate, trained once and shared by every fraction."""
        if self.averaging:
            return self.trained(IMP, 0, mask, self.rewind, self.setup)

        def train() -> dict:
            shared = [
                [self.coordinates[i] for i in copies_lib.positions(self.config.replicates, self.copies, r)]
                for r in range(self.config.replicates)
            ]
            state = networks.train_level(
                self.ctx,
                ArmLevel(
                    IMP,
                    0,
                    copies_lib.select(mask, 0, self.copies),
                    self.rewind,
                    self.rewind_step,
                    self.total_steps,
                    coordinates=shared,
                ),
            )
            return self.stacked(network_of(state))

        if self.ctx.exists(f"{IMP}/{level_name(0)}/final") and self.ctx.rows_lost(f"{IMP}/{level_name(0)}"):
            train()  # its rows again (lost in a crash): the same networks, from its kept checkpoints
        return self.ctx.cached(f"{IMP}/{level_name(0)}/final", train)

    @functools.cached_property
    def rewind(self) -> dict:
        """The rewind network of each replicate (trained 0 -> k once, then loaded)."""
        spec = self.config.lottery.pretrain_data
        on_subset = (
            None
            if spec.keep == "all"
            else functools.partial(pretrain.on_subset, self.ctx, spec=spec, rewind_step=self.rewind_step)
        )
        return networks.rewind_network(self.ctx, self.rewind_step, on_subset)

    @functools.cached_property
    def scoring_data(self):
        """The examples a data scorer (``lottery.scorer``) ranks every level's weights on (``None``: data-free)."""
        per_class = self.config.lottery.scorer_examples_per_class
        if not at_init.scorer(self.config.lottery.scorer, "lottery.scorer").needs_data:
            return None
        scoring.check_examples(self.setup, per_class, "lottery.scorer_examples_per_class")
        return scoring.batches(self.setup, per_class)

    def mask(self, arm: str, level: int, compute) -> dict:
        """The mask of ``arm`` at ``level`` (saved once, with its per-layer density rows)."""
        return self.ctx.cached(
            f"{arm}/{level_name(level)}/mask",
            compute,
            rows=networks.mask_rows(self.ctx, arm, level, self.rewind_step, self.coordinates),
        )

    def imp_mask(self, level: int, previous_final: dict | None, previous_mask) -> dict:
        """The IMP masks of ``level``, one per stacked network (dense at level 0; with
        ``lottery.mask_source``, the source run's level ``level`` masks: :mod:`.transfer`)."""
        if self.config.lottery.get("mask_source", ""):
            return self.transferred_mask(level)

        def compute():
            if level == 0:
                return self.dense_mask()
            lot = self.config.lottery
            fractions = block.level_fractions(self.position_fractions, level, lot.get("prune_of", "remaining"))
            if lot.scorer == "magnitude":
                return imp.prune_each(previous_final["params"], previous_mask, fractions, lot.scope)
            how = scoring.pruning(self.setup, lot.scorer, lot.scope, lot.scorer_rounds)
            return scoring.prune_each(
                how,
                previous_final,
                previous_mask,
                self.setup.grid.tile(self.scoring_data),
                self.setup.grid.tile(scoring.method_keys(self.config, lot.scorer, level)),
                fractions,
                self.copies,
            )

        return self.mask(IMP, level, compute)

    def dense_mask(self) -> dict:
        """The all-True mask of every stacked network over the prunable kernels."""
        return self.stacked(self.setup.dense_mask(networks.init_network(self.ctx)["params"]))

    def transferred_mask(self, level: int) -> dict:
        """Level ``level``'s masks from ``lottery.mask_source`` (one source's, or the intersection or union
        of several; checked against this run's dense mask by :func:`.transfer.check` before the run
        began), with their density rows and what they came from (:func:`.transfer.composed_rows`)."""
        srcs = transfer.source(self.config)
        labels, density_rows = networks.mask_rows(self.ctx, IMP, level, self.rewind_step, self.coordinates)
        compute = self.dense_mask if level == 0 else (lambda: transfer.composed(srcs, level, self.dense_mask()))
        rows = (labels, lambda mask: transfer.composed_rows(srcs, level, self.dense_mask, density_rows(mask)))
        return self.ctx.cached(f"{IMP}/{level_name(level)}/mask", compute, rows=rows)

    def branch(self, branch: branches_lib.Branch, level: int, imp_mask, rewind: dict) -> None:
        """Transforms (IMP mask, rewind network) as ``branch`` says and trains the result."""
        name = f"{branch.name}/{level_name(level)}"
        if self.ctx.exists(f"{name}/final") and not self.ctx.rows_lost(name):
            return
        c, transformed = self.config, {}

        def transform() -> dict:
            if not transformed:
                stream = rng.branch_stream(branch.name, level)
                keys = self.stacked(self.setup.replicate_keys(c.seed, stream))
                fresh = None
                if branch.needs_fresh_init:
                    state = self.setup.program.init(
                        self.setup.replicate_keys(c.seed, stream + 1), self.setup.data_keys()
                    )
                    fresh = self.stacked({"params": state.params, "batch_stats": state.batch_stats})
                compiled = self.transforms[branch.name]
                transformed["mask"], transformed["network"] = compiled(keys, imp_mask, rewind, fresh)
            return transformed

        mask = self.mask(branch.name, level, lambda: transform()["mask"])
        network = self.ctx.cached(f"{branch.name}/{level_name(level)}/start", lambda: transform()["network"])
        setup = self.retrain_setup if branch.other_training else self.setup
        self.trained(branch.name, level, mask, network, setup)

    def run(self) -> None:
        lot = self.config.lottery
        rewind = self.stacked(self.rewind)
        final, mask = None, None
        for level in range(lot.levels + 1):
            mask = self.imp_mask(level, final, mask)
            if level == 0:
                final = self.dense(mask)
                continue
            start = rewind if lot.retrain == "weight_rewind" else final
            setup = self.finetune_setup if lot.retrain == "finetune" else self.setup
            final = self.trained(IMP, level, mask, start, setup)
            for branch in self.branches:
                self.branch(branch, level, mask, rewind)


def _transform(branch: branches_lib.Branch, options, key, mask, rewind, fresh):
    """``branch``'s transform of one stacked network (``options``: the lottery block)."""
    return branch.transform(key, mask, rewind, fresh, options)


def run(ctx: Context) -> None:
    """Runs (or resumes, or extends) the lottery experiment of the context's config."""
    lottery = Lottery(ctx)
    lot = ctx.config.lottery
    fractions = ", ".join(f"{p:g}" for p in lottery.fractions)
    ranking = "magnitude" if lot.scorer == "magnitude" else f"{lot.scorer}-scored"
    of = lot.get("prune_of", "remaining")
    operation = transfer.split(lot.mask_source, transfer.FIELD)[0] if lot.get("mask_source", "") else None
    masks = (
        f"{lot.levels} levels of the {f'{operation} of the ' if operation else ''}masks of {lot.mask_source}"
        if lot.get("mask_source", "")
        else f"{lot.levels} levels of {lot.scope} {ranking} pruning ({fractions} of the {of} weights each"
        f"{', in one vmapped program' if lottery.copies > 1 else ''})"
    )
    to = "the pretrained weights" if lot.rewind == block.PRETRAINED else f"step {lottery.rewind_step}"
    print(f"IMP: {masks}, {lot.retrain} to {to}; branches: {', '.join(lot.branches) or 'none'}", flush=True)
    lottery.run()
