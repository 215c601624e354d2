"""Text datasets for BERT: the GLUE tasks and a masked-language-modelling corpus, tokenized once and cached.

``data.name`` is a GLUE task (:mod:`~jaxlth.data.text.glue`: sst2, mrpc, qqp, stsb, cola, mnli, qnli, rte,
wnli) or ``text`` (a corpus for masked-language modelling: :mod:`~jaxlth.data.text.corpus`). Every example
is int32 ``(2, T)``, ``T = data.max_length`` (128, Chen et al. 2020): row 0 the WordPiece ids of
``data.vocab`` (:mod:`~jaxlth.data.text.wordpiece`), row 1 the token types. The tokenized arrays are cached
(:mod:`~jaxlth.data.text.token_cache`): a second load reads them and imports neither ``datasets`` nor
``tokenizers``. MLM masks are drawn on the device (:mod:`~jaxlth.data.text.masking`).
"""

from __future__ import annotations

import numpy as np

from jaxlth.data.dataset import Dataset, Text
from jaxlth.data.text import corpus, glue, reading, token_cache, wordpiece
from jaxlth.data.text.masking import eval_masks, mask_tokens
from jaxlth.errors import UserError

__all__ = ["NAMES", "check", "eval_masks", "load_text", "mask_tokens"]

MLM = "text"  # data.name of the masked-language-modelling corpus
NAMES = (*glue.TASKS, MLM)
TITLES = {
    **{name: f"GLUE {task.title}" for name, task in glue.TASKS.items()},
    MLM: "a masked-language-modelling corpus",
}
MIN_LENGTH = 8  # data.max_length: room for [CLS] a [SEP] b [SEP] and a few tokens
_FORMAT = 1  # bumped when the cached arrays' layout changes


def max_length(data_cfg) -> int:
    """``data.max_length`` checked: an int of at least ``MIN_LENGTH`` tokens."""
    value = data_cfg.get("max_length", 128)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < MIN_LENGTH:
        raise UserError(f"data.max_length must be a whole number of tokens >= {MIN_LENGTH}, got {value!r}")
    return int(value)


def mlm_probability(data_cfg) -> float:
    """``data.mlm_probability`` checked: a number in (0, 1)."""
    value = data_cfg.get("mlm_probability", 0.15)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise UserError(f"data.mlm_probability must be a number in (0, 1), got {value!r}")
    return float(value)


def check(data_cfg) -> None:
    """Raises UserError (one sentence) for data fields a text dataset cannot honour; reads no data."""
    name = data_cfg.get("name", "")
    if name not in NAMES:
        raise UserError(f"data.name={name!r} is not a text dataset; choose one of {', '.join(NAMES)}")
    no_classes = name == MLM or glue.TASKS[name].objective == "regress"
    for field, plain, applies in (
        ("source", "auto", True),
        ("classes", (), True),
        ("task", "classes", True),
        ("pad_to", 0, True),
        ("random_labels_fraction", 0.0, no_classes),
        ("corpus", "", name != MLM),
    ):
        value = data_cfg.get(field, plain) if field != "source" else data_cfg.get(field) or plain
        if applies and (tuple(value) if isinstance(value, list) else value) != plain:
            why = "its labels are not classes" if field == "random_labels_fraction" else "it is text"
            raise UserError(
                f"data.{field}={value!r} does not apply to data.name={name!r} ({why}); leave it at {plain!r}"
            )
    max_length(data_cfg)
    mlm_probability(data_cfg)
    if name == MLM and data_cfg.get("corpus", ""):
        corpus.corpus_name(data_cfg)


def _cached(cache: str, name: str, parts: dict, splits, build) -> tuple[dict, str]:
    """``(arrays, where)``: the cache file of ``parts`` when it holds every split's arrays, else ``build()``
    (which needs the libraries) written there; ``where`` names the file."""
    path = token_cache.path_for(cache, name, {**parts, "format": _FORMAT})
    arrays = token_cache.read(path)
    if arrays is not None and all(f"{s}_{kind}" in arrays for s in splits for kind in ("inputs", "labels")):
        return arrays, path
    arrays = build()
    return arrays, path if token_cache.write(path, arrays) else "(not cached: the cache folder is not writable)"


def _load_glue(data_cfg, vocab: wordpiece.Vocab, length: int, cache: str) -> tuple[dict, str]:
    name = data_cfg.get("name")
    local = reading.find_local(data_cfg, name)

    def build() -> dict:
        splits, note = reading.read_glue(data_cfg, name, local, cache)
        arrays = {"note": np.array(note)}
        for split, (first, second, labels) in splits.items():
            arrays[f"{split}_inputs"] = wordpiece.encode_pairs(vocab, first, second, length)
            arrays[f"{split}_labels"] = labels
        return arrays

    sources = {s: token_cache.stamps(f) for s, f in local.items()} if local else glue.HUB_REPO
    parts = {"task": name, "vocab": vocab.digest, "lowercase": vocab.lowercase, "length": length, "sources": sources}
    return _cached(cache, name, parts, [s for s, _ in glue.TASKS[name].splits], build)


def _load_corpus(data_cfg, vocab: wordpiece.Vocab, length: int, cache: str) -> tuple[dict, str]:
    chosen = data_cfg.get("corpus", "")
    files = None if chosen else corpus.find_files(data_cfg)
    if files is None and not chosen:
        raise UserError(
            f"found no corpus for data.name='text': looked for {corpus.TRAIN_FILE} and "
            f"{' or '.join(corpus.TEST_FILES)} in {corpus.where_looked(data_cfg)}; put them there or set "
            "data.corpus (e.g. 'wikitext:wikitext-103-raw-v1')"
        )

    def build() -> dict:
        lines, note = corpus.read_lines(data_cfg, files)
        arrays = {"note": np.array(note)}
        for split, text in lines.items():
            blocks = corpus.blocks(wordpiece.encode_lines(vocab, text), vocab.ids["cls"], vocab.ids["sep"], length)
            if not len(blocks):
                raise UserError(f"the {split} split of {note} holds fewer than {length - 2} tokens, not one block")
            arrays[f"{split}_inputs"], arrays[f"{split}_labels"] = blocks, np.zeros(len(blocks), np.int32)
        return arrays

    sources = token_cache.stamps(list(files)) if files else chosen
    parts = {"vocab": vocab.digest, "lowercase": vocab.lowercase, "length": length, "sources": sources}
    return _cached(cache, MLM, parts, ("train", "test"), build)


def load_text(data_cfg) -> Dataset:
    """The text dataset ``data_cfg`` names, tokenized (or read from the cache).

    Returns:
      A ``Dataset`` whose inputs are int32 ``(N, 2, T)`` and whose ``text`` says what they mean; labels
      int32 classes, float32 scores (stsb) or int32 zeros (``text``); ``extra_tests`` holds MNLI's
      ``test_mismatched``.

    Raises:
      UserError: bad fields, a missing or incomplete vocabulary, data that cannot be found or read, or
        ``datasets``/``tokenizers`` missing when the text must be tokenized.
    """
    check(data_cfg)
    name, length = data_cfg.get("name"), max_length(data_cfg)
    vocab = wordpiece.load_vocab(data_cfg)
    cache = token_cache.folder(data_cfg)
    load = _load_corpus if name == MLM else _load_glue
    arrays, cached = load(data_cfg, vocab, length, cache)
    if name == MLM:
        objective, metrics, num_classes, extra = "mlm", ("accuracy",), vocab.size, ()
    else:
        task = glue.TASKS[name]
        objective, metrics, num_classes, extra = task.objective, task.metrics, task.num_labels, task.extra_tests
    text = Text(
        objective=objective,
        metrics=metrics,
        vocab_size=vocab.size,
        pad_id=vocab.ids["pad"],
        cls_id=vocab.ids["cls"],
        sep_id=vocab.ids["sep"],
        mask_id=vocab.ids["mask"],
        max_length=length,
        mlm_probability=mlm_probability(data_cfg),
    )
    return Dataset(
        name=name,
        train_images=arrays["train_inputs"],
        train_labels=arrays["train_labels"],
        test_images=arrays["test_inputs"],
        test_labels=arrays["test_labels"],
        num_classes=num_classes,
        mean=(0.0,),
        std=(1.0,),
        pixel_scale=1.0,
        augmentation="none",
        source=f"{arrays['note']}, WordPiece {vocab.path} ({'uncased' if vocab.lowercase else 'cased'}), "
        f"{length} tokens, cache {cached}",
        text=text,
        extra_tests={split: (arrays[f"{split}_inputs"], arrays[f"{split}_labels"]) for split in extra},
    )
