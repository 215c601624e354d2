"""Tokenized text kept as ``.npz`` files, so the tokenizer (and ``datasets``) run once per input.

The folder is ``data.text_cache``, else ``$JAXLTH_CACHE_DIR/text``, else ``~/.cache/jaxlth/text``. A file
is named by its dataset and a hash of everything its arrays depend on (the task, the vocabulary's bytes,
the casing, the length, and the source files' names, sizes and modification times), so changing any of
them makes a new file and never reads a stale one. Files are written whole (temporary file, then
``os.replace``) and read with ``allow_pickle=False``: a cache holds numeric and string arrays only.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile

import numpy as np


def folder(data_cfg) -> str:
    """Where the tokenized arrays go (see the module docstring)."""
    chosen = data_cfg.get("text_cache", "") or ""
    if chosen:
        return os.path.expanduser(chosen)
    env = os.environ.get("JAXLTH_CACHE_DIR", "")
    base = os.path.expanduser(env) if env else os.path.join(os.path.expanduser("~"), ".cache", "jaxlth")
    return os.path.join(base, "text")


def stamps(paths: list[str]) -> list[list]:
    """``[name, size, mtime_ns]`` of each file: what the key knows of a source file."""
    out = []
    for path in sorted(paths):
        stat = os.stat(path)
        out.append([os.path.basename(path), int(stat.st_size), int(stat.st_mtime_ns)])
    return out


def path_for(directory: str, name: str, parts: dict) -> str:
    """The cache file of dataset ``name`` whose arrays are a function of ``parts`` (JSON-able)."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode("utf-8")).hexdigest()[:24]
    return os.path.join(directory, f"{name}-{digest}.npz")


def read(path: str) -> dict[str, np.ndarray] | None:
    """The arrays of the cache file ``path``; ``None`` when it is missing or unreadable (then rebuilt)."""
    if not os.path.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            return {key: f[key] for key in f.files}
    except (OSError, ValueError, KeyError, EOFError):
        return None


def write(path: str, arrays: dict[str, np.ndarray]) -> bool:
    """Writes ``arrays`` to ``path`` atomically; False (nothing left behind) when the folder is not writable."""
    tmp = None
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
        return True
    except OSError:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
        return False
