"""The tokens a masked-language-model step predicts, drawn on the device (BERT's recipe, pure JAX).

Each token other than ``[PAD]``, ``[CLS]`` and ``[SEP]`` is chosen with probability
``text.mlm_probability`` (0.15); a chosen token becomes ``[MASK]`` with probability 0.8, a uniformly random
id in ``[0, vocab_size)`` with probability 0.1, and stays itself with probability 0.1 (Devlin et al. 2019;
Hugging Face's ``DataCollatorForLanguageModeling``, which the BERT-tickets code uses). The model predicts
the original id of every chosen token. ``text`` (a frozen, hashable :class:`~jaxlth.data.dataset.Text`) is
static: close over it or pass it as a static argument of ``jax.jit``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlth import rng
from jaxlth.data.dataset import Text

MASK_SHARE, RANDOM_SHARE = 0.8, 0.1  # of the chosen tokens; the remaining 0.1 stay unchanged
IGNORE = -1  # the target of a token that is not predicted


def maskable(ids: jax.Array, text: Text) -> jax.Array:
    """bool, the shape of ``ids``: the tokens that may be chosen (neither padding nor ``[CLS]``/``[SEP]``)."""
    return (ids != text.pad_id) & (ids != text.cls_id) & (ids != text.sep_id)


def mask_tokens(key: jax.Array, ids: jax.Array, text: Text) -> tuple[jax.Array, jax.Array]:
    """The model's inputs and targets for one masked-language-model step.

    Args:
      key: the step's key.
      ids: int32 ``(B, T)`` token ids (any shape works: every entry is drawn independently).
      text: the dataset's :class:`Text` (special ids, vocabulary size, ``mlm_probability``).

    Returns:
      ``(inputs, targets)``, both int32 like ``ids``: ``inputs`` with the chosen tokens replaced (80% by
      ``[MASK]``, 10% by a random id, 10% kept); ``targets`` the original id where chosen, ``-1`` elsewhere.
    """
    ids = jnp.asarray(ids, jnp.int32)
    choose_key, kind_key, random_key = jax.random.split(key, 3)
    chosen = (jax.random.uniform(choose_key, ids.shape) < text.mlm_probability) & maskable(ids, text)
    kind = jax.random.uniform(kind_key, ids.shape)
    random_ids = jax.random.randint(random_key, ids.shape, 0, text.vocab_size, dtype=jnp.int32)
    replaced = jnp.where(kind < MASK_SHARE, text.mask_id, jnp.where(kind < MASK_SHARE + RANDOM_SHARE, random_ids, ids))
    inputs = jnp.where(chosen, replaced, ids)
    return inputs, jnp.where(chosen, ids, IGNORE)


def eval_masks(ids: jax.Array, text: Text, index: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """:func:`mask_tokens` with a fixed key per example, so evaluation always predicts the same tokens.

    Example ``index[b]`` of the split is masked with the constant key of the stream :data:`jaxlth.rng.MLM_EVAL`
    folded with ``index[b]``: its masks do not depend on the batch it is evaluated in, the run or the replicate.

    Args:
      ids: int32 ``(B, T)``.
      text: the dataset's :class:`Text`.
      index: int ``(B,)`` the examples' positions in their split; ``None``: ``0..B-1`` (the whole split).

    Returns:
      ``(inputs, targets)``, int32 ``(B, T)`` each, as :func:`mask_tokens`.
    """
    ids = jnp.asarray(ids, jnp.int32)
    index = jnp.arange(ids.shape[0]) if index is None else jnp.asarray(index)
    base = rng.MLM_EVAL.key(None)
    return jax.vmap(lambda i, row: mask_tokens(jax.random.fold_in(base, i), row, text))(index, ids)
