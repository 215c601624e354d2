"""Every file operation on a workdir, for local folders and cloud paths (``gs://...``) alike.

Workdirs are strings; this module opens them through ``etils.epath`` (local files, Google Cloud
Storage, and any backend epath knows), so ``config.json``, ``results.csv``, markers and figures
go wherever the workdir is. Orbax checkpoints take the same strings (``jaxlth.checkpoint``).
Local files keep the guarantees of a POSIX file system (appends with ``fsync``, atomic
``os.replace``); object stores have no append, so there a results file is rewritten whole
(still atomic per object).

In a run of several processes (``jaxlth.processes``) every process reads, and only the primary
one writes: the writing functions here do nothing in the others (Orbax coordinates its own
writes across processes).
"""

from __future__ import annotations

import glob as glob_lib
import io
import os
import shutil

from etils import epath

from jaxlth import processes
from jaxlth.errors import UserError


def _remote(path: str) -> epath.Path:
    """The epath object of a cloud URL (the tests map it onto a local folder)."""
    try:
        return epath.Path(path)
    except KeyError:
        scheme = str(path).split("://", 1)[0]
        raise UserError(
            f"{path}: no file system for {scheme}:// paths (local folders, gs:// and the other "
            "schemes of etils.epath can be used)"
        ) from None


def check_reachable(path: str) -> None:
    """Raises one :class:`UserError` sentence when ``path``'s file system cannot be reached (an
    unknown scheme, a missing client library such as gcsfs, no credentials, no network)."""
    try:
        exists(path)
    except UserError:
        raise
    except Exception as e:  # each cloud client raises its own types
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{path} cannot be reached ({type(e).__name__}: {reason[:200]})") from None


def is_local(path: str) -> bool:
    """Whether ``path`` is on the local file system (not an object store URL)."""
    return "://" not in str(path)


def absolute(path: str) -> str:
    """``os.path.abspath`` for local paths; cloud URLs unchanged."""
    return os.path.abspath(path) if is_local(path) else str(path)


def exists(path: str) -> bool:
    return os.path.exists(path) if is_local(path) else _remote(path).exists()


def isdir(path: str) -> bool:
    return os.path.isdir(path) if is_local(path) else _remote(path).is_dir()


def isfile(path: str) -> bool:
    return os.path.isfile(path) if is_local(path) else (_remote(path).exists() and not _remote(path).is_dir())


def listdir(path: str) -> list[str]:
    """The names in folder ``path``."""
    return os.listdir(path) if is_local(path) else [p.name for p in _remote(path).iterdir()]


def makedirs(path: str) -> None:
    if is_local(path):
        os.makedirs(path, exist_ok=True)
    else:
        _remote(path).mkdir(parents=True, exist_ok=True)


def size(path: str) -> int:
    return os.path.getsize(path) if is_local(path) else _remote(path).stat().length


def read_text(path: str, encoding: str = "utf-8") -> str:
    """The whole file as text (``newline=""``: line ends as written)."""
    if is_local(path):
        with open(path, encoding=encoding, newline="") as f:
            return f.read()
    return _remote(path).read_bytes().decode(encoding)


def first_line(path: str) -> str:
    """The first line of a text file, with its newline (``""`` when empty)."""
    if is_local(path):
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            return f.readline()
    text = _remote(path).read_bytes().decode("utf-8", errors="replace")
    return text[: text.find("\n") + 1] if "\n" in text else text


def write_text(path: str, text: str) -> None:
    """Writes ``text`` to ``path`` atomically (:func:`write_bytes`)."""
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: str, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically: a temporary file renamed over it (locally with
    ``fsync``); an object store writes an object whole."""
    if not processes.is_primary():
        return
    if not is_local(path):
        _remote(path).write_bytes(data)
        return
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_bytes(path: str) -> bytes:
    if is_local(path):
        with open(path, "rb") as f:
            return f.read()
    return _remote(path).read_bytes()


def remove_tree(path: str) -> None:
    """Deletes the folder ``path`` and everything in it (nothing when it does not exist)."""
    if not processes.is_primary() or not exists(path):
        return
    if is_local(path):
        shutil.rmtree(path)
    else:
        _remote(path).rmtree()


def append_text(path: str, text: str) -> None:
    """Appends ``text`` with one write (locally ``fsync``-ed); an object store rewrites the object."""
    if not processes.is_primary():
        return
    if not is_local(path):
        old = read_text(path) if exists(path) else ""
        _remote(path).write_bytes((old + text).encode("utf-8"))
        return
    with open(path, "a", newline="", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def touch(path: str) -> None:
    """An empty file at ``path`` (its folder made first)."""
    makedirs(os.path.dirname(path))
    write_text(path, "")


def replace(source: str, target: str) -> None:
    """Renames ``source`` to ``target`` (a folder too; an object store copies, then deletes)."""
    if not processes.is_primary():
        return
    if is_local(source) and is_local(target):
        os.replace(source, target)
    else:
        _remote(source).rename(_remote(target))


def glob(pattern: str) -> list[str]:
    """The paths matching ``pattern`` (``*`` within a name), sorted."""
    if is_local(pattern):
        return sorted(glob_lib.glob(pattern))
    head, tail = pattern.split("://", 1)
    root, _, rest = tail.partition("/")
    base = _remote(f"{head}://{root}")
    return sorted(f"{head}://{root}/{p.relative_to(base)}" for p in base.glob(rest))


def save_figure(figure, path: str, **savefig_kwargs) -> None:
    """``figure.savefig`` to any path (through a buffer for object stores)."""
    if not processes.is_primary():
        return
    if is_local(path):
        figure.savefig(path, **savefig_kwargs)
        return
    buffer = io.BytesIO()
    figure.savefig(buffer, format=os.path.splitext(path)[1].lstrip(".") or "png", **savefig_kwargs)
    _remote(path).write_bytes(buffer.getvalue())


__all__ = [
    "is_local",
    "absolute",
    "check_reachable",
    "exists",
    "isdir",
    "isfile",
    "listdir",
    "makedirs",
    "size",
    "read_text",
    "first_line",
    "write_text",
    "write_bytes",
    "read_bytes",
    "remove_tree",
    "append_text",
    "touch",
    "replace",
    "glob",
    "save_figure",
]
