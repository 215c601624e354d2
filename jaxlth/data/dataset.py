"""The in-memory dataset every source returns: whole train and test splits as numpy arrays."""

from __future__ import annotations

import dataclasses

import numpy as np

OBJECTIVES = ("classify", "regress", "mlm")  # Text.objective
METRICS = ("accuracy", "f1", "mcc", "pearson", "spearman")  # Text.metrics (jaxlth.training.metrics)


@dataclasses.dataclass(frozen=True)
class Text:
    """What the token arrays of a text dataset mean (:mod:`jaxlth.data.text`).

    A text dataset stores each example as int32 ``(2, T)``: row 0 the WordPiece ids (padded with
    ``pad_id`` to ``max_length = T``), row 1 the token types (0 for the first sentence, 1 for the
    second of a pair). Its labels are int32 classes (``classify``), float32 scores (``regress``,
    STS-B, ``num_classes`` 1) or unused zeros (``mlm``: the targets are drawn on the device each step).

    Attributes:
      objective: ``classify``, ``regress`` or ``mlm`` (masked-language modelling).
      metrics: the task's metrics (names in ``METRICS``), the main one first.
      vocab_size, pad_id, cls_id, sep_id, mask_id: the tokenizer's vocabulary size and special ids.
      max_length: ``T``, the padded length in tokens.
      mlm_probability: the fraction of tokens an MLM step predicts (0.15: Devlin et al. 2019).
    """

    objective: str
    metrics: tuple[str, ...]
    vocab_size: int
    pad_id: int
    cls_id: int
    sep_id: int
    mask_id: int
    max_length: int
    mlm_probability: float = 0.15


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A classification dataset held whole in memory (and later on the device).

    Attributes:
      name: canonical name, e.g. ``"fashion_mnist"``.
      train_images: ``(N, H, W, C)`` (or ``(N, L, C)`` for 1-D data), uint8 pixels in [0, 255]
        or float32 values.
      train_labels: ``(N,)`` int32 class indices, or float32 ``(N, K)`` soft targets (rows summing to 1:
        a distilled set's learned labels, :mod:`jaxlth.data.distilled`); see :func:`classes_of`.
      test_images, test_labels: the test split, same layout.
      num_classes: number of classes.
      mean, std: per-channel statistics ``(C,)`` of ``images / pixel_scale`` used to normalise.
      pixel_scale: 255.0 for uint8 pixels, 1.0 for float data.
      augmentation: ``"none"`` or ``"cifar"`` (4-pixel pad, random 32x32 crop, horizontal flip).
      source: a human-readable note of where the data came from (a path or ``"tfds"``).
      text: for text data, what its token arrays mean (:class:`Text`); ``None`` for images.
      extra_tests: more evaluation splits ``{split: (inputs, labels)}`` beside ``test`` (MNLI's
        ``test_mismatched``); ``{}`` for most datasets.
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    pixel_scale: float = 255.0
    augmentation: str = "none"
    source: str = ""
    text: Text | None = None
    extra_tests: dict = dataclasses.field(default_factory=dict)

    @property
    def num_train(self) -> int:
        return int(self.train_images.shape[0])

    @property
    def num_test(self) -> int:
        return int(self.test_images.shape[0])

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.train_images.shape[1:])

    def replace(self, **changes) -> "Dataset":
        return dataclasses.replace(self, **changes)


def classes_of(labels: np.ndarray) -> np.ndarray:
    """``(N,)`` classes of ``(N,)`` class labels (as they are) or ``(N, K)`` soft targets (their
    argmax): what a class-balanced choice of examples groups by."""
    labels = np.asarray(labels)
    return labels if labels.ndim == 1 else np.argmax(labels, axis=-1).astype(np.int32)


def padded(dataset: Dataset, size: int) -> Dataset:
    """``dataset`` with every image zero-padded (centred) to ``size x size`` pixels, e.g. Fashion-MNIST
    28x28 -> 32x32 for the CIFAR conv nets. ``size`` 0 or the images' own size: unchanged. The
    normalisation statistics stay those of the source (a padded pixel is the background, 0)."""
    if not size or dataset.train_images.ndim != 4 or dataset.image_shape[:2] == (size, size):
        return dataset
    height, width = dataset.image_shape[:2]
    if size < max(height, width):
        raise ValueError(f"cannot pad {height}x{width} images to {size}x{size}")
    top, left = (size - height) // 2, (size - width) // 2
    widths = ((0, 0), (top, size - height - top), (left, size - width - left), (0, 0))
    return dataset.replace(
        train_images=np.pad(dataset.train_images, widths), test_images=np.pad(dataset.test_images, widths)
    )
