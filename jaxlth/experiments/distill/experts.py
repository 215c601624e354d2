"""MTT's expert trajectories: ``distill.experts`` replicates of the run's own training, saved at every epoch.

Expert ``e`` is replicate ``e`` of a ``train`` run of the same config (initialisation
the key of ``seed + e``, SGD noise the key of ``data_seed + e``): ordinary jaxlth training, one segment
per epoch in one checkpoint series (``checkpoints/experts``), resumable bitwise. Each epoch's networks
are saved once, as the artifact ``experts/epoch_EE`` (``{"params", "batch_stats"}``, the experts
stacked), and read back, never retrained; ``distill.experts_workdir`` reads another distill run's
instead (same model and data, checked). Rows: the experts' training curves, ``arm=experts``, their
``replicate`` the expert's number.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np

from jaxlth import checkpoint, rng, runs
from jaxlth import steps as step_specs
from jaxlth.errors import UserError
from jaxlth.experiments.context import Context, network_of
from jaxlth.experiments.distill import block
from jaxlth.experiments.distill.arms import EXPERTS
from jaxlth.layout import Layout
from jaxlth.training.state import TrainState


def epoch_name(epoch: int) -> str:
    """``3 -> "experts/epoch_03"``: the experts' networks after ``epoch`` epochs (artifact)."""
    return f"{EXPERTS}/epoch_{int(epoch):02d}"


def initial_state(ctx: Context, experts: int) -> TrainState:
    """The experts at initialisation: replicates ``0 .. experts - 1`` of the run's training."""
    c, setup = ctx.config, ctx.setup
    keys = rng.replicate_keys(c.seed, experts, rng.INIT), rng.replicate_keys(c.data_seed, experts, rng.DATA)
    return setup.place(setup.program.init(*(setup.place(k) for k in keys)))


def train(ctx: Context) -> None:
    """Trains the experts (or resumes them) until every epoch's artifact is saved."""
    experts, epochs = int(ctx.config.distill.experts), block.trained_epochs(ctx.config)
    missing = [e for e in range(epochs + 1) if not ctx.exists(epoch_name(e))]
    if not missing:
        return
    per_epoch = ctx.setup.steps_per_epoch
    print(f"distill: training {experts} expert(s) for {epochs} epochs ({per_epoch} steps each)", flush=True)
    state = initial_state(ctx, experts)
    ctx.cached(epoch_name(0), lambda: network_of(state))
    labels = {"arm": EXPERTS, "level": 0}

    def start(epoch: int, known: TrainState | None):
        def make() -> TrainState:
            if epoch == 1:
                return initial_state(ctx, experts)
            if known is None:  # every checkpoint of the series lies before this epoch's start: none was kept
                raise UserError(
                    f"{ctx.layout.checkpoints(EXPERTS)} holds no training state at step {(epoch - 1) * per_epoch}; "
                    "delete the artifacts/experts folder to train the experts again"
                )
            return known

        return make

    known = None
    for epoch in range(max(missing[0], 1), epochs + 1):
        segment = ctx.segment((epoch - 1) * per_epoch, epoch * per_epoch, f"experts, epoch {epoch}")
        known = ctx.train(EXPERTS, segment, {}, start(epoch, known), labels, keep=2)
        ctx.cached(epoch_name(epoch), lambda: network_of(known))


def source(ctx: Context) -> str:
    """The workdir whose experts this run reads: its own, or ``distill.experts_workdir``."""
    return ctx.config.distill.experts_workdir or ctx.layout.workdir


def check_source(config, workdir: str) -> None:
    """Refuses (one sentence) an experts workdir that is no distill run of this model and data, or
    has too few experts or epochs."""
    saved = runs.read_config(workdir)
    if saved.get("experiment") != "distill":
        raise UserError(f"distill.experts_workdir {workdir} is a {saved.get('experiment')!r} run, not a distill run")
    for part, fields in (("model", ("name", "options")), ("data", ("name", "synthetic_image_shape"))):
        for field in fields:
            mine, theirs = _plain(config[part].to_dict().get(field)), _plain(saved.get(part, {}).get(field))
            if mine != theirs:
                raise UserError(
                    f"the experts of {workdir} were trained with {part}.{field} = {theirs!r}, this run distills "
                    f"for {part}.{field} = {mine!r}: train experts of this model and data"
                )
    theirs = saved.get("distill", {})
    if int(theirs.get("experts", 0)) < int(config.distill.experts):
        raise UserError(
            f"{workdir} trained {theirs.get('experts')} expert(s), fewer than this run's {config.distill.experts}"
        )
    trained = step_specs.parse(theirs.get("expert_steps", "0ep"), "distill.expert_steps").epochs
    if trained < block.last_epoch(config):
        raise UserError(
            f"the experts of {workdir} trained {trained} epochs, short of epoch {block.last_epoch(config)} "
            "(max_start_epoch - 1 + expert_epochs) this run matches"
        )


def _plain(value):
    """A config value as its saved config holds it (tuples as lists, at any depth)."""
    return json.loads(json.dumps(value))


def trajectory(ctx: Context) -> dict:
    """``{"params", "batch_stats"}`` with leaves ``(experts, epochs, ...)``: epochs ``0 .. last_epoch``
    of the first ``distill.experts`` experts, on the device."""
    experts, workdir = int(ctx.config.distill.experts), source(ctx)
    layout = Layout(workdir)
    epochs = []
    for epoch in range(block.last_epoch(ctx.config) + 1):
        path = layout.artifact(epoch_name(epoch))
        if not checkpoint.artifact_exists(path):
            raise UserError(f"{workdir} has no experts saved at epoch {epoch} ({path}); finish that distill run first")
        with ctx.phases("checkpoints"):
            epochs.append(jax.tree.map(lambda x: np.asarray(x)[:experts], checkpoint.load_artifact(path)))
    expected = jax.eval_shape(lambda: network_of(initial_state(ctx, experts)))
    shapes = jax.tree.map(lambda x: x.shape, epochs[0])
    if shapes != jax.tree.map(lambda x: x.shape, expected):
        raise UserError(f"the experts of {workdir} have other layers or shapes than this run's {ctx.config.model.name}")
    stacked = jax.tree.map(lambda *xs: np.stack(xs, axis=1), *epochs)
    return jax.device_put(stacked)


def where(ctx: Context) -> str:
    """Where the experts' networks are read from, in words."""
    workdir = source(ctx)
    return "this run" if os.path.abspath(workdir) == os.path.abspath(ctx.layout.workdir) else workdir
