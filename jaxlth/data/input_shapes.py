"""The shape of one network input, from the ``data`` config alone: nothing is read or generated.

What a saved run's model was traced on, for reading it back without its data (the costs of its
masks: :mod:`jaxlth.analysis.costs`). It mirrors what :func:`jaxlth.data.load_dataset` and
:func:`jaxlth.data.open_streamed` return (``tests/test_costs.py`` checks the two agree):
MNIST and Fashion-MNIST ``(28, 28, 1)``, CIFAR ``(32, 32, 3)``, MNIST-1D ``(40, 1)``, synthetic data
``data.synthetic_image_shape``; ``data.pad_to`` squares an image's sides; a streamed dataset is
``data.image_size`` squares; text is int32 ``(2, data.max_length)`` (ids and token types); a distilled
set's is its real dataset's (read from the distill run's ``config.json``). The classes kept and the
rotation task leave the shape as it is.
"""

from __future__ import annotations

import numpy as np

from jaxlth.data import distilled
from jaxlth.data import text as text_lib
from jaxlth.data.sources import STREAMING_ONLY
from jaxlth.errors import UserError

IMAGES = {  # name -> (H, W, C) or (L, C) as stored
    "mnist": (28, 28, 1),
    "fashion_mnist": (28, 28, 1),
    "cifar10": (32, 32, 3),
    "cifar100": (32, 32, 3),
    "mnist1d": (40, 1),
    "imagenet2012": (224, 224, 3),
    "imagenet": (224, 224, 3),
}


def example(data_cfg) -> tuple[tuple[int, ...], np.dtype]:
    """``(shape, dtype)`` of one preprocessed network input of the dataset ``data_cfg`` describes
    (a ``data`` ConfigDict or the ``data`` dict of a saved ``config.json``): float32 images, int32 text."""
    name = data_cfg.get("name", "fashion_mnist")
    if name == distilled.NAME:
        return example(distilled.real_config(data_cfg))
    if name in text_lib.NAMES:
        return (2, int(data_cfg.get("max_length", 128))), np.dtype(np.int32)
    if name == "synthetic":
        shape = tuple(int(s) for s in data_cfg.get("synthetic_image_shape", (28, 28, 1)))
    elif name in IMAGES:
        shape = IMAGES[name]
    else:
        raise UserError(f"the input shape of data.name={name!r} is not known without its data")
    if data_cfg.get("source", "auto") == "array_record" or name in STREAMING_ONLY:
        size = int(data_cfg.get("image_size", 224))
        return (size, size, shape[-1]), np.dtype(np.float32)
    size = int(data_cfg.get("pad_to", 0) or 0)
    if size and len(shape) == 3:
        shape = (size, size, shape[-1])
    return shape, np.dtype(np.float32)
