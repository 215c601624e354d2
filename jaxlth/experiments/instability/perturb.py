"""Robustness of the rewind point to perturbation (Paul et al. 2023).

Gaussian noise is added to the rewind network (a lottery source's rewind weights on its level's
mask, or the dense trunk at ``perturb_step``), each layer's noise scaled to ``scale * ||w_layer||``;
the perturbed networks and the unperturbed one (group 0) train ``k -> T`` together with the same
data order and a fresh optimizer state, as after rewinding; the path between each perturbed
network and the unperturbed one is measured. Rows carry the scale in ``noise_scale``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxlth import rng
from jaxlth import steps as step_specs
from jaxlth.experiments.instability.arms import PERTURB
from jaxlth.experiments.instability.streams import PERTURBATION
from jaxlth.experiments.lottery.block import rewind_spec
from jaxlth.pruning import masks as mask_lib
from jaxlth.training import copies as copies_lib
from jaxlth.training.state import TrainState

MEASURED = f"{PERTURB}/measured"


def perturb(params, key, paths, scale):
    """One replicate's params plus Gaussian noise on the kernels at ``paths`` (flattened-dict keys).

    Each kernel ``w`` gets i.i.d. normal noise of standard deviation ``scale * ||w|| / sqrt(w.size)``,
    so the noise's norm is about ``scale * ||w||``.
    """
    flat = traverse_util.flatten_dict(params)
    keys = jax.random.split(key, max(len(paths), 1))
    for k, path in zip(keys, paths):
        w = flat[path]
        noise = jax.random.normal(k, w.shape, w.dtype)
        flat[path] = w + scale * jnp.linalg.norm(w) / jnp.sqrt(w.size) * noise
    return traverse_util.unflatten_dict(flat)


def _base(scaffold) -> tuple[int, TrainState]:
    """The start step and the (unperturbed) state every group starts from."""
    setup = scaffold.setup
    if scaffold.source is not None and scaffold.level >= 0:
        rewind = jax.tree.map(jnp.asarray, scaffold.source.network(scaffold.level, which="rewind"))
        start_step = step_specs.to_steps(
            rewind_spec(scaffold.source.config["lottery"]["rewind"]), setup.steps_per_epoch
        )
        return start_step, TrainState(
            rewind["params"], rewind["batch_stats"], setup.program.fresh_opt_state(rewind["params"]), setup.data_keys()
        )
    trunk = scaffold.trunk_state(scaffold.perturb_step)
    return scaffold.perturb_step, trunk.replace(opt_state=setup.program.fresh_opt_state(trunk.params))


def run(scaffold) -> None:
    ctx = scaffold.ctx
    scales = [float(s) for s in scaffold.ins.perturb_scales]
    if not scales or ctx.done(scaffold.marker(MEASURED)):
        return
    start_step, base = _base(scaffold)
    groups = len(scales) + 1  # group 0 is the unperturbed network
    mask = copies_lib.repeat(scaffold.mask, groups)
    scale_per_copy = jnp.asarray(np.repeat([[0.0] + scales], scaffold.setup.stacked_replicates, axis=0).reshape(-1))

    def initial_state():
        state = copies_lib.repeat(base, groups)
        noise_keys = rng.copy_keys(base.data_key, groups, PERTURBATION)
        paths = (
            list(traverse_util.flatten_dict(scaffold.mask))
            if jax.tree.leaves(scaffold.mask)
            else mask_lib.prunable_paths(base.params, scaffold.setup.layers_to_ignore)
        )
        params = jax.vmap(lambda p, k, s: perturb(p, k, paths, s))(state.params, noise_keys, scale_per_copy)
        params = mask_lib.apply(params, mask) if jax.tree.leaves(mask) else params
        return state.replace(params=params, data_key=copies_lib.repeat(base.data_key, groups))

    level = max(scaffold.level, 0)
    final = scaffold.trained(
        PERTURB,
        {"arm": PERTURB, "level": level},
        start_step,
        mask,
        initial_state,
        f"{len(scales)} perturbations and the original",
    )
    per_group = copies_lib.split(final, groups)
    pairs = [({"noise_scale": scale}, per_group[0], per_group[g + 1]) for g, scale in enumerate(scales)]
    scaffold.record_paths(PERTURB, level, scaffold.density(), start_step, pairs)
    ctx.mark_done(scaffold.marker(MEASURED), {"arm": PERTURB, "level": level})
