"""A plain-text corpus for masked-language modelling, cut into full blocks of tokens.

Every non-empty line is tokenized (no special tokens) and the ids are joined into one stream, cut into
blocks of ``max_length - 2`` tokens, each block framed as ``[CLS] block [SEP]`` (token types 0); the last,
partial block is dropped. This is the layout of Hugging Face's old ``TextDataset``, the one the BERT
tickets code (Chen et al. 2020) pretrains with, so every example is full and none is padded.

The corpus is ``train.txt`` and ``validation.txt`` (or ``test.txt``) in ``data.dir`` (or
``$JAXLTH_DATA_DIR/text``), or, with ``data.corpus="name:config"``, the ``text`` column of
``datasets.load_dataset(name, config)``'s ``train`` and ``validation`` (or ``test``) splits, e.g.
``wikitext:wikitext-103-raw-v1``.
"""

from __future__ import annotations

import os

import numpy as np

from jaxlth.data.text import reading
from jaxlth.errors import UserError

TRAIN_FILE = "train.txt"
TEST_FILES = ("validation.txt", "test.txt")  # the first present is the evaluation split


def find_files(data_cfg) -> tuple[str, str] | None:
    """``(train file, evaluation file)`` of the first folder holding both, or None."""
    for label, base in reading.bases(data_cfg):
        folder = os.path.join(base, "text") if label == "$JAXLTH_DATA_DIR" else base
        if not base or not os.path.isfile(os.path.join(folder, TRAIN_FILE)):
            continue
        for name in TEST_FILES:
            if os.path.isfile(os.path.join(folder, name)):
                return os.path.join(folder, TRAIN_FILE), os.path.join(folder, name)
        raise UserError(f"{folder} holds {TRAIN_FILE} but neither {' nor '.join(TEST_FILES)} to evaluate on")
    return None


def where_looked(data_cfg) -> str:
    """The folders :func:`find_files` searched, for an error message."""
    parts = []
    for label, base in reading.bases(data_cfg):
        folder = os.path.join(base, "text") if label == "$JAXLTH_DATA_DIR" and base else base
        parts.append(f"{label} (not set)" if not base else f"{label}: {folder}")
    return ", ".join(parts)


def _file_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text") from None


def corpus_name(data_cfg) -> tuple[str, str | None]:
    """``data.corpus`` split into a ``datasets`` name and config (None when it names none)."""
    corpus = str(data_cfg.get("corpus", "") or "")
    name, _, config = corpus.partition(":")
    if not name or (":" in corpus and not config):
        raise UserError(f"data.corpus must be 'name' or 'name:config' of a datasets corpus, got {corpus!r}")
    return name, config or None


def read_lines(data_cfg, files: tuple[str, str] | None) -> tuple[dict[str, list[str]], str]:
    """``({"train": lines, "test": lines}, note)``: the non-empty lines of each split, stripped."""
    if files is not None:
        return {"train": _file_lines(files[0]), "test": _file_lines(files[1])}, os.path.dirname(files[0])
    name, config = corpus_name(data_cfg)
    corpus = data_cfg.get("corpus", "")
    datasets = reading.import_datasets()
    try:
        whole = datasets.load_dataset(name, config)
    except Exception as e:  # noqa: BLE001 - offline and not cached, or any failure of the Hub
        raise UserError(
            f"could not load the corpus data.corpus={corpus!r} with datasets ({reading.failure(e)}); "
            "run once where the Hugging Face Hub is reachable, or put train.txt and validation.txt in data.dir"
        ) from None
    test = next((s for s in ("validation", "test") if s in whole), None)
    if "train" not in whole or test is None:
        raise UserError(f"the corpus {corpus!r} has splits {', '.join(whole)}; it needs train and validation")
    out = {}
    for ours, split in (("train", "train"), ("test", test)):
        if "text" not in whole[split].column_names:
            raise UserError(f"the corpus {corpus!r} has no text column (it has {whole[split].column_names})")
        out[ours] = [t.strip() for t in whole[split]["text"] if isinstance(t, str) and t.strip()]
    return out, f"{corpus} (datasets)"


def blocks(ids: np.ndarray, cls_id: int, sep_id: int, max_length: int) -> np.ndarray:
    """int32 ``(n, 2, max_length)`` examples ``[CLS] block [SEP]`` from the id stream ``ids (L,)``;
    ``n = L // (max_length - 2)``, the remainder dropped; token types (row 1) all 0."""
    size = max_length - 2
    n = len(ids) // size
    body = np.asarray(ids[: n * size], np.int32).reshape(n, size)
    out = np.zeros((n, 2, max_length), np.int32)
    out[:, 0, 0], out[:, 0, 1:-1], out[:, 0, -1] = cls_id, body, sep_id
    return out
