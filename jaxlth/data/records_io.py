"""Image datasets as ArrayRecord files: the on-disk format of streamed datasets (ImageNet).

A dataset folder holds ``dataset.json`` (``name``, ``num_classes``, ``channels``, optional
``mean``/``std`` per channel of pixels scaled to [0, 1], and ``augmentation``) and the splits as
``train.array_record*`` and ``test.array_record*`` files (several shards each, read as one in
sorted order). One record is one example: the label as 4 bytes (unsigned, little-endian), then
the image encoded as PNG or JPEG (any size). ``write_dataset`` makes such a folder (the tests,
and a conversion of your own data); :func:`read_example` decodes one record on the host.
"""

from __future__ import annotations

import glob
import io
import json
import os
import struct
from typing import Iterable, Sequence

import numpy as np

from jaxlth.errors import UserError

SPLITS = ("train", "test")
INFO_FILE = "dataset.json"


def encode(image: np.ndarray | bytes, label: int, image_format: str = "PNG") -> bytes:
    """One record: ``label`` and ``image`` (``(H, W, C)`` uint8, or bytes already encoded)."""
    if not isinstance(image, (bytes, bytearray)):
        from PIL import Image

        buffer = io.BytesIO()
        pixels = np.asarray(image, np.uint8)
        Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(buffer, format=image_format)
        image = buffer.getvalue()
    return struct.pack("<I", int(label)) + bytes(image)


def read_example(record: bytes, channels: int) -> tuple[np.ndarray, int]:
    """``((H, W, channels) uint8 image, label)`` of one record."""
    from PIL import Image

    (label,) = struct.unpack_from("<I", record)
    with Image.open(io.BytesIO(record[4:])) as image:
        pixels = np.asarray(image.convert("L" if channels == 1 else "RGB"), np.uint8)
    return (pixels[..., None] if channels == 1 else pixels), int(label)


def write_split(path: str, records: Iterable[bytes]) -> int:
    """Writes ``records`` to one ArrayRecord file (one record per group: fast random access)."""
    from array_record.python.array_record_module import ArrayRecordWriter

    writer = ArrayRecordWriter(path, "group_size:1")
    count = 0
    try:
        for record in records:
            writer.write(record)
            count += 1
    finally:
        writer.close()
    return count


def write_dataset(
    folder: str,
    name: str,
    splits: dict[str, tuple[Sequence, Sequence]],
    num_classes: int,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    augmentation: str = "none",
    shards: int = 1,
    image_format: str = "PNG",
) -> None:
    """A dataset folder from ``splits = {"train": (images, labels), "test": (images, labels)}``;
    ``images``: ``(H, W, C)`` uint8 arrays (sizes may differ) or encoded bytes."""
    os.makedirs(folder, exist_ok=True)
    channels = None
    for split, (images, labels) in splits.items():
        if split not in SPLITS:
            raise ValueError(f"split {split!r} is not one of {SPLITS}")
        n = len(labels)
        bounds = np.linspace(0, n, shards + 1).astype(int)
        for s in range(shards):
            part = range(bounds[s], bounds[s + 1])
            write_split(
                os.path.join(folder, f"{split}.array_record-{s:05d}-of-{shards:05d}"),
                (encode(images[i], labels[i], image_format) for i in part),
            )
        if channels is None and n and not isinstance(images[0], (bytes, bytearray)):
            channels = int(np.asarray(images[0]).shape[-1])
    info = {"name": name, "num_classes": int(num_classes), "channels": channels or 3, "augmentation": augmentation}
    if mean is not None:
        info.update(mean=[float(m) for m in mean], std=[float(s) for s in std])
    with open(os.path.join(folder, INFO_FILE), "w") as f:
        json.dump(info, f, indent=2)


def split_files(folder: str, split: str) -> list[str]:
    """The ArrayRecord files of ``split`` in ``folder``, sorted (raises UserError when none)."""
    files = sorted(glob.glob(os.path.join(folder, f"{split}.array_record*")))
    if not files:
        raise UserError(
            f"no {split}.array_record* files in {folder}; a streamed dataset folder holds {INFO_FILE}, "
            "train.array_record* and test.array_record* (jaxlth.data.records_io.write_dataset makes one)"
        )
    return files


def read_info(folder: str) -> dict:
    """The folder's ``dataset.json`` (raises UserError when missing or unreadable)."""
    path = os.path.join(folder, INFO_FILE)
    try:
        with open(path) as f:
            info = json.load(f)
    except FileNotFoundError:
        raise UserError(
            f"{folder} holds no {INFO_FILE}; a streamed dataset folder holds {INFO_FILE}, "
            "train.array_record* and test.array_record*"
        ) from None
    except (OSError, ValueError) as e:
        raise UserError(f"{path} cannot be read ({e})") from None
    for key in ("name", "num_classes"):
        if key not in info:
            raise UserError(f"{path} has no {key!r}")
    return info
