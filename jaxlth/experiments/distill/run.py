"""What a ``distill`` run does: experts (MTT), then the outer loop over R synthetic sets in chunks, then the artifact.

The ``R`` sets (``replicates``) learn side by side in one vmapped program per chunk of
``distill.chunk`` outer iterations (:class:`jaxlth.distillation.outer.Outer`), with a checkpoint of
every set's state after each chunk (``checkpoints/synthetic``): a killed run resumes from the last
one and ends bitwise equal. Rows (``arm=synthetic, split=distill``): every ``distill.log_every``
iterations, the loss (``matching_loss`` or ``dm_loss``, the mean over those iterations) and the learned
``lr``; at the end (``distill.eval_steps > 0``) a fresh network trained on each set at its start
(``step=0``) and at its end (``step=iterations``), tested on the real test set (``split=test``).
"""

from __future__ import annotations

import jax
import numpy as np

from jaxlth import checkpoint, rng, sharding
from jaxlth.distillation import dm, keys, mtt, outer, synthetic_set
from jaxlth.errors import UserError
from jaxlth.experiments.context import Context
from jaxlth.experiments.distill import experts
from jaxlth.experiments.distill.arms import SYNTHETIC
from jaxlth.training import loop

DISTILLED = "distilled"  # the artifact of the contract: images, labels, lr
HISTORY = "synthetic/history"  # every iteration's loss and learned lr, (R, iterations)
CHECKPOINTS = "synthetic"
LOSS = {"mtt": "matching_loss", "dm": "dm_loss"}
ROWS = {"arm": SYNTHETIC, "level": 0, "split": "distill"}
TESTED = {"arm": SYNTHETIC, "level": 0, "split": "test"}


def settings(ctx: Context) -> outer.Settings:
    """The distillation's static settings from the config and the data."""
    d, num_classes = ctx.config.distill, int(ctx.setup.dataset.num_classes)
    n = int(d.images_per_class) * num_classes
    return outer.Settings(
        method=d.method,
        images_per_class=int(d.images_per_class),
        num_classes=num_classes,
        iterations=int(d.iterations),
        lr_images=float(d.lr_images),
        lr_lr=float(d.lr_lr),
        lr_labels=float(d.lr_labels),
        learn_labels=bool(d.learn_labels),
        init=d.init,
        init_lr=float(d.init_lr),
        matching=mtt.Matching(int(d.inner_steps), int(d.expert_epochs), int(d.max_start_epoch), int(d.batch_syn) or n),
        distribution=dm.Distribution(int(d.batch_real), num_classes),
    )


def check(ctx: Context) -> None:
    """What needs the data: image data, a minibatch size dividing the set, enough images of each class,
    an experts workdir of this model and data (one sentence each)."""
    d, dataset = ctx.config.distill, ctx.setup.dataset
    if ctx.setup.program.spec.text is not None:
        raise UserError("distill learns images; the text dataset of this run has none")
    k = int(dataset.num_classes)
    n = int(d.images_per_class) * k
    if d.method == "mtt" and (int(d.batch_syn) > n or n % (int(d.batch_syn) or n)):
        raise UserError(f"distill.batch_syn {d.batch_syn} must divide the {n} synthetic images (0: all of them)")
    fewest = int(synthetic_set.class_counts(dataset.train_labels, k).min())
    needed = max(int(d.images_per_class) if d.init == "real" else 0, int(d.batch_real) if d.method == "dm" else 0)
    if fewest < needed:
        field = "batch_real" if d.method == "dm" and int(d.batch_real) > fewest else "images_per_class"
        raise UserError(f"distill.{field} {d[field]} exceeds the {fewest} training images of the smallest class")
    if d.method == "mtt" and d.experts_workdir:
        experts.check_source(ctx.config, d.experts_workdir)


def run(ctx: Context) -> None:
    c, setup, d = ctx.config, ctx.setup, ctx.config.distill
    s = settings(ctx)
    trajectory = None
    if s.method == "mtt":
        if not d.experts_workdir:
            experts.train(ctx)
        trajectory = experts.trajectory(ctx)
    program = outer.Outer(setup.program.model, setup.program.spec, s)
    data = setup.data
    start_keys = rng.replicate_keys(c.seed, c.replicates, keys.START)
    set_keys = rng.replicate_keys(c.seed, c.replicates, keys.ITERATION)
    print(
        f"distill: {s.method.upper()}, {c.replicates} synthetic set(s) of {s.images_per_class} image(s) per class "
        f"x {s.num_classes} classes, {s.iterations} iterations"
        + (f"; experts from {experts.where(ctx)}" if s.method == "mtt" else " (DM: the cheaper method)"),
        flush=True,
    )

    def initial() -> outer.SetState:
        return program.start(start_keys, data.train_images, data.train_labels)

    state = train(ctx, program, initial, set_keys, trajectory)
    variables = state.variables
    ctx.cached(HISTORY, lambda: {"losses": state.losses, "lrs": state.lrs})
    ctx.cached(DISTILLED, lambda: contract(program, variables))
    if int(d.eval_steps) > 0 and not ctx.done("synthetic/tested"):
        ctx.replace_rows(TESTED, evaluate(ctx, program, initial().variables, 0) + evaluate(ctx, program, variables))
        ctx.mark_done("synthetic/tested", TESTED)


def train(ctx: Context, program: outer.Outer, initial, set_keys, trajectory) -> outer.SetState:
    """The outer loop in chunks, resumed from the newest checkpoint; rows every ``log_every`` iterations."""
    d, s, data = ctx.config.distill, program.settings, ctx.setup.data
    checkpoints = checkpoint.Checkpoints(ctx.layout.checkpoints(CHECKPOINTS), ctx.config.keep_checkpoints)
    try:
        with ctx.phases("checkpoints"):
            found = checkpoints.restore_latest(jax.eval_shape(initial), 0, s.iterations)
        state, done = found if found is not None else (initial(), 0)
        written = rows(ctx, state, done)
        if ctx.rows.count(ctx.labelled(ROWS)) != len(written):  # a crash lost rows or left later ones
            ctx.replace_rows(ROWS, written)
        for end in loop.boundaries(done, s.iterations, int(d.chunk)):
            with ctx.phases("training"):
                first, last = (jax.device_put(np.int32(x)) for x in (done, end))
                state = program.chunk(state, set_keys, trajectory, data.train_images, data.train_labels, first, last)
                losses = sharding.to_host(state.losses)
            if not np.all(np.isfinite(losses[:, done:end])):
                raise UserError(
                    f"distill diverged (non-finite loss) between iterations {done} and {end}; lower distill.lr_images "
                    "(or distill.lr_lr) in a new --workdir"
                )
            ctx.record(rows(ctx, state, end)[len(rows(ctx, state, done)) :])
            with ctx.phases("checkpoints"):
                checkpoints.save(end, state)
            print(f"distill: iteration {end}/{s.iterations}, loss {np.mean(losses[:, done:end]):.4g}", flush=True)
            done = end
        return state
    finally:
        with ctx.phases("checkpoints"):
            checkpoints.close()


def rows(ctx: Context, state: outer.SetState, done: int) -> list[dict]:
    """The loss and lr rows of iterations ``< done``: at every multiple ``t`` of ``log_every``, the mean
    loss of iterations ``t - log_every .. t - 1`` and the learning rate after iteration ``t - 1``."""
    every, method = int(ctx.config.distill.log_every), ctx.config.distill.method
    losses, lrs = (np.asarray(sharding.to_host(x), np.float64) for x in (state.losses, state.lrs))
    out = []
    for t in range(every, done + 1, every):
        for r in range(losses.shape[0]):
            for metric, value in ((LOSS[method], np.mean(losses[r, t - every : t])), ("lr", lrs[r, t - 1])):
                out.append(
                    dict(ROWS, replicate=r, density=1.0, step=t, epoch=float("nan"), metric=metric, value=float(value))
                )
    return out


def contract(program: outer.Outer, variables: dict) -> dict:
    """The artifact ``distilled``: images ``(R, N, *image_shape)`` float32 in the real data's stored
    units, labels ``(R, N)`` int32 classes or ``(R, N, K)`` float32 logits (learned), lr ``(R,)`` float32."""
    s = program.settings
    inputs = sharding.to_host(variables["inputs"])
    images = np.asarray(synthetic_set.from_inputs(jax.device_put(inputs), program.spec), np.float32)
    replicates = inputs.shape[0]
    if "label_logits" in variables:
        labels = np.asarray(sharding.to_host(variables["label_logits"]), np.float32)
    else:
        labels = np.tile(np.repeat(np.arange(s.num_classes, dtype=np.int32), s.images_per_class), (replicates, 1))
    if "log_lr" in variables:
        lr = np.exp(np.asarray(sharding.to_host(variables["log_lr"]), np.float32))
    else:
        lr = np.full((replicates,), s.init_lr, np.float32)
    return {"images": images, "labels": labels, "lr": lr.astype(np.float32)}


def evaluate(ctx: Context, program: outer.Outer, variables: dict, step: int | None = None) -> list[dict]:
    """Rows of a fresh network (``distill.eval_steps`` SGD steps on each set with its learned lr and
    labels) tested on the real test set; ``step``: the outer iteration of ``variables``."""
    c, setup = ctx.config, ctx.setup
    step = c.distill.iterations if step is None else step
    networks = jax.vmap(program.init_network)(rng.replicate_keys(c.seed, c.replicates, keys.EVALUATION))
    order_keys = rng.replicate_keys(c.seed, c.replicates, keys.EVALUATION_ORDER)
    params = program.train_fresh(networks, variables, order_keys, steps=int(c.distill.eval_steps))
    data = setup.data
    loss, accuracy = sharding.to_host(
        setup.program.evaluate(params, networks["batch_stats"], data.test_images, data.test_labels)
    )
    return [
        dict(TESTED, replicate=r, density=1.0, step=step, epoch=float("nan"), metric=metric, value=float(values[r]))
        for metric, values in (("loss", loss), ("accuracy", accuracy))
        for r in range(len(values))
    ]
