"""Datasets too large for the device (ImageNet), streamed from ArrayRecord files through Grain.

The training batch of a replicate at global step ``s`` is still a pure function of its data key
and ``s``: epoch ``e = s // steps_per_epoch`` visits the records in the order
``batching.epoch_permutation(key, e, N)`` (the device-resident path's order), step ``s`` takes
its slice ``[(s % steps_per_epoch) * B, ... + B)``, and example ``j`` of the batch is augmented
with a numpy generator seeded by ``(key, s, j)``. Grain reads, decodes and augments the examples
of the coming steps on host threads (a ``MapDataset`` over the examples of all steps, batched,
read ahead by a bounded buffer), so the iterator's state is its position ``s * m`` (``m``
examples per step); checkpoints record it. Each process builds the batches of its own
replicates only. Evaluation decodes the test split in batches, resized and centre-cropped.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from typing import Iterator, Sequence

import jax
import numpy as np

from jaxlth.data import batching, records_io
from jaxlth.errors import UserError

# Per-channel mean and std of ImageNet training pixels in [0, 1] (the values torchvision's
# ImageNet examples normalise with), used when a dataset.json gives none.
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
# OpenLTH's ImageNet training crop covers 10%-100% of the image (RandomResizedCrop(scale=(0.1, 1)));
# aspect ratios 3/4 .. 4/3; evaluation resizes the short side to 256/224 of the crop, then centre-crops.
CROP_SCALE, CROP_RATIO, EVAL_RESIZE = (0.1, 1.0), (3 / 4, 4 / 3), 256 / 224
AUGMENTATIONS = ("none", "imagenet")


@dataclasses.dataclass(frozen=True)
class StreamedDataset:
    """A dataset read from ``folder`` while training (the fields :class:`~jaxlth.data.Dataset` has)."""

    name: str
    folder: str
    num_train: int
    num_test: int
    num_classes: int
    image_shape: tuple[int, int, int]  # (size, size, channels): what the network sees
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augmentation: str
    pixel_scale: float = 255.0
    streamed = True  # not a field: tells a streamed dataset from one held in memory

    @property
    def source(self) -> str:
        return f"streamed from {self.folder}"


def open_dataset(folder: str, name: str, image_size: int) -> StreamedDataset:
    """The streamed dataset in ``folder`` (its ``dataset.json`` must name ``name``); images become
    ``image_size`` squares."""
    info = records_io.read_info(folder)
    if info["name"] != name:
        raise UserError(f"{folder} holds {info['name']!r}, not data.name={name!r}")
    augmentation = info.get("augmentation", "none")
    if augmentation not in AUGMENTATIONS:
        raise UserError(f"{folder}/{records_io.INFO_FILE}: augmentation {augmentation!r} is not one of {AUGMENTATIONS}")
    channels = int(info.get("channels", 3))
    mean, std = (
        (info["mean"], info["std"]) if "mean" in info else (IMAGENET_STATS if channels == 3 else ((0.5,), (0.5,)))
    )
    sizes = [_count(records_io.split_files(folder, split)) for split in records_io.SPLITS]
    return StreamedDataset(
        name=name,
        folder=folder,
        num_train=sizes[0],
        num_test=sizes[1],
        num_classes=int(info["num_classes"]),
        image_shape=(image_size, image_size, channels),
        mean=tuple(mean),
        std=tuple(std),
        augmentation=augmentation,
    )


def _count(files: Sequence[str]) -> int:
    import grain

    return len(grain.sources.ArrayRecordDataSource(list(files)))


# ----- host image transforms (numpy in, numpy out) -------------------------------------------------
def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    from PIL import Image

    if image.shape[:2] == (height, width):
        return image
    squeeze = image.shape[-1] == 1
    resized = Image.fromarray(image[..., 0] if squeeze else image).resize((width, height), Image.BILINEAR)
    out = np.asarray(resized, np.uint8)
    return out[..., None] if squeeze else out


def eval_view(image: np.ndarray, size: int, augmentation: str) -> np.ndarray:
    """The evaluation image: the short side resized (to ``size * 256/224`` for ImageNet), centre crop."""
    short = round(size * EVAL_RESIZE) if augmentation == "imagenet" else size
    h, w = image.shape[:2]
    scale = short / min(h, w)
    image = _resize(image, max(short, round(h * scale)), max(short, round(w * scale)))
    top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
    return image[top : top + size, left : left + size]


def train_view(image: np.ndarray, size: int, augmentation: str, generator: np.random.Generator) -> np.ndarray:
    """The training image: ImageNet's random-resized crop and horizontal flip, or :func:`eval_view`."""
    if augmentation != "imagenet":
        return eval_view(image, size, augmentation)
    h, w = image.shape[:2]
    for _ in range(10):
        area = h * w * generator.uniform(*CROP_SCALE)
        aspect = math.exp(generator.uniform(math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])))
        cw, ch = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            top, left = int(generator.integers(0, h - ch + 1)), int(generator.integers(0, w - cw + 1))
            break
    else:  # no sample fitted: the largest centred crop of an allowed aspect ratio
        aspect = min(max(w / h, CROP_RATIO[0]), CROP_RATIO[1])
        cw, ch = (w, round(w / aspect)) if w / h < aspect else (round(h * aspect), h)
        cw, ch = min(cw, w), min(ch, h)
        top, left = (h - ch) // 2, (w - cw) // 2
    crop = _resize(image[top : top + ch, left : left + cw], size, size)
    return crop[:, ::-1] if generator.random() < 0.5 else crop


class Stream:
    """The host side of a streamed dataset: training batches by step, evaluation batches."""

    def __init__(
        self,
        dataset: StreamedDataset,
        batch_size: int,
        steps_per_epoch: int,
        eval_batch_size: int,
        threads: int = 8,
        read_ahead_steps: int = 2,
    ):
        import grain

        self.dataset, self.batch_size, self.steps_per_epoch = dataset, batch_size, steps_per_epoch
        self.eval_batch_size, self.threads, self.read_ahead_steps = eval_batch_size, threads, read_ahead_steps
        self.sources = {
            split: grain.sources.ArrayRecordDataSource(records_io.split_files(dataset.folder, split))
            for split in records_io.SPLITS
        }
        self._iterator = None  # (keys, next_step, iterator) of the training stream being read

    # ----- training ------------------------------------------------------------------------------
    @functools.lru_cache(maxsize=64)
    def order(self, key: tuple[int, int], epoch: int) -> np.ndarray:
        """``(N,)``: the order in which ``epoch`` visits the training records (``key``: a data key)."""
        cpu = jax.local_devices(backend="cpu")[0]
        with jax.default_device(cpu):
            return np.asarray(batching.epoch_permutation(np.asarray(key, np.uint32), epoch, self.dataset.num_train))

    def example(self, key: tuple[int, int], step: int, j: int) -> tuple[np.ndarray, np.int32]:
        """Example ``j`` of the training batch of ``key`` at global ``step``: ``(image, label)``."""
        position = (step % self.steps_per_epoch) * self.batch_size + j
        index = int(self.order(key, step // self.steps_per_epoch)[position])
        image, label = records_io.read_example(self.sources["train"][index], self.dataset.image_shape[-1])
        generator = np.random.default_rng([key[0], key[1], step, j])
        return train_view(image, self.dataset.image_shape[0], self.dataset.augmentation, generator), np.int32(label)

    def batch(self, key: tuple[int, int], step: int) -> tuple[np.ndarray, np.ndarray]:
        """``((B, H, W, C) uint8, (B,) int32)``: the training batch of ``key`` at ``step`` (read directly)."""
        images, labels = zip(*(self.example(key, step, j) for j in range(self.batch_size)))
        return np.stack(images), np.asarray(labels, np.int32)

    def dataset_of(self, keys: Sequence[tuple[int, int]], positions: Sequence[int]):
        """The Grain dataset of the training batches of ``keys`` (one per local replicate), of the
        examples at ``positions`` of each batch: element ``s`` is ``((R_local, P, H, W, C) uint8,
        (R_local, P) int32)`` of step ``s``."""
        import grain

        keys, positions = tuple(keys), tuple(positions)
        per_step = len(keys) * len(positions)

        def element(k: int):
            step, rest = divmod(k, per_step)
            replicate, j = divmod(rest, len(positions))
            return self.example(keys[replicate], step, positions[j])

        def as_step(batch):
            images, labels = batch
            return (
                images.reshape(len(keys), len(positions), *images.shape[1:]),
                labels.reshape(len(keys), len(positions)),
            )

        return grain.MapDataset.range(2**31 - 1).map(element).batch(per_step).map(as_step)

    def steps(
        self, keys: Sequence[tuple[int, int]], start: int, count: int, positions: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``((count, R_local, P, H, W, C), (count, R_local, P))``: the batches of steps
        ``start .. start + count - 1`` (their examples at ``positions``, default all ``B``), read
        ahead on Grain's threads (a sequential reader keeps its iterator: the next call goes on
        where this one stopped)."""
        import grain

        keys = tuple(tuple(int(v) for v in k) for k in keys)
        positions = tuple(range(self.batch_size) if positions is None else positions)
        if self._iterator is None or self._iterator[:3] != (keys, positions, start):
            options = grain.ReadOptions(num_threads=self.threads, prefetch_buffer_size=max(1, self.read_ahead_steps))
            iterator = self.dataset_of(keys, positions).to_iter_dataset(options).__iter__()
            iterator.set_state(self.iterator_state(start))
            self._iterator = (keys, positions, start, iterator)
        iterator = self._iterator[3]
        batches = [next(iterator) for _ in range(count)]
        self._iterator = (keys, positions, start + count, iterator)
        return np.stack([b[0] for b in batches]), np.stack([b[1] for b in batches])

    @staticmethod
    def iterator_state(step: int) -> dict:
        """The Grain iterator's state before the batch of ``step`` (what checkpoints record)."""
        return {"next_index": int(step)}

    # ----- evaluation ----------------------------------------------------------------------------
    def eval_batches(self, split: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(images, labels)`` of the whole ``split`` in batches of ``eval_batch_size`` (the last
        one shorter), unaugmented: resized and centre-cropped."""
        source, size = self.sources[split], self.dataset.image_shape[0]
        channels, augmentation = self.dataset.image_shape[-1], self.dataset.augmentation
        for first in range(0, len(source), self.eval_batch_size):
            images, labels = [], []
            for index in range(first, min(first + self.eval_batch_size, len(source))):
                image, label = records_io.read_example(source[index], channels)
                images.append(eval_view(image, size, augmentation))
                labels.append(label)
            yield np.stack(images), np.asarray(labels, np.int32)


def folder_of(data_cfg) -> str:
    """Where a streamed dataset is read from: ``data.dir``, else ``$JAXLTH_DATA_DIR/<name>``."""
    if data_cfg.dir:
        return os.path.expanduser(data_cfg.dir)
    env = os.environ.get("JAXLTH_DATA_DIR", "")
    if env:
        return os.path.join(os.path.expanduser(env), data_cfg.name)
    raise UserError(
        f"data.name={data_cfg.name!r} is streamed from ArrayRecord files: set data.dir (or "
        "$JAXLTH_DATA_DIR) to the folder holding dataset.json and its train/test .array_record files"
    )
