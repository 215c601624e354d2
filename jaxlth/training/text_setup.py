"""What a run on text data decides before it builds its model: the vocabulary, the BERT options.

A BERT run usually starts from a Hugging Face checkpoint folder (``model.pretrained = DIR`` holding
``model.safetensors``, ``config.json`` and ``vocab.txt``; docs/text.md says how to get one):

* ``data.vocab`` left ``""`` means the folder's ``vocab.txt`` (the tokenizer must be the checkpoint's);
* the folder's ``config.json`` fixes the encoder's sizes (vocabulary, width, depth, heads, positions,
  token types): a ``model.options`` entry that disagrees with it is one sentence;
* the head follows the data's objective (``classify``, ``regress`` for STS-B, ``mlm``).

Nothing here reads a tensor; the weights are read by :mod:`jaxlth.experiments.pretrained_source`.
"""

from __future__ import annotations

import json
import os

from jaxlth import storage
from jaxlth.data import text as text_data
from jaxlth.errors import UserError
from jaxlth.models.bert import bert_options

CHECKPOINT_FILE = "model.safetensors"  # a Hugging Face checkpoint folder's weights
HF_CONFIG = "config.json"
ARCHITECTURE = ("vocab_size", "hidden", "layers", "heads", "intermediate", "max_positions", "type_vocab")


def is_bert(model_name: str) -> bool:
    """Whether ``model_name`` is a BERT of the registry (``bert``, ``bert_base``, ...)."""
    return model_name == "bert" or model_name.startswith("bert_")


def checkpoint_folder(config) -> str | None:
    """The Hugging Face checkpoint folder ``model.pretrained`` names (a folder holding
    ``model.safetensors``), or None."""
    path = config.model.get("pretrained", "")
    if path and ":" not in os.path.basename(path) and storage.isdir(path):
        if storage.exists(os.path.join(path, CHECKPOINT_FILE)):
            return path
    return None


def data_config(config):
    """``config.data`` with ``vocab`` resolved: a text run's empty ``data.vocab`` is the checkpoint
    folder's (a copy: the config itself is unchanged)."""
    data = config.data
    if data.get("vocab", "") or data.get("name") not in text_data.NAMES:
        return data
    folder = checkpoint_folder(config)
    if folder is None:
        return data
    data = data.copy_and_resolve_references()
    with data.unlocked():
        data.vocab = folder
    return data


def _hf_config(folder: str) -> dict:
    path = os.path.join(folder, HF_CONFIG)
    if not storage.exists(path):
        raise UserError(
            f"model.pretrained {folder} holds {CHECKPOINT_FILE} but no {HF_CONFIG} to say the model's sizes"
        )
    try:
        return json.loads(storage.read_text(path))
    except (OSError, ValueError) as e:
        raise UserError(f"{path} is not a readable JSON file: {e}") from None


def model_options(config, dataset) -> dict:
    """``model.options`` of a BERT run completed from the checkpoint's ``config.json`` and the data's
    objective (the head). Other models: ``model.options`` unchanged."""
    options = config.model.options.to_dict()
    text = getattr(dataset, "text", None)  # (a streamed dataset is images)
    if not is_bert(config.model.name):
        if text is not None:
            raise UserError(
                f"data.name {dataset.name} is text, which only a BERT reads (model.name bert, bert_base, ...)"
            )
        return options
    if text is None:
        raise UserError(f"model {config.model.name} reads text; data.name {dataset.name} is image data")
    head = text.objective
    if options.get("head", head) != head:
        raise UserError(
            f"model.options.head={options['head']!r} does not fit data {dataset.name}, which needs {head!r}"
        )
    options["head"] = head
    folder = checkpoint_folder(config)
    if folder is not None:
        for name, value in bert_options(_hf_config(folder)).items():
            if name in ARCHITECTURE and name in options and options[name] != value:
                raise UserError(
                    f"model.options.{name}={options[name]!r} disagrees with {folder}/{HF_CONFIG} ({value!r})"
                )
            options.setdefault(name, value)
    options.setdefault("vocab_size", text.vocab_size)  # a model without a checkpoint: the tokenizer's
    if options["vocab_size"] < text.vocab_size:
        raise UserError(
            f"the tokenizer's vocabulary ({text.vocab_size} tokens) is larger than the model's "
            f"({options['vocab_size']})"
        )
    return options


def num_outputs(options: dict, dataset) -> int:
    """The model's ``num_classes``: the data's, or for MLM the vocabulary size of ``options``
    (:func:`model_options`)."""
    text = getattr(dataset, "text", None)
    return int(options["vocab_size"]) if text is not None and text.objective == "mlm" else dataset.num_classes
