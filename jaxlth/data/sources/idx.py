"""IDX files: the format MNIST and Fashion-MNIST are distributed in (plain or gzip-compressed).

An IDX file starts with a 4-byte magic number ``0x00 0x00 <type> <ndim>``, then ``ndim``
big-endian uint32 sizes, then the values in C order. Only unsigned bytes (type ``0x08``) are
used by these datasets, and only they are read or written here.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import tempfile
import zlib

import numpy as np

from jaxlth.errors import UserError

UBYTE = 0x08
# A gzip file at least this large is decoded once and kept as .npy (``decoded_dir``): gunzipping
# Fashion-MNIST's training images takes ~0.4 s of every run's start on a CPU, loading the .npy ~0.03 s.
DECODED_MIN_BYTES = 1 << 20

# File stems for each split and field; the dotted variant is how some mirrors name them.
_STEMS = {
    ("train", "images"): ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    ("train", "labels"): ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    ("test", "images"): ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    ("test", "labels"): ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}
FILE_NAMES = tuple(stems[0] for stems in _STEMS.values())


def _open(path: str):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def decoded_dir() -> str:
    """Where decoded copies of large gzip IDX files are kept: ``$JAXLTH_CACHE_DIR/idx`` or
    ``~/.cache/jaxlth/idx``."""
    base = os.environ.get("JAXLTH_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "jaxlth")
    return os.path.join(os.path.expanduser(base), "idx")


def _decoded_path(path: str) -> str | None:
    """The decoded copy's file for ``path`` (keyed by its real path, size and modification time, so a
    replaced file is decoded again), or None for a file not worth keeping."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    if not path.endswith(".gz") or stat.st_size < DECODED_MIN_BYTES:
        return None
    key = hashlib.sha256(f"{os.path.realpath(path)}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:24]
    return os.path.join(decoded_dir(), f"{os.path.basename(path)[: -len('.gz')]}-{key}.npy")


def read_idx(path: str, ndim: int | None = None) -> np.ndarray:
    """Reads one IDX file of unsigned bytes into a uint8 array of the stored shape.

    A gzip file of at least :data:`DECODED_MIN_BYTES` is decoded once: the checked array is kept in
    :func:`decoded_dir` and read from there while the file keeps its path, size and modification time.

    Args:
      path: the file; a name ending in ``.gz`` is decompressed on the fly.
      ndim: the number of dimensions the file must have (3 for images, 1 for labels), or None.

    Raises:
      UserError: naming the file, when it is not a valid IDX file of unsigned bytes
        (wrong magic number, truncated, trailing bytes or a corrupt gzip stream).
    """
    decoded = _decoded_path(path)
    if decoded and os.path.exists(decoded):
        try:
            array = np.load(decoded)
            if array.dtype == np.uint8 and (ndim is None or array.ndim == ndim):
                return array
        except (OSError, ValueError):  # a damaged copy: decode the file again
            pass
    array = _read_idx_file(path, ndim)
    if decoded:
        _keep(decoded, array)
    return array


def _keep(target: str, array: np.ndarray) -> None:
    """Writes ``array`` to ``target`` atomically (a temporary file renamed); a folder that cannot be
    written only means no copy is kept."""
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=os.path.dirname(target), suffix=".tmp", delete=False) as f:
            np.save(f, array)
        os.replace(f.name, target)
    except OSError:
        pass


def _read_idx_file(path: str, ndim: int | None) -> np.ndarray:
    """:func:`read_idx` without the decoded copy."""
    try:
        with _open(path) as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(
            f"Could not read the IDX file {path}: {e}; the file is corrupt or truncated, delete it and get it again."
        ) from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != UBYTE or raw[3] == 0:
        magic = raw[:4].hex() if len(raw) >= 4 else "missing"
        raise UserError(
            f"{path} is not an IDX file of unsigned bytes (magic number {magic}, "
            f"expected 0000080N); the file is corrupt or not the dataset file."
        )
    file_ndim = raw[3]
    if ndim is not None and file_ndim != ndim:
        raise UserError(
            f"{path} holds a {file_ndim}-D array but a {ndim}-D one was expected; "
            "the file is not the one its name says."
        )
    header = 4 + 4 * file_ndim
    if len(raw) < header:
        raise UserError(f"{path} is truncated inside its header; get the file again.")
    shape = struct.unpack(f">{file_ndim}I", raw[4:header])
    size = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header != size:
        raise UserError(
            f"{path} has {len(raw) - header} data bytes but its header promises "
            f"{size} (shape {shape}); the file is truncated or corrupt."
        )
    # A bytearray makes the returned array writable, like every other source's arrays.
    return np.frombuffer(bytearray(raw), dtype=np.uint8, offset=header).reshape(shape)


def write_idx(path: str, array: np.ndarray) -> None:
    """Writes a uint8 array as an IDX file (gzip-compressed when ``path`` ends in ``.gz``)."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"write_idx writes uint8 arrays only, got {array.dtype}")
    header = bytes([0, 0, UBYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array).tobytes())


def find_idx_file(directory: str, split: str, field: str) -> str | None:
    """The path of the ``split`` (train/test) ``field`` (images/labels) file, or None."""
    for stem in _STEMS[(split, field)]:
        for name in (stem, stem + ".gz"):
            path = os.path.join(directory, name)
            if os.path.isfile(path):
                return path
    return None


def has_idx_files(directory: str) -> bool:
    """True when all four standard files (plain or .gz) are in ``directory``."""
    return all(find_idx_file(directory, split, field) is not None for split, field in _STEMS)


def load_idx_dir(directory: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Reads the four files of an MNIST-style folder.

    Returns:
      ``(train_images, train_labels, test_images, test_labels)``: images uint8 ``(N, H, W, 1)``,
      labels int32 ``(N,)``.
    """
    arrays = []
    for split in ("train", "test"):
        image_path = find_idx_file(directory, split, "images")
        label_path = find_idx_file(directory, split, "labels")
        if image_path is None or label_path is None:
            raise UserError(f"{directory} lacks the {split} IDX files ({', '.join(FILE_NAMES)}, plain or .gz).")
        images = read_idx(image_path, ndim=3)
        labels = read_idx(label_path, ndim=1)
        if images.shape[0] != labels.shape[0]:
            raise UserError(
                f"{image_path} holds {images.shape[0]} images but {label_path} "
                f"holds {labels.shape[0]} labels; one of them is from another "
                "dataset or truncated."
            )
        arrays += [images[..., None], labels.astype(np.int32)]
    return tuple(arrays)
