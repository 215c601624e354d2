"""What the three instability analyses share: the inputs (source run, mask, evaluation sets),
the dense trunk, training a stack of copies, and recording the paths between networks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxlth import rng
from jaxlth import steps as step_specs
from jaxlth.analysis import alignment, barriers, connectivity, repair
from jaxlth.analysis import interpolation as interp
from jaxlth.errors import UserError
from jaxlth.experiments import networks
from jaxlth.experiments.context import Context
from jaxlth.experiments.instability.arms import TRUNK
from jaxlth.experiments.instability.streams import ALIGN_RESTART
from jaxlth.experiments.lottery.block import rewind_spec
from jaxlth.experiments.lottery.source import lottery_source
from jaxlth.pruning import masks as mask_lib
from jaxlth.training.state import TrainState

OBJECTIVE = "matching_objective"  # the metric of a path's matching objective rows (aligned entries)
PATH_METRICS = ("error", "loss", "barrier_frankle", "barrier_paul", OBJECTIVE)  # rows a measured path writes
OBJECTIVE_SPLIT = {"weights": "params", "activations": "train"}  # what each matching is computed on


class Scaffold:
    """The shared inputs and steps of an instability run; each analysis is a function of it."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.config = config = ctx.config
        self.ins = ins = config.instability
        self.setup = setup = ctx.setup
        self.total_steps = setup.total_steps
        self.spawn_steps = step_specs.parse_list(ins.spawn_steps, setup.steps_per_epoch, "instability.spawn_steps")
        self.from_source_rewind = ins.get("spawn_from", "trunk") == "source_rewind"
        self.perturb_step = ctx.steps(ins.perturb_step, "instability.perturb_step")
        for k in self.spawn_steps + [self.perturb_step]:
            if not 0 <= k < self.total_steps:
                raise UserError(f"instability step {k} must come before the end of training ({self.total_steps} steps)")
        self.level = int(ins.level)
        self.alphas = barriers.alpha_grid(int(ins.alphas))
        self.source = (
            lottery_source(ins.source_workdir, config, "instability.source_workdir") if ins.source_workdir else None
        )
        self.mask = (
            jax.tree.map(jnp.asarray, self.source.mask(self.level))
            if self.source is not None and self.level >= 0
            else {}
        )
        if self.from_source_rewind:  # the one spawn step: where the source's levels start
            self.spawn_steps = [
                ctx.steps(rewind_spec(self.source.config["lottery"]["rewind"]), "the source's lottery.rewind")
            ]
        self.eval_sets = self._eval_sets()
        self.bn_batches = interp.bn_batches_from(
            setup.data.train_images, int(ins.bn_recompute_batches), config.train.batch_size
        )
        self.aligns = tuple(ins.get("align", ("none",)))
        self.align_restarts = int(ins.get("align_restarts", 1))
        self._symmetry = None

    def _eval_sets(self) -> dict:
        data, out = self.setup.data, {}
        for split in self.ins.splits:
            if split == "test":
                out["test"] = (data.test_images, data.test_labels)
            else:
                n = int(self.ins.train_examples) or data.train_images.shape[0]
                take = rng.eval_subset_order(data.train_images.shape[0])[:n]
                out["train"] = (data.train_images[take], data.train_labels[take])
        return out

    def density(self) -> np.ndarray:
        """``(R * H,)`` density of the analysed mask (1 for the dense network)."""
        return mask_lib.replicate_density(self.mask, self.setup.stacked_replicates)

    # ----- training ---------------------------------------------------------------------------------
    def trunk_state(self, step: int) -> TrainState:
        """The dense trunk's full training state at ``step`` (trained once, kept for every step asked)."""
        labels = {"arm": TRUNK, "level": 0}
        return networks.state_at(self.ctx, step, self.setup.init_state, labels, "trunk")

    def spawn_state(self, step: int) -> TrainState:
        """The state copies spawned at ``step`` start from: the trunk's (``spawn_from="trunk"``), or
        the source's rewind network on the analysed mask with a fresh optimizer state, as its IMP
        levels start (``"source_rewind"``, e.g. a rewind point pretrained on a data diet)."""
        if not self.from_source_rewind:
            return self.trunk_state(step)
        network = jax.tree.map(jnp.asarray, self.source.network(max(self.level, 0), which="rewind"))
        program = self.setup.program
        return TrainState(
            network["params"],
            network["batch_stats"],
            program.fresh_opt_state(network["params"]),
            self.setup.data_keys(),
        )

    def trained(self, name: str, labels: dict, start_step: int, mask, initial_state, description: str) -> dict:
        """``name/final``: a stack of networks trained ``start_step -> T`` (rows labelled ``labels``)."""
        segment = self.ctx.segment(start_step, self.total_steps, description, eval_train=False)
        return self.ctx.trained(name, lambda: self.ctx.train(name, segment, mask, initial_state, labels))

    # ----- measuring --------------------------------------------------------------------------------
    def marker(self, name: str) -> str:
        """The marker that ``name``'s paths are measured under this run's alignments (another set of
        ``instability.align``, or another ``align_restarts`` of weight matching, measures them again)."""
        if self.aligns == ("none",):
            return name
        restarts = any(alignment.parse(e)[0] == "weights" for e in self.aligns) and self.align_restarts > 1
        return f"{name}_{'_'.join(self.aligns)}" + (f"_restarts{self.align_restarts}" if restarts else "")

    def aligned(self, net_a: dict, net_b: dict, mode: str) -> tuple[dict, np.ndarray | None]:
        """``(net_b aligned to net_a by mode, (R,) matching objectives)`` (weights, from
        ``align_restarts`` orders; activations on a fixed training subset; ``none``: ``(net_b, None)``)."""
        if mode == "none":
            return net_b, None
        images = self._subset(int(self.ins.get("align_examples", 1024))) if mode == "activations" else None
        keys = self.restart_keys(jax.tree.leaves(net_a)[0].shape[0]) if mode == "weights" else None
        return alignment.match(
            self.setup.program, net_a, net_b, mode, self.symmetry(net_a), images, self.config.seed, keys
        )

    def restart_keys(self, rows: int) -> jax.Array | None:
        """``(rows, align_restarts - 1, 2)``: the key of weight matching's restart ``i >= 1`` for the
        pair in row ``r``: index ``i`` of :data:`streams.ALIGN_RESTART` folded into replicate ``r``'s
        seed key (restart 0 is the order of ``seed``); ``None`` with one restart."""
        if self.align_restarts <= 1:
            return None
        rows //= self.setup.grid.size  # a hyper-parameter sweep: each setting's rows take the replicates' keys
        restarts = range(1, self.align_restarts)
        keys = [rng.replicate_keys(self.config.seed, rows, ALIGN_RESTART.at(i)) for i in restarts]
        return self.setup.grid.tile(jnp.stack(keys, axis=1))

    def symmetry(self, network: dict):
        """The model's permutation symmetries (traced once, on replicate 0 of ``network``)."""
        if self._symmetry is None:
            self._symmetry = alignment.symmetry_of(self.setup.program, network)
        return self._symmetry

    def _repair(self, net_a: dict) -> tuple:
        """REPAIR's inputs: ``instability.repair_examples`` training images and the network's sites."""
        params = jax.tree.map(lambda x: x[0], net_a["params"])
        return self._subset(int(self.ins.get("repair_examples", 1024))), repair.sites(self.symmetry(net_a).spec, params)

    def _subset(self, n: int) -> jax.Array:
        """The first ``n`` training images of the fixed random order the ``train`` split is drawn from."""
        images = self.setup.data.train_images
        order = rng.eval_subset_order(images.shape[0])
        return images[order[: min(n, images.shape[0])]]

    def record_paths(self, arm: str, level: int, density, spawn_step, pairs: list[tuple[dict, dict, dict]]) -> None:
        """Measures each ``(coordinates, net_a, net_b)`` path on every split, once per entry of
        ``instability.align`` (B's units permuted to A's first, and with ``+repair`` every network on
        the path REPAIRed; rows carry the entry in ``align``; an aligned entry also writes one row
        ``metric=matching_objective`` per replicate, ``split`` what the matching is computed on), and
        records its rows (replacing earlier rows of the same arm, level and spawn step)."""
        labels = {"arm": arm, "level": level, "spawn_step": spawn_step}
        base = dict(labels, step=self.total_steps, epoch=round(self.total_steps / self.setup.steps_per_epoch, 4))
        rows = []
        for where, net_a, net_b in pairs:
            aligned = {}  # mode -> (B aligned by it, objectives) (an entry with REPAIR reuses its mode's)
            for entry in self.aligns:
                mode, repaired = alignment.parse(entry)
                if mode not in aligned:
                    aligned[mode] = self.aligned(net_a, net_b, mode)
                measured = connectivity.path(
                    self.setup.program,
                    net_a,
                    aligned[mode][0],
                    self.alphas,
                    self.eval_sets,
                    self.bn_batches,
                    self._repair(net_a) if repaired else None,
                )
                for split, found in measured.items():
                    for r in range(found["error"].shape[0]):
                        (coordinates,) = self.setup.grid.at(r, found["error"].shape[0])  # replicate (and setting)
                        common = dict(base, **coordinates, density=float(density[r]), split=split, align=entry, **where)
                        for i, alpha in enumerate(self.alphas):
                            for metric in ("error", "loss"):
                                rows.append(
                                    dict(
                                        common,
                                        metric=metric,
                                        value=float(found[metric][r, i]),
                                        alpha=round(float(alpha), 6),
                                    )
                                )
                        for metric in ("barrier_frankle", "barrier_paul"):
                            rows.append(dict(common, metric=metric, value=float(found[metric][r])))
                rows += self._objective_rows(base, density, where, entry, mode, aligned[mode][1], self.setup.grid)
        self.ctx.replace_rows(labels, rows, matching=lambda row: row.get("metric") in PATH_METRICS)

    @staticmethod
    def _objective_rows(base: dict, density, where: dict, entry: str, mode: str, objectives, grid) -> list[dict]:
        """One ``matching_objective`` row per replicate of an aligned entry (none for ``none``)."""
        if objectives is None:
            return []
        return [
            dict(
                base,
                **grid.at(r, len(objectives))[0],
                density=float(density[r]),
                split=OBJECTIVE_SPLIT[mode],
                align=entry,
                **where,
                metric=OBJECTIVE,
                value=float(value),
            )
            for r, value in enumerate(objectives)
        ]
