"""BERT's WordPiece tokenizer, from a checkpoint's ``vocab.txt``, through Hugging Face ``tokenizers``.

``data.vocab`` names ``vocab.txt`` or the folder holding it. Line ``i`` of the file is token id ``i``.
Lowercasing (``data.lowercase``): ``auto`` takes ``do_lower_case`` from a ``tokenizer_config.json`` beside
the vocabulary, else lowercases when the folder's name (or, in the Hugging Face cache, its
``models--<name>`` folder) holds ``uncased`` (``bert-base-uncased``, ``uncased_L-12_H-768_A-12``), else
keeps case. Accents are stripped exactly when lowercasing, as BERT's own tokenizer does. ``tokenizers`` is
imported only when text is tokenized (a cached dataset needs none).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import numpy as np

from jaxlth.errors import UserError

VOCAB_FILE = "vocab.txt"
SPECIALS = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
TEXT_EXTRA = "pip install 'jaxlth[text]'"
_CHUNK = 8192  # examples (or lines) encoded per call


@dataclasses.dataclass(frozen=True)
class Vocab:
    """A WordPiece vocabulary: its file, size, special ids and casing; ``digest`` hashes the file's bytes."""

    path: str
    size: int
    ids: dict  # the special tokens' ids: {"pad": 0, "unk": 100, "cls": 101, "sep": 102, "mask": 103} for BERT
    lowercase: bool
    digest: str

    def tokens(self) -> dict[str, int]:
        """``{token: id}`` read from the file again (kept out of the object so it stays small)."""
        with open(self.path, "rb") as f:
            return {token: i for i, token in enumerate(_lines(f.read(), self.path))}


def _lines(raw: bytes, path: str) -> list[str]:
    """The file's tokens, one a line (only ``\\n`` separates them, as in BERT's ``load_vocab``)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(
            f"the vocabulary {path} is not UTF-8 text; data.vocab must name a WordPiece vocab.txt"
        ) from None
    lines = text.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def vocab_file(vocab: str) -> str:
    """The ``vocab.txt`` that ``data.vocab`` names (the file, or a folder holding it)."""
    if not vocab:
        raise UserError("data.vocab is empty; set it to a BERT checkpoint's vocab.txt or the folder holding it")
    path = os.path.expanduser(str(vocab))
    if os.path.isdir(path):
        path = os.path.join(path, VOCAB_FILE)
    if not os.path.isfile(path):
        raise UserError(f"data.vocab={vocab!r}: there is no vocabulary file {path}")
    return path


def _lowercase(setting, path: str) -> bool:
    """``data.lowercase`` resolved for the vocabulary ``path`` (see the module docstring)."""
    if isinstance(setting, bool):
        return setting
    text = str(setting).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    if text != "auto":
        raise UserError(f"data.lowercase must be 'auto', True or False, got {setting!r}")
    folder = os.path.dirname(os.path.abspath(path))
    config = os.path.join(folder, "tokenizer_config.json")
    if os.path.isfile(config):
        try:
            with open(config, encoding="utf-8") as f:
                found = json.load(f).get("do_lower_case")
        except (OSError, ValueError, AttributeError):
            raise UserError(f"{config} is not a JSON object; fix it or set data.lowercase to True or False") from None
        if isinstance(found, bool):
            return found
    names = [os.path.basename(folder)] + [part for part in folder.split(os.sep) if part.startswith("models--")]
    return any("uncased" in name.lower() for name in names)


def load_vocab(data_cfg) -> Vocab:
    """The vocabulary ``data.vocab`` names, its special tokens checked and its casing resolved."""
    path = vocab_file(data_cfg.get("vocab", ""))
    with open(path, "rb") as f:
        raw = f.read()
    lines = _lines(raw, path)
    tokens = {token: i for i, token in enumerate(lines)}
    missing = [token for token in SPECIALS.values() if token not in tokens]
    if missing:
        raise UserError(f"the vocabulary {path} lacks the special token(s) {', '.join(missing)} that BERT inputs need")
    return Vocab(
        path=path,
        size=len(lines),
        ids={name: tokens[token] for name, token in SPECIALS.items()},
        lowercase=_lowercase(data_cfg.get("lowercase", "auto"), path),
        digest=hashlib.sha256(raw).hexdigest(),
    )


def _tokenizer(vocab: Vocab):
    """BERT's tokenizer: its normalizer (cleaning, CJK characters split, casing), pre-tokenizer, WordPiece
    model and ``[CLS] a [SEP] b [SEP]`` template; the special tokens are matched whole in raw text."""
    try:
        from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    except ImportError:
        raise UserError(f"tokenizing text needs the text extra: {TEXT_EXTRA}") from None
    tokenizer = Tokenizer(models.WordPiece(vocab.tokens(), unk_token=SPECIALS["unk"]))
    tokenizer.add_special_tokens(list(SPECIALS.values()))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=vocab.lowercase)  # accents stripped iff lowercased
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.BertProcessing(
        (SPECIALS["sep"], vocab.ids["sep"]), (SPECIALS["cls"], vocab.ids["cls"])
    )
    return tokenizer


def _encode(tokenizer, batch: list, special: bool = True) -> list:
    """``tokenizer``'s encodings of ``batch``, without character offsets where the library can skip them."""
    fast = getattr(tokenizer, "encode_batch_fast", None)  # newer tokenizers: no offsets computed
    return (fast or tokenizer.encode_batch)(batch, add_special_tokens=special)


def encode_pairs(vocab: Vocab, first: list[str], second: list[str] | None, max_length: int) -> np.ndarray:
    """``[CLS] a [SEP]`` (or ``[CLS] a [SEP] b [SEP]``) per example, truncated longest-first and padded.

    Returns:
      int32 ``(N, 2, max_length)``: row 0 the ids (``[PAD]`` after the text), row 1 the token types
      (1 on ``b`` and its ``[SEP]``, 0 elsewhere, padding included).
    """
    tokenizer = _tokenizer(vocab)
    tokenizer.enable_truncation(max_length, strategy="longest_first")
    tokenizer.enable_padding(length=max_length, pad_id=vocab.ids["pad"], pad_token=SPECIALS["pad"])
    out = np.zeros((len(first), 2, max_length), np.int32)
    for start in range(0, len(first), _CHUNK):
        a = first[start : start + _CHUNK]
        batch = a if second is None else list(zip(a, second[start : start + _CHUNK]))
        encodings = _encode(tokenizer, batch)
        out[start : start + len(a), 0] = [e.ids for e in encodings]
        out[start : start + len(a), 1] = [e.type_ids for e in encodings]
    return out


def encode_lines(vocab: Vocab, lines: list[str]) -> np.ndarray:
    """The ids of ``lines`` (no special tokens, no truncation) one after another: int32 ``(L,)``."""
    tokenizer = _tokenizer(vocab)
    parts = [np.zeros(0, np.int32)]
    for start in range(0, len(lines), _CHUNK):
        for encoding in _encode(tokenizer, lines[start : start + _CHUNK], special=False):
            parts.append(np.asarray(encoding.ids, np.int32))
    return np.concatenate(parts)
