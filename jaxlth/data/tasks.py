"""The task a dataset poses: some of its classes, relabelled, or a self-supervised pretext task.

* ``data.classes``: the examples of the listed classes only, in both splits, relabelled ``0..k-1`` in
  the order listed (``(5, 6, 7, 8, 9)`` makes class 5 label 0): the two halves of Fashion-MNIST a
  transfer experiment pretrains on and transfers to.
* ``data.task="rotation"``: every image four times, rotated counter-clockwise by 0, 90, 180 and 270
  degrees and labelled 0..3 by its rotation (RotNet, Gidaris et al. 2018). The four rotations of
  example ``i`` sit at positions ``4i..4i+3``, so any ``4q`` consecutive examples (the first
  ``instability.train_examples``, an evaluation batch) hold every rotation ``q`` times.

Both are pure functions of a :class:`Dataset`; :func:`jaxlth.data.load_dataset` applies the classes,
then the rotations, before the random subsample, the label noise and ``data.subset``. The
normalisation statistics stay those of the source, as for ``subsample_fraction`` and ``pad_to``: a
network pretrained on one set of classes and one transferred to another see their inputs normalised
alike (and a rotation moves pixels within a square image, which leaves per-channel statistics unchanged).
"""

from __future__ import annotations

import numpy as np

from jaxlth.data.dataset import Dataset
from jaxlth.data.sources import source_classes
from jaxlth.errors import UserError

TASKS = ("classes", "rotation")  # data.task
ROTATIONS = 4  # quarter turns: labels 0..3 of the rotation task


def class_ids(data_cfg) -> tuple[int, ...]:
    """``data.classes`` as a tuple of ints (``()``: every class); refuses anything else."""
    classes = data_cfg.get("classes", ())
    if not isinstance(classes, (tuple, list)) or not all(
        isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in classes
    ):
        raise UserError(f"data.classes must be a tuple of class ids such as (5, 6, 7, 8, 9), got {classes!r}")
    return tuple(int(c) for c in classes)


def check(data_cfg, streamed: bool) -> None:
    """Raises UserError (one sentence) for ``data.classes`` or ``data.task`` that cannot work on the
    dataset ``data_cfg`` names; reads no data. ``streamed``: the dataset is streamed while training."""
    classes, task = class_ids(data_cfg), data_cfg.get("task", "classes")
    if task not in TASKS:
        raise UserError(f"unknown data.task {task!r}; choose one of {', '.join(TASKS)}")
    name = data_cfg.get("name", "fashion_mnist")
    for field, used in (("classes", classes != ()), ("task", task != "classes")):
        if used and streamed:
            raise UserError(f"data.{field} needs the whole dataset in memory, and {name} is streamed")
    if classes:
        check_classes(classes, source_classes(data_cfg))
    if task == "rotation":
        if name == "mnist1d":
            raise UserError("data.task='rotation' needs square images, and mnist1d holds 1-D sequences")
        shape = tuple(data_cfg.get("synthetic_image_shape", (28, 28, 1)))
        if name == "synthetic" and not data_cfg.get("pad_to", 0) and (len(shape) != 3 or shape[0] != shape[1]):
            raise UserError(
                f"data.task='rotation' needs square images, and data.synthetic_image_shape is {shape} "
                "(set data.pad_to to make them square)"
            )


def check_classes(classes: tuple[int, ...], num_classes: int) -> None:
    """Raises UserError unless ``classes`` are at least 2 distinct ids in ``[0, num_classes)``."""
    if len(classes) < 2:
        raise UserError(f"data.classes={classes} keeps {len(classes)} class; a task needs at least 2")
    for c in classes:
        if not 0 <= c < num_classes:
            raise UserError(f"data.classes names class {c}, and the dataset's classes are 0 to {num_classes - 1}")
        if classes.count(c) > 1:
            raise UserError(f"data.classes lists class {c} twice")


def keep_classes(dataset: Dataset, classes: tuple[int, ...]) -> Dataset:
    """The examples of ``classes`` only, in their original order, class ``classes[j]`` relabelled ``j``.

    ``classes`` ``()`` returns ``dataset``; ``num_classes`` becomes ``len(classes)``; mean and std stay
    those of the source.
    """
    if not classes:
        return dataset
    check_classes(tuple(classes), dataset.num_classes)
    relabel = np.full(dataset.num_classes, -1, np.int32)
    relabel[list(classes)] = np.arange(len(classes), dtype=np.int32)
    split = {}
    for prefix in ("train", "test"):
        images, labels = getattr(dataset, f"{prefix}_images"), np.asarray(getattr(dataset, f"{prefix}_labels"))
        kept = np.flatnonzero(np.isin(labels, classes))
        split[f"{prefix}_images"], split[f"{prefix}_labels"] = images[kept], relabel[labels[kept]]
    return dataset.replace(
        **split, num_classes=len(classes), source=f"{dataset.source}, classes {tuple(classes)} as 0..{len(classes) - 1}"
    )


def rotated(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(4N, H, W, C)`` images, example ``i`` rotated counter-clockwise by ``90 k`` degrees at position
    ``4i + k``, and their ``(4N,)`` int32 labels ``k``, from ``(N, H, W, C)`` square images."""
    turns = np.stack([np.rot90(images, k, axes=(1, 2)) for k in range(ROTATIONS)], axis=1)  # (N, 4, H, W, C)
    labels = np.tile(np.arange(ROTATIONS, dtype=np.int32), images.shape[0])
    return turns.reshape(-1, *images.shape[1:]), labels


def rotation_task(dataset: Dataset) -> Dataset:
    """Both splits replaced by every image in its four rotations (:func:`rotated`), ``num_classes`` 4.

    Raises:
      UserError: images that are not square ``(H, H, C)`` (1-D sequences, rectangles).
    """
    shape = dataset.image_shape
    if len(shape) != 3 or shape[0] != shape[1]:
        raise UserError(f"data.task='rotation' needs square images (H, H, C), and {dataset.name} has {shape}")
    train_images, train_labels = rotated(dataset.train_images)
    test_images, test_labels = rotated(dataset.test_images)
    return dataset.replace(
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        num_classes=ROTATIONS,
        source=f"{dataset.source}, rotation task (each image at 0, 90, 180, 270 degrees)",
    )


def apply(dataset: Dataset, data_cfg) -> Dataset:
    """``dataset`` with ``data.classes`` kept, then ``data.task`` posed (the defaults: unchanged)."""
    dataset = keep_classes(dataset, class_ids(data_cfg))
    task = data_cfg.get("task", "classes")
    if task not in TASKS:
        raise UserError(f"unknown data.task {task!r}; choose one of {', '.join(TASKS)}")
    return rotation_task(dataset) if task == "rotation" else dataset
