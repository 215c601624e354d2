"""``experiment = "instability"``: linear mode connectivity (Frankle et al. 2020; Paul et al. 2023).

Three analyses, each run when configured (``instability.*``):

* **Spawning** (``spawn_steps``, ``copies``): a trunk is trained once from initialisation; at
  every spawn step ``k`` its exact state (params, batch statistics, *and the optimizer state as it
  was at k*) is copied ``copies`` times; the copies differ only in their data key (data order and
  augmentation) and train ``k -> T`` together in one vmapped program. For every pair of copies the
  error along the straight line between the two trained networks is measured on ``alphas``
  evenly spaced points, on the test split and a fixed subset of the training split, and both
  barriers are recorded. With ``source_workdir`` and ``level >= 0`` the copies train the IMP
  subnetwork of that lottery run: its mask at ``level`` applied to the trunk's state at ``k``.
* **Between levels** (``between_levels``, needs ``source_workdir``): the path between the trained
  networks of successive IMP levels ``L`` and ``L + 1`` of the lottery run, and whether level
  ``L + 1`` is matching: test error within ``matching_epsilon`` of the dense network's
  (default: one standard deviation of the dense error over replicates).
* **Perturbation** (``perturb_scales``): Gaussian noise is added to the rewind network (the source
  run's rewind weights on its level mask, or the trunk at ``perturb_step``), each layer's noise
  scaled to ``scale * ||w_layer||``; the perturbed and the unperturbed networks train ``k -> T``
  with the same data order (fresh optimizer state, as after rewinding), and the barrier between
  them is measured.

Rows in ``results.csv`` (``experiment=instability``): training rows of the trunk (``arm=trunk``)
and of the copies (``arm=copies``, ``spawn_step=k``, ``replicate = r * copies + c``); interpolation
rows (``metric=error`` or ``loss``, ``alpha``, ``pair`` ``"i-j"``, ``replicate=r``); barrier rows
(``metric=barrier_frankle`` / ``barrier_paul``); ``arm=between_levels`` and ``arm=perturb`` likewise
(``pair`` holds ``"L-L+1"`` or the noise scale). Figures go to ``plots/``.
"""

from __future__ import annotations

import itertools
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxlth import checkpoint, results
from jaxlth import config as config_lib
from jaxlth import steps as step_specs
from jaxlth import workdir as workdir_lib
from jaxlth.analysis import barriers
from jaxlth.analysis import interpolation as interp
from jaxlth.errors import UserError
from jaxlth.experiments import setup as setup_lib
from jaxlth.pruning import masks as mask_lib
from jaxlth.training import loop
from jaxlth.training.state import TrainState, copy as device_copy

PATH_METRICS = ("error", "loss", "barrier_frankle", "barrier_paul")  # rows an interpolation writes
# Config fields an analysis of a lottery run must share with it (same networks, data and training).
SHARED_WITH_SOURCE = ("seed", "data_seed", "replicates", "data", "model", "train")
COPY_STREAM = 1000
PERTURB_STREAM = 2000


def _repeat(tree, times: int):
    """Each replicate's leaves repeated ``times`` times along axis 0: ``(R, ...) -> (R * times, ...)``."""
    return jax.tree.map(lambda x: jnp.repeat(x, times, axis=0), tree)


def _copy_keys(data_keys: jax.Array, copies: int, stream: int) -> jax.Array:
    """``(R * copies, 2)``: copy ``c`` of replicate ``r`` gets ``fold_in(data_key_r, stream + c)``."""
    return jnp.stack([jax.random.fold_in(k, stream + c) for k in data_keys for c in range(copies)])


class Instability:
    """One instability experiment in a workdir; what is on disk is reused."""

    def __init__(self, config, workdir: str):
        self.config, self.workdir = config, workdir
        self.ins = ins = config.instability
        self.setup = setup = setup_lib.build(config)
        self.total_steps = setup.total_steps
        self.spawn_steps = step_specs.parse_list(ins.spawn_steps, setup.steps_per_epoch, "instability.spawn_steps")
        self.perturb_step = setup.to_steps(ins.perturb_step, "instability.perturb_step")
        for k in self.spawn_steps + [self.perturb_step]:
            if not 0 <= k < self.total_steps:
                raise UserError(f"instability step {k} must come before the end of training ({self.total_steps} steps)")
        if not (self.spawn_steps or ins.between_levels or len(ins.perturb_scales)):
            raise UserError("the instability experiment has nothing to do: set instability.spawn_steps, "
                            "instability.between_levels or instability.perturb_scales")
        if ins.copies < 2:
            raise UserError(f"instability.copies must be at least 2 (pairs of copies), got {ins.copies}")
        for split in ins.splits:
            if split not in ("test", "train"):
                raise UserError(f"instability.splits holds {split!r}; use 'test' and/or 'train'")
        if int(ins.alphas) < 2:
            raise UserError(f"instability.alphas must be at least 2 (both endpoints), got {ins.alphas}")
        if any(float(scale) <= 0 for scale in ins.perturb_scales):
            raise UserError(f"instability.perturb_scales must be positive, got {tuple(ins.perturb_scales)}")
        if ins.train_examples < 0 or ins.bn_recompute_batches < 0:
            raise UserError("instability.train_examples and instability.bn_recompute_batches must be >= 0")
        self.alphas = barriers.alpha_grid(int(ins.alphas))
        self.source = self._source()
        self.mask = self._mask()
        self.eval_sets = self._eval_sets()
        self.bn_batches = interp.bn_batches_from(setup.data.train_images, int(ins.bn_recompute_batches),
                                                 config.train.batch_size)

    # ----- inputs -----------------------------------------------------------------------------
    def _source(self):
        if not self.ins.source_workdir:
            if self.ins.between_levels or self.ins.level >= 0:
                raise UserError("instability.between_levels and instability.level need instability.source_workdir")
            return None
        source = results.load(self.ins.source_workdir)
        if source.experiment != "lottery":
            raise UserError(f"instability.source_workdir {self.ins.source_workdir} holds a {source.experiment!r} "
                            "run, not a lottery run")
        mine = config_lib.to_dict(self.config)
        for field in SHARED_WITH_SOURCE:
            saved = {field: source.config[field]} if field in source.config else {}
            differ = config_lib.differences(saved, {field: mine[field]})
            if differ:
                raise UserError(f"{field} must equal the source run's in {self.ins.source_workdir} "
                                f"({'; '.join(differ[:3])})")
        return source

    def _mask(self):
        if self.source is None or self.ins.level < 0:
            return {}
        return jax.tree.map(jnp.asarray, self.source.mask(int(self.ins.level)))

    def _eval_sets(self) -> dict:
        data, out = self.setup.data, {}
        for split in self.ins.splits:
            if split == "test":
                out["test"] = (data.test_images, data.test_labels)
            else:
                n = int(self.ins.train_examples) or data.train_images.shape[0]
                take = jax.random.permutation(jax.random.PRNGKey(1), data.train_images.shape[0])[:n]
                out["train"] = (data.train_images[take], data.train_labels[take])
        return out

    # ----- training ---------------------------------------------------------------------------
    def _segment(self, labels: dict, start: int, end: int, description: str) -> loop.Segment:
        s = self.setup
        return loop.Segment(start=start, end=end, eval_every=s.eval_every, checkpoint_every=s.checkpoint_every,
                            labels=dict(experiment="instability", **labels), steps_per_epoch=s.steps_per_epoch,
                            eval_train=False, progress=self.config.progress, description=description)

    def _run(self, name: str, segment: loop.Segment, mask, initial_state) -> TrainState:
        ckpt = checkpoint.Checkpoints(os.path.join(self.workdir, "checkpoints", name), self.config.keep_checkpoints)
        try:
            return loop.run_segment(self.setup.program, self.setup.data, mask, segment, initial_state, ckpt,
                                    self.workdir, place=self.setup.place)
        finally:
            ckpt.close()

    def trunk_state(self, step: int) -> TrainState:
        """The dense trunk's full training state at ``step`` (trained once, kept for every step asked)."""
        states = checkpoint.Checkpoints(os.path.join(self.workdir, "checkpoints", "trunk_states"), 10_000)
        try:
            like = jax.eval_shape(self.setup.init_state)
            if step in states.all_steps():
                return states.restore(step, like)[0]
            earlier = [s for s in states.all_steps() if s < step]
            if earlier:
                start_step, start = earlier[-1], states.restore(earlier[-1], like)[0]
            else:
                start_step, start = 0, self.setup.init_state()
            if step > start_step:
                segment = self._segment({"arm": "trunk", "level": 0}, start_step, step, f"trunk to step {step}")
                state = self._run(f"trunk_{start_step}_{step}", segment, {}, lambda: device_copy(start))
            else:
                state = start
            states.save(step, state)
            return state
        finally:
            states.close()

    def _trained(self, name: str, labels: dict, start_step: int, mask, initial_state, description: str) -> dict:
        path = results.artifact_dir(self.workdir, os.path.join(name, "final"))
        if not checkpoint.artifact_exists(path):
            state = self._run(name, self._segment(labels, start_step, self.total_steps, description), mask,
                              initial_state)
            checkpoint.save_artifact(path, {"params": state.params, "batch_stats": state.batch_stats})
        return jax.tree.map(jnp.asarray, checkpoint.load_artifact(path))

    # ----- measuring --------------------------------------------------------------------------
    def _record_paths(self, arm: str, level: int, density, spawn_step, pairs: list[tuple[str, dict, dict]]) -> dict:
        """Interpolates each ``(pair, net_a, net_b)`` on every split; writes rows; returns barriers."""
        labels = {"experiment": "instability", "arm": arm, "level": str(level), "spawn_step": str(spawn_step)}
        results.drop_rows(self.workdir, lambda row: row.get("metric") in PATH_METRICS
                          and all(row.get(k) == v for k, v in labels.items()))
        out, rows = {}, []
        base = dict(experiment="instability", arm=arm, level=level, step=self.total_steps,
                    epoch=round(self.total_steps / self.setup.steps_per_epoch, 4), spawn_step=spawn_step)
        for pair, net_a, net_b in pairs:
            for split, (images, labels_) in self.eval_sets.items():
                curve = interp.interpolate(self.setup.program, net_a, net_b, self.alphas, images, labels_,
                                           bn_batches=self.bn_batches)
                found = {"barrier_frankle": barriers.barrier_frankle(self.alphas, curve["error"]),
                         "barrier_paul": barriers.barrier_paul(self.alphas, curve["error"])}
                out[(pair, split)] = dict(found, error=curve["error"])
                for r in range(curve["error"].shape[0]):
                    common = dict(base, replicate=r, density=float(density[r]), split=split, pair=pair)
                    for i, alpha in enumerate(self.alphas):
                        for metric in ("error", "loss"):
                            rows.append(dict(common, metric=metric, value=float(curve[metric][r, i]),
                                             alpha=round(float(alpha), 6)))
                    for metric, values in found.items():
                        rows.append(dict(common, metric=metric, value=float(values[r])))
        results.append_rows(self.workdir, rows)
        return out

    # ----- the three analyses -------------------------------------------------------------------
    def spawn(self) -> None:
        copies, level = int(self.ins.copies), int(self.ins.level)
        density = mask_lib.replicate_density(self.mask, self.config.replicates)
        for k in self.spawn_steps:
            marker = results.artifact_dir(self.workdir, os.path.join(f"spawn_{k:07d}", "measured"))
            if os.path.exists(marker):
                continue
            name = f"spawn_{k:07d}"
            final_path = results.artifact_dir(self.workdir, os.path.join(name, "final"))
            mask = _repeat(self.mask, copies)
            trunk = None if checkpoint.artifact_exists(final_path) else self.trunk_state(k)

            def initial_state(trunk=trunk):
                state = _repeat(trunk, copies)
                params = mask_lib.apply(state.params, mask) if jax.tree.leaves(mask) else state.params
                return state.replace(params=params, data_key=_copy_keys(trunk.data_key, copies, COPY_STREAM))

            final = self._trained(name, {"arm": "copies", "level": max(level, 0), "spawn_step": k}, k, mask,
                                  initial_state, f"{copies} copies from step {k}")
            per_copy = [jax.tree.map(lambda x, c=c: x[c::copies], final) for c in range(copies)]
            pairs = [(f"{i}-{j}", per_copy[i], per_copy[j]) for i, j in itertools.combinations(range(copies), 2)]
            self._record_paths("copies", max(level, 0), density, k, pairs)
            os.makedirs(os.path.dirname(marker), exist_ok=True)
            open(marker, "w").close()

    def between_levels(self) -> None:
        source = self.source
        levels = source.levels()
        marker = results.artifact_dir(self.workdir, os.path.join("between_levels", f"measured_{len(levels)}"))
        if os.path.exists(marker) or len(levels) < 2:
            return
        pairs_by_level = []
        for level in levels[:-1]:
            if level + 1 not in levels:
                continue
            a = jax.tree.map(jnp.asarray, source.network(level))
            b = jax.tree.map(jnp.asarray, source.network(level + 1))
            density = np.asarray(mask_lib.density(jax.tree.map(jnp.asarray, source.mask(level + 1)),
                                                  replicate_axis=True))
            self._record_paths("between_levels", level + 1, density, "", [(f"{level}-{level + 1}", a, b)])
            pairs_by_level.append(level + 1)
        self._record_matching(pairs_by_level)
        os.makedirs(os.path.dirname(marker), exist_ok=True)
        open(marker, "w").close()

    def _record_matching(self, levels: list[int]) -> None:
        """Rows ``metric=matching`` (1/0) per level and replicate, from the source's test errors."""
        table = self.source.table
        final = table[(table.arm == "imp") & (table.split == "test") & (table.metric == "accuracy")]
        final = final.loc[final.groupby(["level", "replicate"]).step.idxmax()]
        error = {(int(r.level), int(r.replicate)): 1.0 - float(r.value) for r in final.itertuples()}
        dense = np.array([v for (lvl, _), v in error.items() if lvl == 0])
        eps = float(self.ins.matching_epsilon)
        eps = float(np.std(dense, ddof=1)) if eps < 0 and len(dense) > 1 else max(eps, 0.0)
        labels = {"experiment": "instability", "arm": "between_levels", "metric": "matching"}
        results.drop_rows(self.workdir, lambda row: all(row.get(k) == v for k, v in labels.items()))
        rows = []
        for level in levels:
            for r in range(self.config.replicates):
                err = error.get((level, r))
                if err is None:
                    continue
                rows.append(dict(experiment="instability", arm="between_levels", level=level, replicate=r,
                                 step=self.total_steps, split="test", metric="matching",
                                 value=float(err <= float(dense.mean()) + eps), pair=f"{level - 1}-{level}"))
        results.append_rows(self.workdir, rows)

    def perturb(self) -> None:
        scales = [float(s) for s in self.ins.perturb_scales]
        marker = results.artifact_dir(self.workdir, os.path.join("perturb", "measured"))
        if not scales or os.path.exists(marker):
            return
        if self.source is not None and self.ins.level >= 0:
            rewind = jax.tree.map(jnp.asarray, self.source.network(int(self.ins.level), which="rewind"))
            start_step = step_specs.to_steps(self.source.config["lottery"]["rewind"], self.setup.steps_per_epoch)
            base = TrainState(rewind["params"], rewind["batch_stats"],
                              self.setup.program.fresh_opt_state(rewind["params"]), self.setup.data_keys())
        else:
            start_step = self.perturb_step
            trunk = self.trunk_state(start_step)
            base = trunk.replace(opt_state=self.setup.program.fresh_opt_state(trunk.params))
        groups = len(scales) + 1  # group 0 is the unperturbed network
        mask = _repeat(self.mask, groups)
        scale_per_copy = jnp.asarray(np.repeat([[0.0] + scales], self.config.replicates, axis=0).reshape(-1))

        def initial_state():
            state = _repeat(base, groups)
            noise_keys = _copy_keys(base.data_key, groups, PERTURB_STREAM)
            paths = list(traverse_util.flatten_dict(self.mask)) if jax.tree.leaves(self.mask) else \
                mask_lib.prunable_paths(base.params, tuple(self.config.lottery.layers_to_ignore))
            params = jax.vmap(lambda p, k, s: _perturb(p, k, paths, s))(state.params, noise_keys, scale_per_copy)
            params = mask_lib.apply(params, mask) if jax.tree.leaves(mask) else params
            return state.replace(params=params, data_key=_repeat(base.data_key, groups))

        final = self._trained("perturb", {"arm": "perturbed", "level": max(int(self.ins.level), 0)}, start_step, mask,
                              initial_state, f"{len(scales)} perturbations and the original")
        per_group = [jax.tree.map(lambda x, g=g: x[g::groups], final) for g in range(groups)]
        density = mask_lib.replicate_density(self.mask, self.config.replicates)
        pairs = [(f"{scale:g}", per_group[0], per_group[g + 1]) for g, scale in enumerate(scales)]
        self._record_paths("perturb", max(int(self.ins.level), 0), density, start_step, pairs)
        os.makedirs(os.path.dirname(marker), exist_ok=True)
        open(marker, "w").close()

    def run(self) -> None:
        if self.spawn_steps:
            self.spawn()
        if self.ins.between_levels:
            self.between_levels()
        self.perturb()


def _perturb(params, key, paths, scale):
    """One replicate's params plus Gaussian noise on the kernels at ``paths`` (flattened-dict keys).

    Each kernel ``w`` gets i.i.d. normal noise of standard deviation ``scale * ||w|| / sqrt(w.size)``,
    so the noise's norm is about ``scale * ||w||`` (Paul et al. 2023 scale noise by layer norms).
    """
    flat = traverse_util.flatten_dict(params)
    keys = jax.random.split(key, max(len(paths), 1))
    for k, path in zip(keys, paths):
        w = flat[path]
        noise = jax.random.normal(k, w.shape, w.dtype)
        flat[path] = w + scale * jnp.linalg.norm(w) / jnp.sqrt(w.size) * noise
    return traverse_util.unflatten_dict(flat)


def run(config, workdir: str) -> None:
    """Runs (or resumes) the instability analyses of ``config`` in ``workdir``."""
    from jaxlth import plots  # noqa: PLC0415

    workdir_lib.claim(workdir, config)
    experiment = Instability(config, workdir)
    print(setup_lib.describe(experiment.setup), flush=True)
    experiment.run()
    table = results.load(workdir).table
    print(plots.format_barriers(table), flush=True)
    paths = plots.save_instability_figures(table, os.path.join(workdir, "plots"))
    print("figures: " + ", ".join(paths), flush=True)
