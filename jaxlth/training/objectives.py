"""What a network is trained to do: classify, regress (STS-B) or predict masked tokens (MLM).

The objective is a property of the data (``Dataset.text.objective``; image data always classify).
Each function takes a batch's model outputs and targets and returns per-example values ``(B,)``:

* ``classify``: outputs ``(B, C)`` logits, targets int32 ``(B,)`` classes or float32 ``(B, C)`` soft
  targets (a distilled set's learned labels: probabilities); loss the softmax cross-entropy (of the
  soft targets: ``optax.softmax_cross_entropy``); right when the argmax of the logits is the class
  (the argmax of the soft targets).
* ``regress``: outputs ``(B, 1)``, targets float32 ``(B,)``; loss the squared error (Hugging Face's
  ``MSELoss`` for a one-label sequence classifier); nothing is "correct" (NaN).
* ``mlm``: outputs ``(B, T, V)`` logits, targets int32 ``(B, T)``, ``-1`` where a token is not
  predicted; an example's loss is the mean cross-entropy over its predicted tokens (0 with none).
  The training objective is the mean over *every* predicted token of the batch, as Hugging Face's
  ``CrossEntropyLoss(ignore_index=-100)`` computes it (:func:`batch_loss`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

CLASSIFY, REGRESS, MLM = "classify", "regress", "mlm"


def objective_of(text) -> str:
    """The objective of a dataset's :class:`~jaxlth.data.dataset.Text` (``None``: images, classify)."""
    return CLASSIFY if text is None else text.objective


def _soft(out: jax.Array, targets: jax.Array) -> bool:
    """Whether ``classify`` targets are soft ``(B, C)`` probabilities rather than ``(B,)`` classes (static)."""
    return targets.ndim == out.ndim


def _token_losses(out: jax.Array, targets: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``((B, T) cross-entropy, (B, T) bool predicted)`` of MLM logits; 0 where not predicted."""
    predicted = targets >= 0
    losses = optax.softmax_cross_entropy_with_integer_labels(out, jnp.where(predicted, targets, 0))
    return jnp.where(predicted, losses, 0.0), predicted


def per_example(objective: str, out: jax.Array, targets: jax.Array) -> jax.Array:
    """``(B,)`` loss of each example (see the module docstring)."""
    if objective == CLASSIFY:
        if _soft(out, targets):
            return optax.softmax_cross_entropy(out, targets)
        return optax.softmax_cross_entropy_with_integer_labels(out, targets)
    if objective == REGRESS:
        return jnp.square(out[:, 0] - targets.astype(out.dtype))
    if objective == MLM:
        losses, predicted = _token_losses(out, targets)
        return jnp.sum(losses, -1) / jnp.maximum(jnp.sum(predicted, -1), 1)
    raise ValueError(f"unknown objective {objective!r}")


def batch_loss(objective: str, out: jax.Array, targets: jax.Array) -> jax.Array:
    """The scalar training loss of a batch: the mean of :func:`per_example`, or for ``mlm`` the mean
    over every predicted token of the batch."""
    if objective == MLM:
        losses, predicted = _token_losses(out, targets)
        return jnp.sum(losses) / jnp.maximum(jnp.sum(predicted), 1)
    return jnp.mean(per_example(objective, out, targets))


def correct(objective: str, out: jax.Array, targets: jax.Array) -> jax.Array:
    """``(B,)`` whether each example is predicted right: bool for ``classify``; for ``mlm`` the float
    fraction of its predicted tokens that are right; NaN for ``regress`` (no such thing)."""
    if objective == CLASSIFY:
        return jnp.argmax(out, -1) == (jnp.argmax(targets, -1) if _soft(out, targets) else targets)
    if objective == REGRESS:
        return jnp.full(targets.shape, jnp.nan, jnp.float32)
    predicted = targets >= 0
    right = jnp.sum((jnp.argmax(out, -1) == targets) & predicted, -1)
    return right / jnp.maximum(jnp.sum(predicted, -1), 1)


def predictions(objective: str, out: jax.Array) -> jax.Array:
    """What a task metric compares with the labels: the ``(B,)`` class (``classify``), the ``(B,)``
    score (``regress``) or the ``(B, T)`` tokens (``mlm``)."""
    if objective == REGRESS:
        return out[:, 0].astype(jnp.float32)
    return jnp.argmax(out, -1).astype(jnp.int32)
