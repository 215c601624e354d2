"""timm's and Hugging Face's ViT names, as jaxlth's ViT (:mod:`jaxlth.models.vit`).

jaxlth module: timm name | Hugging Face name (``ViTForImageClassification``; ``L`` is
``vit.encoder.layer.{i}``):

* ``patch_embedding``: ``patch_embed.proj`` | ``vit.embeddings.patch_embeddings.projection``
* ``cls_token``, ``position_embedding``: ``cls_token``, ``pos_embed`` | ``vit.embeddings.cls_token``,
  ``vit.embeddings.position_embeddings``
* ``block{i}/norm1``: ``blocks.{i}.norm1`` | ``L.layernorm_before``
* ``block{i}/attention/{query,key,value}``: ``blocks.{i}.attn.qkv`` (fused) |
  ``L.attention.attention.{query,key,value}``
* ``block{i}/attention/out``: ``blocks.{i}.attn.proj`` | ``L.attention.output.dense``
* ``block{i}/norm2``: ``blocks.{i}.norm2`` | ``L.layernorm_after``
* ``block{i}/mlp/fc1``, ``fc2``: ``blocks.{i}.mlp.fc1``, ``fc2`` | ``L.intermediate.dense``, ``L.output.dense``
* ``norm``: ``norm`` | ``vit.layernorm``;  ``output``: ``head`` | ``classifier``

timm fuses query, key and value into one ``qkv`` Linear ``(3 D, D)`` (rows in that order); the
patch embedding is a ``P x P`` stride-``P`` conv in both, jaxlth's a Dense on flattened patches.
Hugging Face's ``ViTModel`` files name the same tensors without the ``vit.`` prefix; their
``pooler`` (unused by classification) is read past.
"""

from jaxlth.weights.layers import LAYERNORM, LINEAR, PATCH, QKV, Kind, same
from jaxlth.weights.names import Names, Rule

_TIMM_TOKENS = Kind(
    "token", (same("cls_token", "params/cls_token", 3), same("pos_embed", "params/position_embedding", 3))
)
_HF_TOKENS = Kind(
    "token",
    (same("cls_token", "params/cls_token", 3), same("position_embeddings", "params/position_embedding", 3)),
)

TIMM = Names(
    "timm_vit",
    (
        Rule("patch_embed.proj", "patch_embedding", PATCH),
        Rule("", "", _TIMM_TOKENS),
        Rule("blocks.{i}.norm1", "block{i}/norm1", LAYERNORM),
        Rule("blocks.{i}.attn.qkv", "block{i}/attention", QKV),
        Rule("blocks.{i}.attn.proj", "block{i}/attention/out", LINEAR),
        Rule("blocks.{i}.norm2", "block{i}/norm2", LAYERNORM),
        Rule("blocks.{i}.mlp.fc1", "block{i}/mlp/fc1", LINEAR),
        Rule("blocks.{i}.mlp.fc2", "block{i}/mlp/fc2", LINEAR),
        Rule("norm", "norm", LAYERNORM),
        Rule("head", "output", LINEAR),
    ),
)

_LAYER = "vit.encoder.layer.{i}"


def _hf_canonical(key: str) -> str:
    """A ``ViTModel`` key (no ``vit.`` prefix) as ``ViTForImageClassification`` spells it."""
    return key if key.startswith(("vit.", "classifier.")) else "vit." + key


HF = Names(
    "hf_vit",
    (
        Rule("vit.embeddings.patch_embeddings.projection", "patch_embedding", PATCH),
        Rule("vit.embeddings", "", _HF_TOKENS),
        Rule(f"{_LAYER}.layernorm_before", "block{i}/norm1", LAYERNORM),
        *(
            Rule(f"{_LAYER}.attention.attention.{n}", f"block{{i}}/attention/{n}", LINEAR)
            for n in ("query", "key", "value")
        ),
        Rule(f"{_LAYER}.attention.output.dense", "block{i}/attention/out", LINEAR),
        Rule(f"{_LAYER}.layernorm_after", "block{i}/norm2", LAYERNORM),
        Rule(f"{_LAYER}.intermediate.dense", "block{i}/mlp/fc1", LINEAR),
        Rule(f"{_LAYER}.output.dense", "block{i}/mlp/fc2", LINEAR),
        Rule("vit.layernorm", "norm", LAYERNORM),
        Rule("classifier", "output", LINEAR),
    ),
    ignored=(r"vit\.pooler\.dense\.(weight|bias)",),
    canonical=_hf_canonical,
)
