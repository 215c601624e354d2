"""The model registry: ``get_model(name, num_classes, **options)`` -> a Flax Linen module.

Every model is called as ``model.apply(variables, x, train=...)`` on float32 inputs ``(N, ...)``
(NHWC for the image models) and returns logits ``(N, num_classes)``. Its last layer is the
Dense layer named ``output`` (parameters ``output/kernel``, ``output/bias``). Models with
BatchNorm keep running statistics in the ``batch_stats`` collection; the others have none.
Initialisation follows OpenLTH (see ``init.py``).
"""

import functools
import inspect
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import numpy as np

from jaxlth.errors import UserError
from jaxlth.models.conv import ConvNet
from jaxlth.models.lenet import LeNet
from jaxlth.models.resnet_cifar import CifarResNet
from jaxlth.models.resnet_imagenet import LAYOUTS, ImageNetResNet
from jaxlth.models.vgg import PLANS, VGG

__all__ = ["MODELS", "get_model", "names", "param_count"]


def _positive_int(model: str, option: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise UserError(f"model {model!r} needs a positive integer {option}, got {value!r}")
    return int(value)


def _lenet(num_classes: int, widths: Sequence[int] = (300, 100)) -> nn.Module:
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence):
        raise UserError(f"model 'lenet' needs widths as a list of hidden layer widths, got {widths!r}")
    widths = tuple(_positive_int("lenet", "width", w) for w in widths)
    return LeNet(num_classes=num_classes, widths=widths)


def _lenet_300_100(num_classes: int) -> nn.Module:
    return LeNet(num_classes=num_classes, widths=(300, 100))


def _conv(num_classes: int, *, pairs: int) -> nn.Module:
    return ConvNet(num_classes=num_classes, filters=(64, 128, 256)[:pairs])


def _resnet_cifar(num_classes: int, depth: int = 20, width: int = 16, *, model: str = "resnet_cifar") -> nn.Module:
    depth = _positive_int(model, "depth", depth)
    if depth < 8 or (depth - 2) % 6:
        raise UserError(f"model {model!r} needs depth = 6n + 2 (8, 14, 20, 32, 56, ...), got {depth}")
    return CifarResNet(num_classes=num_classes, depth=depth, width=_positive_int(model, "width", width))


def _vgg(num_classes: int, *, depth: int) -> nn.Module:
    return VGG(num_classes=num_classes, plan=PLANS[depth])


def _resnet_imagenet(num_classes: int, width: int = 64, small_images: bool = False, *, depth: int) -> nn.Module:
    model = f"resnet{depth}"
    if not isinstance(small_images, (bool, np.bool_)):
        raise UserError(f"model {model!r} needs small_images to be true or false, got {small_images!r}")
    block, stages = LAYOUTS[depth]
    return ImageNetResNet(
        num_classes=num_classes,
        block=block,
        stages=stages,
        width=_positive_int(model, "width", width),
        small_images=bool(small_images),
    )


def _cifar_resnet_alias(depth: int) -> Callable[..., nn.Module]:
    def make(num_classes: int, width: int = 16) -> nn.Module:
        return _resnet_cifar(num_classes, depth, width, model=f"resnet{depth}")

    return make


MODELS: dict[str, Callable[..., nn.Module]] = {
    "lenet": _lenet,
    "lenet_300_100": _lenet_300_100,
    "conv2": functools.partial(_conv, pairs=1),
    "conv4": functools.partial(_conv, pairs=2),
    "conv6": functools.partial(_conv, pairs=3),
    "resnet_cifar": _resnet_cifar,
    **{f"resnet{d}": _cifar_resnet_alias(d) for d in (20, 32, 56, 110)},
    **{f"vgg{d}": functools.partial(_vgg, depth=d) for d in sorted(PLANS)},
    **{f"resnet{d}": functools.partial(_resnet_imagenet, depth=d) for d in sorted(LAYOUTS)},
}


def names() -> list[str]:
    """Sorted names of the registered models."""
    return sorted(MODELS)


def _options(constructor: Callable[..., nn.Module]) -> list[str]:
    """Names of the user options a constructor accepts (keyword arguments with defaults)."""
    params = inspect.signature(constructor).parameters.values()
    return [p.name for p in params if p.name != "num_classes" and p.kind != p.KEYWORD_ONLY]


def get_model(name: str, num_classes: int, **options) -> nn.Module:
    """The model ``name`` with ``num_classes`` outputs; ``options`` are its keyword options."""
    if name not in MODELS:
        raise UserError(f"unknown model {name!r}; known models: {', '.join(names())}")
    constructor = MODELS[name]
    allowed = _options(constructor)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        takes = f"its options are: {', '.join(allowed)}" if allowed else "it takes no options"
        raise UserError(f"model {name!r} has no option {', '.join(map(repr, unknown))}; {takes}")
    num_classes = _positive_int(name, "num_classes", num_classes)
    return constructor(num_classes, **options)


def param_count(params) -> int:
    """Number of scalars in a pytree of arrays (or of ``jax.ShapeDtypeStruct``)."""
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(params))
