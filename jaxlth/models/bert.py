"""BERT (Devlin et al. 2019): a post-norm transformer encoder over token ids, as Hugging Face's ``BertModel``.

Inputs are int32 ``(N, 2, T)``: ``x[:, 0]`` WordPiece ids, ``x[:, 1]`` token types (float inputs are
cast: ids up to 2^24 survive float32). The embedding of token ``t`` is ``word_embeddings[id] +
position_embeddings[t] + token_type_embeddings[type]`` (positions ``0..T-1``, ``T <= max_positions``),
then ``embeddings_norm`` and dropout. Each of ``layers`` layers ``layer{i}`` is

    x = attention_norm(x + dropout(attention(x))),    x = ffn_norm(x + dropout(ffn_out(gelu(intermediate(x)))))

with multi-head self-attention (Dense ``attention/query``, ``key``, ``value`` and ``out``, all
``(H, H)``; heads split by a reshape; scores ``q k / sqrt(H / heads)`` in float32, a key whose id is
``pad_id`` masked by adding -1e9, dropout on the attention weights as Hugging Face), ``intermediate``
``(H, I)``, exact (erf) GELU, ``ffn_out`` ``(I, H)``; LayerNorms with epsilon ``ln_epsilon``. Padding
never changes what the other tokens compute. ``pooler``: Dense ``(H, H)`` and tanh on the first
([CLS]) token. The head, always under ``output``:

* ``classify`` / ``regress``: Dense ``output`` ``(H, num_classes)`` on dropout(pooled); logits
  ``(N, num_classes)`` (``regress``: one score, ``num_classes = 1``);
* ``mlm``: ``output/transform`` Dense ``(H, H)``, exact GELU, ``output/norm``, then
  ``h @ word_embeddings.T + output/bias``: the decoder is tied to the word embeddings; logits
  ``(N, T, vocab_size)`` (``num_classes = vocab_size``).

Dropout (rate ``dropout``) acts only with ``train=True`` and a ``"dropout"`` rng; otherwise training
and evaluation compute the same function. Initialisation as Hugging Face's BERT: every Dense kernel
and embedding normal (std 0.02), zero biases, LayerNorm scale 1 and bias 0. Logits come in the
activations' dtype (the parameters' under mixed precision); softmax runs in float32.
:func:`bert_options` reads a Hugging Face ``config.json``; ``jaxlth/weights/bert_keys.py`` maps the
checkpoint names.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlth.errors import UserError

HEADS = ("classify", "regress", "mlm")
MASKED = -1e9  # added to the scores of padding keys: exp underflows to exactly 0 in float32
STD = 0.02  # Hugging Face's initializer_range


def _dense(features: int, name: str) -> nn.Dense:
    return nn.Dense(features, kernel_init=nn.initializers.normal(STD), name=name)


def _embed(count: int, features: int, name: str) -> nn.Embed:
    return nn.Embed(count, features, embedding_init=nn.initializers.normal(STD), name=name)


class Attention(nn.Module):
    """Multi-head self-attention; ``(N, T, H)`` and key mask ``(N, T)`` -> ``(N, T, H)``."""

    heads: int
    dropout: float

    @nn.compact
    def __call__(self, x: jax.Array, keep: jax.Array, deterministic: bool) -> jax.Array:
        n, t, h = x.shape
        split = (n, t, self.heads, h // self.heads)
        q, k, v = (jnp.reshape(_dense(h, name)(x), split) for name in ("query", "key", "value"))
        scores = jnp.einsum("nqhc,nkhc->nhqk", q, k).astype(jnp.float32) * (h // self.heads) ** -0.5
        scores = scores + jnp.where(keep[:, None, None, :], 0.0, MASKED)
        weights = jax.nn.softmax(scores, axis=-1).astype(x.dtype)
        weights = nn.Dropout(self.dropout)(weights, deterministic=deterministic)
        y = jnp.reshape(jnp.einsum("nhqk,nkhc->nqhc", weights, v), (n, t, h))
        return _dense(h, "out")(y)


class Layer(nn.Module):
    """Post-norm encoder layer; ``(N, T, H)`` -> ``(N, T, H)``."""

    heads: int
    intermediate: int
    ln_epsilon: float
    dropout: float

    @nn.compact
    def __call__(self, x: jax.Array, keep: jax.Array, deterministic: bool) -> jax.Array:
        drop = nn.Dropout(self.dropout)
        y = Attention(self.heads, self.dropout, name="attention")(x, keep, deterministic)
        x = nn.LayerNorm(self.ln_epsilon, name="attention_norm")(x + drop(y, deterministic=deterministic))
        y = nn.gelu(_dense(self.intermediate, "intermediate")(x), approximate=False)
        y = _dense(x.shape[-1], "ffn_out")(y)
        return nn.LayerNorm(self.ln_epsilon, name="ffn_norm")(x + drop(y, deterministic=deterministic))


class MaskedLM(nn.Module):
    """The masked-language-model head: ``(N, T, H)`` and the word embeddings ``(V, H)`` -> ``(N, T, V)``."""

    ln_epsilon: float

    @nn.compact
    def __call__(self, x: jax.Array, embedding: jax.Array) -> jax.Array:
        x = nn.gelu(_dense(x.shape[-1], "transform")(x), approximate=False)
        x = nn.LayerNorm(self.ln_epsilon, name="norm")(x)
        bias = self.param("bias", nn.initializers.zeros, (embedding.shape[0],))
        dtype = jnp.result_type(x, embedding)
        return (x @ embedding.T.astype(dtype) + bias).astype(dtype)


class Bert(nn.Module):
    """BERT encoder and head; ``x`` int ``(N, 2, T)`` -> ``(N, num_classes)``, or ``(N, T, V)`` for ``mlm``."""

    num_classes: int
    vocab_size: int = 30522
    hidden: int = 768
    layers: int = 12
    heads: int = 12
    intermediate: int = 3072
    max_positions: int = 512
    type_vocab: int = 2
    pad_id: int = 0
    head: str = "classify"  # one of HEADS
    ln_epsilon: float = 1e-12
    dropout: float = 0.1

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = jnp.asarray(x)
        if x.ndim != 3 or x.shape[1] != 2:
            raise UserError(f"a BERT reads token ids and types of shape (N, 2, T), got inputs of shape {x.shape}")
        t = x.shape[2]
        if t > self.max_positions:
            raise UserError(f"a BERT of max_positions {self.max_positions} cannot read {t} tokens per example")
        if self.head == "mlm" and self.num_classes != self.vocab_size:
            raise UserError(f"a BERT's mlm head has vocab_size {self.vocab_size} outputs, not {self.num_classes}")
        ids, types = x[:, 0].astype(jnp.int32), x[:, 1].astype(jnp.int32)
        deterministic = not (train and self.has_rng("dropout"))
        drop = nn.Dropout(self.dropout)
        word = _embed(self.vocab_size, self.hidden, "word_embeddings")
        h = word(ids) + _embed(self.max_positions, self.hidden, "position_embeddings")(jnp.arange(t))
        h = h + _embed(self.type_vocab, self.hidden, "token_type_embeddings")(types)
        h = drop(nn.LayerNorm(self.ln_epsilon, name="embeddings_norm")(h), deterministic=deterministic)
        keep = ids != self.pad_id
        for i in range(self.layers):
            layer = Layer(self.heads, self.intermediate, self.ln_epsilon, self.dropout, name=f"layer{i}")
            h = layer(h, keep, deterministic)
        pooled = jnp.tanh(_dense(self.hidden, "pooler")(h[:, 0]))
        if self.head == "mlm":
            return MaskedLM(self.ln_epsilon, name="output")(h, word.embedding)
        return _dense(self.num_classes, "output")(drop(pooled, deterministic=deterministic))


# Hugging Face config.json field -> (Bert option, BertConfig's default: also for a field set to null)
_CONFIG = {
    "vocab_size": ("vocab_size", 30522),
    "hidden_size": ("hidden", 768),
    "num_hidden_layers": ("layers", 12),
    "num_attention_heads": ("heads", 12),
    "intermediate_size": ("intermediate", 3072),
    "max_position_embeddings": ("max_positions", 512),
    "type_vocab_size": ("type_vocab", 2),
    "pad_token_id": ("pad_id", 0),
    "layer_norm_eps": ("ln_epsilon", 1e-12),
    "hidden_dropout_prob": ("dropout", 0.1),
}


def bert_options(hf_config: dict) -> dict:
    """The ``bert`` model options of a Hugging Face BERT ``config.json`` (a dict); fields it lacks take
    ``BertConfig``'s defaults. Raises UserError for another model type or activation."""
    if not isinstance(hf_config, dict):
        raise UserError(f"a Hugging Face config is a dict (config.json), got {type(hf_config).__name__}")
    kind = hf_config.get("model_type", "bert")
    if kind != "bert":
        raise UserError(f"the Hugging Face config is of model_type {kind!r}, not a 'bert'")
    act = hf_config.get("hidden_act", "gelu")
    if act != "gelu":
        raise UserError(f"jaxlth's BERT uses the exact GELU ('gelu'), but the config's hidden_act is {act!r}")
    found = {field: hf_config.get(field) for field in _CONFIG}
    return {option: default if found[field] is None else found[field] for field, (option, default) in _CONFIG.items()}
