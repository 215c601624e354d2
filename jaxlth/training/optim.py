"""Optimizers and learning-rate schedules from the config, indexed by the *global* step.

The learning rate is a pure function of the global step, applied outside the optax state, so a
fresh optimizer state (as after weight rewinding to step k) still continues the schedule from k.
The optax transformation therefore carries no learning rate: ``updates = -lr(step) * tx(grads)``.

Weight decay follows each optimizer's usual convention: ``sgd`` and ``adam`` add ``wd * w`` to the
gradient (PyTorch/OpenLTH), ``adamw`` decays the weights decoupled from the gradient statistics.
With ``train.trainable`` the transformation acts on the trained parameters only; the others get an
update of exactly 0 and no state (:mod:`jaxlth.training.trainable`).
"""

from __future__ import annotations

import inspect
from typing import Callable

import jax.numpy as jnp
import optax

from jaxlth import steps as step_specs
from jaxlth.errors import UserError
from jaxlth.training import hyper, trainable

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine", "linear")


def make_optimizer(train_cfg, network: dict | None = None) -> optax.GradientTransformation:
    """The gradient transformation (without the learning rate) named by ``train.optimizer``.

    With ``train.trainable`` it is an ``optax.partition`` that freezes the parameters it does not
    name; ``network`` holds the shapes they are matched against (:func:`trainable.network_for`).
    With a sweep (:mod:`jaxlth.training.hyper`) it is wrapped in ``optax.inject_hyperparams``: the
    optimizer state holds each network's swept values (those of the learning rate too, read by
    the schedule), and momentum and weight decay are read from there."""
    trained = trainable.trained(train_cfg, network)
    swept = hyper.grid(train_cfg).fields
    if not swept:
        return trainable.partition(_transformation(train_cfg), trained)

    def factory(**values):
        swept_values = {k: v for k, v in values.items() if k in hyper.OPTIMIZER_FIELDS}
        return trainable.partition(_transformation(train_cfg, swept_values), trained)

    factory.__signature__ = inspect.Signature([inspect.Parameter(f, inspect.Parameter.KEYWORD_ONLY) for f in swept])
    first = hyper.grid(train_cfg).settings[0]
    return optax.inject_hyperparams(factory)(**{f: 0 if f == "warmup" else first[f] for f in swept})


def _transformation(train_cfg, swept: dict | None = None) -> optax.GradientTransformation:
    """``make_optimizer`` of one setting: ``swept`` (momentum, weight decay: numbers or traced
    arrays) replace the config's values; a swept value always adds its transformation."""
    swept = swept or {}
    name = train_cfg.optimizer
    wd = swept.get("weight_decay", None)
    if wd is None:
        wd = float(train_cfg.get("weight_decay", 0.0))
        if wd < 0:
            raise UserError(f"train.weight_decay must be >= 0, got {wd}")
    decays = "weight_decay" in swept or wd
    if name == "sgd":
        parts = [optax.add_decayed_weights(wd)] if decays else []
        momentum = swept.get("momentum", None)
        if momentum is None:
            momentum = float(train_cfg.get("momentum", 0.0))
        if "momentum" in swept or momentum:
            parts.append(optax.trace(decay=momentum, nesterov=bool(train_cfg.get("nesterov", False))))
        return optax.chain(*parts) if parts else optax.identity()
    if name in ("adam", "adamw"):
        adam = optax.scale_by_adam(
            b1=float(train_cfg.get("beta1", 0.9)),
            b2=float(train_cfg.get("beta2", 0.999)),
            eps=float(train_cfg.get("eps", 1e-8)),
        )
        if not decays:
            return adam
        if name == "adam":
            return optax.chain(optax.add_decayed_weights(wd), adam)
        return optax.chain(adam, optax.add_decayed_weights(wd))
    raise UserError(f"unknown train.optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


def make_schedule(train_cfg, steps_per_epoch: int, total_steps: int) -> Callable[..., jnp.ndarray]:
    """``lr(step, lr=train.lr, warmup=train.warmup)`` for the global step (int array), from ``train.lr``,
    ``schedule`` and ``warmup`` (in steps): ``lr * f(step; warmup, ...)``.

    ``constant``: ``lr``. ``step``: ``lr * gamma ** (number of milestones <= step)``.
    ``cosine``: from ``lr`` down to 0 at ``total_steps``. ``linear``: ``lr`` until the warmup ends,
    then linearly down to 0 at ``total_steps`` (Hugging Face's ``get_linear_schedule_with_warmup``, the
    BERT fine-tuning schedule). ``train.decay_steps`` (``""``: ``train.steps``) moves the end of the
    cosine or linear decay (the BERT-tickets code decays over 30 epochs while each IMP round trains 3).
    A linear warmup from 0 over ``train.warmup`` steps multiplies any of them (Goyal et al. 2017, as
    in the ImageNet recipe). A swept ``lr`` or ``warmup`` (:mod:`jaxlth.training.hyper`) has no default:
    each network passes its own (arrays; ``warmup`` in steps).
    """
    swept = hyper.grid(train_cfg).fields
    base = None if "lr" in swept else float(train_cfg.lr)
    if base is not None and base <= 0:
        raise UserError(f"train.lr must be positive, got {base}")
    kind = train_cfg.get("schedule", "constant")
    warmup = (
        None
        if "warmup" in swept
        else step_specs.to_steps(train_cfg.get("warmup", "0it"), steps_per_epoch, "train.warmup")
    )
    if train_cfg.get("decay_steps", ""):
        total_steps = step_specs.to_steps(train_cfg.decay_steps, steps_per_epoch, "train.decay_steps")
    if kind == "constant":

        def decayed(step, base, warmup):
            return jnp.full(jnp.shape(step), base, jnp.float32)
    elif kind == "step":
        milestones = jnp.asarray(
            step_specs.parse_list(train_cfg.get("milestones", ""), steps_per_epoch, "train.milestones"),
            jnp.int32,
        )
        gamma = float(train_cfg.get("gamma", 0.1))

        def decayed(step, base, warmup):
            drops = jnp.sum(jnp.asarray(step)[..., None] >= milestones, axis=-1)
            return base * jnp.power(jnp.float32(gamma), drops)
    elif kind == "cosine":

        def decayed(step, base, warmup):
            t = jnp.clip((jnp.asarray(step) - warmup) / _length(total_steps, warmup), 0.0, 1.0)
            return base * 0.5 * (1.0 + jnp.cos(jnp.pi * t))
    elif kind == "linear":

        def decayed(step, base, warmup):
            length = _length(total_steps, warmup)
            return base * jnp.clip((total_steps - jnp.asarray(step)) / length, 0.0, 1.0).astype(jnp.float32)
    else:
        raise UserError(f"unknown train.schedule {kind!r}; choose one of {', '.join(SCHEDULES)}")

    def schedule(step, lr=base, warmup=warmup):
        rate = decayed(step, lr, warmup)
        if isinstance(warmup, int):  # one value: no ramp at all without a warmup
            return rate * jnp.minimum((jnp.asarray(step) + 1) / warmup, 1.0) if warmup else rate
        ramp = jnp.minimum((jnp.asarray(step) + 1) / jnp.maximum(warmup, 1), 1.0)
        return rate * jnp.where(warmup > 0, ramp, 1.0)

    return schedule


def _length(total_steps: int, warmup):
    """The steps of the decay after the warmup (at least 1); ``warmup`` an int or an array."""
    return max(total_steps - warmup, 1) if isinstance(warmup, int) else jnp.maximum(total_steps - warmup, 1)
