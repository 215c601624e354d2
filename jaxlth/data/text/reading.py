"""Reading GLUE's sentences and labels with Hugging Face ``datasets``: local files first, then its cache.

Places, in order:

* a local folder: ``data.dir`` or ``$JAXLTH_DATA_DIR``, each searched at ``<task>/`` and ``glue/<task>/``,
  holding ``<split>-*.parquet`` as ``hf download nyu-mll/glue --repo-type dataset --local-dir DIR`` leaves
  them (``DIR/sst2/train-00000-of-00001.parquet``, ``DIR/mnli/validation_matched-00000-of-00001.parquet``),
  or ``<split>.parquet``, ``<split>.csv``, ``<split>.tsv`` or ``<split>.jsonl`` with the same columns;
* the Hugging Face Hub cache (``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or ``~/.cache/huggingface/hub``), where
  ``hf download nyu-mll/glue --repo-type dataset`` without ``--local-dir`` leaves the same files;
* ``datasets.load_dataset("nyu-mll/glue", task)``: Hugging Face's cache (or a download when online).

``datasets`` is imported only here, only when no tokenized cache exists.
"""

from __future__ import annotations

import glob
import os
import tempfile

import numpy as np

from jaxlth.data.text import glue
from jaxlth.data.text.wordpiece import TEXT_EXTRA
from jaxlth.errors import UserError

_BUILDERS = {".parquet": "parquet", ".csv": "csv", ".tsv": "csv", ".jsonl": "json", ".json": "json"}


def failure(error: Exception) -> str:
    """``"Type: first line"`` of an exception from a library, fit for a one-line message."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__


def import_datasets():
    """The ``datasets`` module, or a UserError saying how to install it."""
    try:
        import datasets
    except ImportError:
        raise UserError(f"reading text datasets needs the text extra: {TEXT_EXTRA}") from None
    datasets.disable_progress_bars()  # its "Generating split" bars would bury jaxlth's own lines
    return datasets


def bases(data_cfg) -> list[tuple[str, str]]:
    """``(label, folder)`` searched for local data: ``data.dir`` and ``$JAXLTH_DATA_DIR`` ("" when unset)."""
    chosen, env = data_cfg.get("dir", "") or "", os.environ.get("JAXLTH_DATA_DIR", "")
    return [("data.dir", os.path.expanduser(chosen)), ("$JAXLTH_DATA_DIR", os.path.expanduser(env))]


def hub_snapshots() -> list[str]:
    """The Hub cache's snapshots of ``nyu-mll/glue``, newest first (none: ``[]``)."""
    cache = os.environ.get("HF_HUB_CACHE", "")
    if not cache:
        home = os.environ.get("HF_HOME", "") or os.path.join(
            os.environ.get("XDG_CACHE_HOME", "") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface"
        )
        cache = os.path.join(home, "hub")
    repo = os.path.join(os.path.expanduser(cache), "datasets--" + glue.HUB_REPO.replace("/", "--"), "snapshots")
    return sorted(glob.glob(os.path.join(glob.escape(repo), "*")), key=os.path.getmtime, reverse=True)


def split_files(folder: str, split: str) -> list[str]:
    """The files of Hugging Face split ``split`` in ``folder`` (shards ``<split>-*.parquet`` or one file)."""
    shards = sorted(glob.glob(os.path.join(glob.escape(folder), f"{split}-*.parquet")))
    if shards:
        return shards
    return [os.path.join(folder, split + s) for s in _BUILDERS if os.path.isfile(os.path.join(folder, split + s))][:1]


def find_local(data_cfg, name: str) -> dict[str, list[str]] | None:
    """``{Hugging Face split: files}`` of task ``name`` in the first local folder holding it, or None.

    Raises:
      UserError: a folder holding some of the task's splits but not all.
    """
    task = glue.TASKS[name]
    folders = [os.path.join(base, *sub) for _, base in bases(data_cfg) if base for sub in ((name,), ("glue", name))]
    for folder in folders + [os.path.join(snapshot, name) for snapshot in hub_snapshots()]:
        files = {split: split_files(folder, split) for _, split in task.splits}
        missing = [split for split, found in files.items() if not found]
        if len(missing) < len(files) and missing:
            raise UserError(
                f"{folder} holds part of GLUE {name} but no {', '.join(missing)} split; "
                f"download it whole with `{glue.DOWNLOAD}`"
            )
        if not missing:
            return files
    return None


def _places(data_cfg, name: str) -> str:
    parts = []
    for label, base in bases(data_cfg):
        parts.append(f"{label} (not set)" if not base else f"{label}={base} ({name}/ and glue/{name}/)")
    return ", ".join(parts) + ", the Hugging Face Hub cache"


def _load_files(datasets, files: list[str], split: str, cache_dir: str):
    suffix = os.path.splitext(files[0])[1]
    options = {"delimiter": "\t", "quoting": 3} if suffix == ".tsv" else {}  # GLUE's TSVs quote nothing
    return datasets.load_dataset(
        _BUILDERS[suffix], data_files={split: files}, split=split, cache_dir=cache_dir, **options
    )


def _text(value) -> str:
    """A cell of a text column as a string (missing cells, read as None or NaN, are empty)."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value)


def _columns(table, name: str, where: str):
    """``(first, second or None, labels)`` of one split, its columns and labels checked."""
    task = glue.TASKS[name]
    wanted = (*task.columns, glue.LABEL)
    absent = [c for c in wanted if c not in table.column_names]
    if absent:
        raise UserError(
            f"{where} lacks the column(s) {', '.join(absent)} of GLUE {name} (it has {', '.join(table.column_names)})"
        )
    frame = table.select_columns(list(wanted)).to_pandas()
    texts = [[_text(v) for v in frame[c].tolist()] for c in task.columns]
    raw = frame[glue.LABEL].to_numpy()
    if task.objective == "regress":
        labels = raw.astype(np.float32)
        bad = ~np.isfinite(labels)
    else:
        labels = raw.astype(np.float64)
        bad = (labels != np.round(labels)) | (labels < 0) | (labels >= task.num_labels) | ~np.isfinite(labels)
        labels = np.where(bad, 0, labels).astype(np.int32)
    if bad.any():
        raise UserError(
            f"{where} holds {int(bad.sum())} label(s) of GLUE {name} that are not "
            + ("numbers" if task.objective == "regress" else f"classes 0..{task.num_labels - 1}")
            + " (GLUE's test splits hide their labels: use train and validation)"
        )
    return texts[0], (texts[1] if len(texts) > 1 else None), labels


def _read_split(datasets, name: str, files: list[str], split: str, tmp: str):
    """``(first, second, labels)`` of one split read from local ``files``."""
    try:
        table = _load_files(datasets, files, split, tmp)
    except Exception as e:  # noqa: BLE001 - any failure of a reader is a bad file
        raise UserError(f"could not read {files[0]} ({failure(e)})") from None
    return _columns(table, name, files[0])


def _scratch(folder: str) -> str | None:
    """``folder`` (made if need be) for ``datasets``' temporary Arrow copies; None (its default) if unwritable."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None


def read_glue(data_cfg, name: str, local: dict[str, list[str]] | None, scratch: str) -> tuple[dict, str]:
    """Every split of task ``name``: ``({our split: (first, second, labels)}, note)``.

    ``local`` is :func:`find_local`'s answer; None reads ``nyu-mll/glue`` through ``datasets``' cache.
    The Arrow copies ``datasets`` makes of local files go to a temporary folder in ``scratch``, removed
    once read (the tokenized arrays are what is kept).
    """
    datasets = import_datasets()
    task = glue.TASKS[name]
    if local is not None:
        with tempfile.TemporaryDirectory(prefix="datasets-", dir=_scratch(scratch), ignore_cleanup_errors=True) as tmp:
            splits = {ours: _read_split(datasets, name, local[split], split, tmp) for ours, split in task.splits}
        return splits, os.path.dirname(local["train"][0])
    try:
        whole = datasets.load_dataset(glue.HUB_REPO, name)
    except Exception as e:  # noqa: BLE001 - offline and not cached, or any failure of the Hub
        raise UserError(
            f"could not find GLUE {name}: looked for {name}/<split>-*.parquet in {_places(data_cfg, name)}, "
            f"then in the datasets cache ({failure(e)}); download it with `{glue.DOWNLOAD}` "
            "and set data.dir=DIR"
        ) from None
    where = f"{glue.HUB_REPO} ({name}) in the datasets cache"
    return {ours: _columns(whole[split], name, where) for ours, split in task.splits}, where
