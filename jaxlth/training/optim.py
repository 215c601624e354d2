"""Optimizers and learning-rate schedules from the config, indexed by the *global* step.

The learning rate is a pure function of the global step, applied outside the optax state, so a
fresh optimizer state (as after weight rewinding to step k) still continues the schedule from k.
The optax transformation therefore carries no learning rate: ``updates = -lr(step) * tx(grads)``.

Weight decay follows each optimizer's usual convention: ``sgd`` and ``adam`` add ``wd * w`` to the
gradient (PyTorch/OpenLTH), ``adamw`` decays the weights decoupled from the gradient statistics.
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
import optax

from jaxlth import steps as step_specs
from jaxlth.errors import UserError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine", "linear")


def make_optimizer(train_cfg) -> optax.GradientTransformation:
    """The gradient transformation (without the learning rate) named by ``train.optimizer``."""
    name = train_cfg.optimizer
    wd = float(train_cfg.get("weight_decay", 0.0))
    if wd < 0:
        raise UserError(f"train.weight_decay must be >= 0, got {wd}")
    if name == "sgd":
        parts = [optax.add_decayed_weights(wd)] if wd else []
        momentum = float(train_cfg.get("momentum", 0.0))
        if momentum:
            parts.append(optax.trace(decay=momentum, nesterov=bool(train_cfg.get("nesterov", False))))
        return optax.chain(*parts) if parts else optax.identity()
    if name in ("adam", "adamw"):
        adam = optax.scale_by_adam(
            b1=float(train_cfg.get("beta1", 0.9)),
            b2=float(train_cfg.get("beta2", 0.999)),
            eps=float(train_cfg.get("eps", 1e-8)),
        )
        if not wd:
            return adam
        if name == "adam":
            return optax.chain(optax.add_decayed_weights(wd), adam)
        return optax.chain(adam, optax.add_decayed_weights(wd))
    raise UserError(f"unknown train.optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


def make_schedule(train_cfg, steps_per_epoch: int, total_steps: int) -> Callable[[jnp.ndarray], jnp.ndarray]:
    """``lr(step)`` for the global step (int array), from ``train.lr``, ``schedule`` and ``warmup``.

    ``constant``: ``lr``. ``step``: ``lr * gamma ** (number of milestones <= step)``.
    ``cosine``: from ``lr`` down to 0 at ``total_steps``. ``linear``: ``lr`` until the warmup ends,
    then linearly down to 0 at ``total_steps`` (Hugging Face's ``get_linear_schedule_with_warmup``, the
    BERT fine-tuning schedule). ``train.decay_steps`` (``""``: ``train.steps``) moves the end of the
    cosine or linear decay (the BERT-tickets code decays over 30 epochs while each IMP round trains 3).
    A linear warmup from 0 over ``train.warmup`` steps multiplies any of them (Goyal et al. 2017, as
    in the ImageNet recipe).
    """
    base = float(train_cfg.lr)
    if base <= 0:
        raise UserError(f"train.lr must be positive, got {base}")
    kind = train_cfg.get("schedule", "constant")
    warmup = step_specs.to_steps(train_cfg.get("warmup", "0it"), steps_per_epoch, "train.warmup")
    if train_cfg.get("decay_steps", ""):
        total_steps = step_specs.to_steps(train_cfg.decay_steps, steps_per_epoch, "train.decay_steps")
    if kind == "constant":

        def decayed(step):
            return jnp.full(jnp.shape(step), base, jnp.float32)
    elif kind == "step":
        milestones = jnp.asarray(
            step_specs.parse_list(train_cfg.get("milestones", ""), steps_per_epoch, "train.milestones"),
            jnp.int32,
        )
        gamma = float(train_cfg.get("gamma", 0.1))

        def decayed(step):
            drops = jnp.sum(jnp.asarray(step)[..., None] >= milestones, axis=-1)
            return base * jnp.power(jnp.float32(gamma), drops)
    elif kind == "cosine":
        length = max(total_steps - warmup, 1)

        def decayed(step):
            t = jnp.clip((jnp.asarray(step) - warmup) / length, 0.0, 1.0)
            return base * 0.5 * (1.0 + jnp.cos(jnp.pi * t))
    elif kind == "linear":
        length = max(total_steps - warmup, 1)

        def decayed(step):
            return base * jnp.clip((total_steps - jnp.asarray(step)) / length, 0.0, 1.0).astype(jnp.float32)
    else:
        raise UserError(f"unknown train.schedule {kind!r}; choose one of {', '.join(SCHEDULES)}")

    if not warmup:
        return decayed

    def schedule(step):
        ramp = jnp.minimum((jnp.asarray(step) + 1) / warmup, 1.0)
        return decayed(step) * ramp

    return schedule
