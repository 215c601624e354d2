"""Hugging Face's BERT names, as jaxlth's BERT (:mod:`jaxlth.models.bert`).

jaxlth module: Hugging Face name (``BertForSequenceClassification``, ``BertForMaskedLM``,
``BertForPreTraining``; ``L`` is ``bert.encoder.layer.{i}``):

* ``word_embeddings``, ``position_embeddings``, ``token_type_embeddings``:
  ``bert.embeddings.{word,position,token_type}_embeddings`` (``weight (V, H)``: Flax's layout)
* ``embeddings_norm``: ``bert.embeddings.LayerNorm``
* ``layer{i}/attention/{query,key,value}``: ``L.attention.self.{query,key,value}``
* ``layer{i}/attention/out``: ``L.attention.output.dense``;
  ``layer{i}/attention_norm``: ``L.attention.output.LayerNorm``
* ``layer{i}/intermediate``: ``L.intermediate.dense``;  ``layer{i}/ffn_out``: ``L.output.dense``;
  ``layer{i}/ffn_norm``: ``L.output.LayerNorm``
* ``pooler``: ``bert.pooler.dense``;  ``output`` (classify, regress): ``classifier``
* ``output/transform``, ``output/norm``, ``output/bias`` (mlm): ``cls.predictions.transform.dense``,
  ``cls.predictions.transform.LayerNorm``, ``cls.predictions.bias``

Older files spell LayerNorm tensors ``gamma``, ``beta``: both spellings are read, ``weight`` and
``bias`` written. Read past: the MLM decoder ``cls.predictions.decoder.{weight,bias}`` (tied to the
word embeddings and to ``cls.predictions.bias``), the next-sentence head ``cls.seq_relationship``, the
``position_ids`` buffer. A ``BertModel`` file names the same tensors without the ``bert.`` prefix.
"""

from jaxlth.weights.layers import LAYERNORM, LINEAR, Kind, same
from jaxlth.weights.names import Names, Rule

EMBEDDING = Kind("embedding", (same("weight", "params/embedding", 2),))
NORM = Kind("LayerNorm", (*LAYERNORM.leaves, same("gamma", "params/scale", 1), same("beta", "params/bias", 1)))
MLM_BIAS = Kind("masked-language-model bias", (same("bias", "params/bias", 1),))

_LAYER = "bert.encoder.layer.{i}"


def _canonical(key: str) -> str:
    """A ``BertModel`` key (no ``bert.`` prefix) as the task models spell it."""
    return key if key.startswith(("bert.", "classifier.", "cls.")) else "bert." + key


HF = Names(
    "hf_bert",
    (
        *(Rule(f"bert.embeddings.{n}", n, EMBEDDING) for n in ("word_embeddings", "position_embeddings")),
        Rule("bert.embeddings.token_type_embeddings", "token_type_embeddings", EMBEDDING),
        Rule("bert.embeddings.LayerNorm", "embeddings_norm", NORM),
        *(Rule(f"{_LAYER}.attention.self.{n}", f"layer{{i}}/attention/{n}", LINEAR) for n in ("query", "key", "value")),
        Rule(f"{_LAYER}.attention.output.dense", "layer{i}/attention/out", LINEAR),
        Rule(f"{_LAYER}.attention.output.LayerNorm", "layer{i}/attention_norm", NORM),
        Rule(f"{_LAYER}.intermediate.dense", "layer{i}/intermediate", LINEAR),
        Rule(f"{_LAYER}.output.dense", "layer{i}/ffn_out", LINEAR),
        Rule(f"{_LAYER}.output.LayerNorm", "layer{i}/ffn_norm", NORM),
        Rule("bert.pooler.dense", "pooler", LINEAR),
        Rule("cls.predictions.transform.dense", "output/transform", LINEAR),
        Rule("cls.predictions.transform.LayerNorm", "output/norm", NORM),
        Rule("cls.predictions", "output", MLM_BIAS, needs="params/output/transform/kernel"),
        Rule("classifier", "output", LINEAR),
    ),
    ignored=(
        r"bert\.embeddings\.position_ids",
        r"cls\.predictions\.decoder\.(weight|bias)",
        r"cls\.seq_relationship\.(weight|bias)",
    ),
    canonical=_canonical,
)
