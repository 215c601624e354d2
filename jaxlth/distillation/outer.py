"""The outer loop: what a synthetic set learns, its optax optimiser, and chunks of iterations vmapped over sets.

A set's learned variables are ``{"inputs", "log_lr", "label_logits"}``:

* ``inputs``: ``(N, *image_shape)`` images in the network's input units (normalised), the units the
  papers' image learning rates are given in; the images themselves (stored units, the artifact) are
  :func:`~jaxlth.distillation.synthetic_set.from_inputs` of them, and every forward pass reads them
  through jaxlth's own preprocessing;
* ``log_lr`` (MTT only): the student's learning rate is ``exp(log_lr)``, positive by construction;
  ``distill.lr_lr`` is the learning rate of ``log_lr`` (a step ``δ`` in ``log_lr`` scales the rate by
  ``e^δ``; MTT's step on the rate itself, ``η_lr · g``, is a step ``η_lr · g / lr`` in ``log_lr``, whose
  gradient is ``lr · g``: MTT's ``η_lr`` corresponds to ``η_lr / lr²`` here);
* ``label_logits`` (MTT with ``learn_labels``): ``(N, K)``; the student trains on ``softmax`` of them.

Each is optimised by SGD with momentum 0.5 (MTT's and DM's optimiser for images and the rate; the
labels take the same), one ``optax.sgd`` each under ``optax.multi_transform``. A chunk of outer
iterations is one ``lax.fori_loop`` of traced bounds, ``jax.vmap``-ed over the ``R`` sets: one compiled
program serves every chunk, so a run resumed from a checkpoint runs exactly the program it ran before.
Iteration ``i`` of set ``r`` draws everything from ``fold_in(set key r, i)``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax import lax

from jaxlth.distillation import dm, mtt, student, synthetic_set
from jaxlth.training import functions as fn

PyTree = Any
METHODS = ("mtt", "dm")
MOMENTUM = 0.5  # MTT's and DM's SGD momentum for the synthetic images and the learning rate


@dataclasses.dataclass(frozen=True)
class Settings:
    """The static settings of a distillation (``distill.*`` of the config)."""

    method: str
    images_per_class: int
    num_classes: int
    iterations: int
    lr_images: float
    lr_lr: float = 0.0
    lr_labels: float = 0.0
    learn_labels: bool = False
    init: str = "real"
    init_lr: float = 0.01
    matching: mtt.Matching | None = None  # MTT
    distribution: dm.Distribution | None = None  # DM

    @property
    def num_images(self) -> int:
        return self.images_per_class * self.num_classes


@struct.dataclass
class SetState:
    """One synthetic set in the outer loop (a leading replicate axis when stacked): its learned
    ``variables``, the optimiser's state, and per iteration the loss and the learning rate after it."""

    variables: dict
    opt_state: PyTree
    losses: jax.Array  # (iterations,) float32; NaN until the iteration has run
    lrs: jax.Array  # (iterations,) float32


def optimizer(settings: Settings, variables: dict) -> optax.GradientTransformation:
    """SGD with momentum 0.5 for each learned variable, at its own learning rate."""
    rates = {"inputs": settings.lr_images, "log_lr": settings.lr_lr, "label_logits": settings.lr_labels}
    return optax.multi_transform(
        {name: optax.sgd(rates[name], momentum=MOMENTUM) for name in variables}, {name: name for name in variables}
    )


def learning_rate(settings: Settings, variables: dict) -> jax.Array:
    """The student's learning rate: ``exp(log_lr)`` (MTT), or ``init_lr`` (DM: not learned)."""
    if "log_lr" in variables:
        return jnp.exp(variables["log_lr"])
    return jnp.float32(settings.init_lr)


def targets(settings: Settings, variables: dict) -> jax.Array:
    """``(N, K)`` soft targets ``softmax(label_logits)`` when learned, else ``(N,)`` classes."""
    if "label_logits" in variables:
        return jax.nn.softmax(variables["label_logits"], axis=-1)
    return synthetic_set.class_labels(settings.images_per_class, settings.num_classes)


class Outer:
    """The jitted, set-vmapped programs of one distillation: start, a chunk of iterations, evaluation."""

    def __init__(self, model, spec: fn.Spec, settings: Settings):
        self.model, self.spec, self.settings = model, spec, settings
        self.start = jax.jit(jax.vmap(self._start_one, in_axes=(0, None, None)))
        self.chunk = jax.jit(jax.vmap(self._chunk_one, in_axes=(0, 0, None, None, None, None, None)), donate_argnums=0)
        self.train_fresh = jax.jit(
            lambda networks, variables, keys, steps: jax.vmap(functools.partial(self._train_fresh_one, steps=steps))(
                networks, variables, keys
            ),
            static_argnames="steps",
        )

    def variables(self, key: jax.Array, train_images: jax.Array, train_labels: jax.Array) -> dict:
        """One set's learned variables at the start (``key``: its start stream)."""
        s = self.settings
        inputs = synthetic_set.initial_inputs(
            key, train_images, train_labels, s.images_per_class, s.num_classes, s.init, self.spec
        )
        variables = {"inputs": inputs}
        if s.method == "mtt":
            variables["log_lr"] = jnp.log(jnp.float32(s.init_lr))
            if s.learn_labels:
                variables["label_logits"] = synthetic_set.initial_label_logits(s.images_per_class, s.num_classes)
        return variables

    def _start_one(self, key, train_images, train_labels) -> SetState:
        variables = self.variables(key, train_images, train_labels)
        nan = jnp.full((self.settings.iterations,), jnp.nan, jnp.float32)
        return SetState(variables, optimizer(self.settings, variables).init(variables), nan, nan)

    def objective(self, variables: dict, key: jax.Array, trajectory, train_images, train_labels) -> jax.Array:
        """The loss of one iteration of one set (MTT's matching loss or DM's)."""
        s = self.settings
        images = synthetic_set.from_inputs(variables["inputs"], self.spec)
        if s.method == "mtt":
            lr = learning_rate(s, variables)
            return mtt.loss(self.model, self.spec, s.matching, trajectory, images, targets(s, variables), lr, key)
        return dm.loss(self.model, self.spec, s.distribution, train_images, train_labels, images, key)

    def _chunk_one(self, state: SetState, set_key, trajectory, train_images, train_labels, first, end) -> SetState:
        tx = optimizer(self.settings, state.variables)
        grad = jax.value_and_grad(functools.partial(self.objective, trajectory=trajectory))

        def iteration(i, state: SetState) -> SetState:
            key = jax.random.fold_in(set_key, i)
            loss, grads = grad(state.variables, key, train_images=train_images, train_labels=train_labels)
            updates, opt_state = tx.update(grads, state.opt_state, state.variables)
            variables = optax.apply_updates(state.variables, updates)
            lr = learning_rate(self.settings, variables)
            return SetState(variables, opt_state, state.losses.at[i].set(loss), state.lrs.at[i].set(lr))

        return lax.fori_loop(first, end, iteration, state)

    def _train_fresh_one(self, network, variables, order_key, steps: int) -> PyTree:
        """A fresh network's params after ``steps`` SGD steps on one distilled set (its learned rate and
        labels, minibatches of the student's size) — a quick check of the set, not the full evaluation."""
        s = self.settings
        batch = s.matching.batch if s.matching is not None else s.num_images
        order_key, augment_key = jax.random.split(order_key)
        order = student.minibatch_order(order_key, s.num_images, batch, steps)
        images = synthetic_set.from_inputs(variables["inputs"], self.spec)
        lr, labels = learning_rate(s, variables), targets(s, variables)
        return student.train(self.model, self.spec, network, images, labels, lr, order, augment_key, remat=False)

    def init_network(self, key: jax.Array) -> dict:
        """``{"params", "batch_stats"}`` of a freshly initialised network (one set's; vmap it)."""
        params, batch_stats = fn.init(self.model, self.spec, key)
        return {"params": params, "batch_stats": batch_stats}
