"""The model registry: ``get_model(name, num_classes, **options)`` -> a Flax Linen module.

Every model is called as ``model.apply(variables, x, train=...)`` on float32 inputs ``(N, ...)``
(NHWC for the image models) and returns logits ``(N, num_classes)``. Its last layer is the
Dense layer named ``output`` (parameters ``output/kernel``, ``output/bias``). Models with
BatchNorm keep running statistics in the ``batch_stats`` collection; the others have none.
Initialisation follows OpenLTH (see ``init.py``); the ViT's blocks follow big_vision (``vit.py``).

The exception is BERT (``bert``, ``bert_tiny`` ... ``bert_base``; ``bert.py``): it reads int32 token
inputs ``(N, 2, T)`` (ids, token types), initialises as Hugging Face, and its head ``output`` is a
Dense layer for ``head="classify"``/``"regress"`` but the tied masked-language-model head
(``output/transform``, ``output/norm``, ``output/bias``) for ``head="mlm"``, which returns ``(N, T, V)``.
"""

import functools
import inspect
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import numpy as np

from jaxlth.errors import UserError
from jaxlth.models.bert import HEADS, Bert, bert_options
from jaxlth.models.conv import ConvNet
from jaxlth.models.convnet import NORMS, DistillConvNet
from jaxlth.models.lenet import LeNet
from jaxlth.models.resnet_cifar import CifarResNet
from jaxlth.models.resnet_imagenet import LAYOUTS, ImageNetResNet
from jaxlth.models.vgg import PLANS, VGG
from jaxlth.models.vit import POOLS, ViT

__all__ = ["MODELS", "bert_options", "dense_by_default", "get_model", "names", "param_count"]


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


def _convnet(num_classes: int, depth: int = 3, width: int = 128, norm: str = "instance") -> nn.Module:
    if norm not in NORMS:
        raise UserError(f"model 'convnet' needs norm to be one of {', '.join(NORMS)}, got {norm!r}")
    depth, width = _positive_int("convnet", "depth", depth), _positive_int("convnet", "width", width)
    return DistillConvNet(num_classes=num_classes, depth=depth, width=width, norm=norm)


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


def _vit(
    num_classes: int,
    patch_size: int = 4,
    width: int = 192,
    depth: int = 12,
    heads: int = 3,
    mlp_ratio: int = 4,
    pool: str = "cls",
    *,
    model: str = "vit",
) -> nn.Module:
    width, heads = _positive_int(model, "width", width), _positive_int(model, "heads", heads)
    if width % heads:
        raise UserError(f"model {model!r} needs a width divisible by heads, got width {width} and {heads} heads")
    if pool not in POOLS:
        raise UserError(f"model {model!r} needs pool to be 'cls' or 'mean', got {pool!r}")
    return ViT(
        num_classes=num_classes,
        patch_size=_positive_int(model, "patch_size", patch_size),
        width=width,
        depth=_positive_int(model, "depth", depth),
        heads=heads,
        mlp_ratio=_positive_int(model, "mlp_ratio", mlp_ratio),
        pool=pool,
    )


# name -> (width, depth, heads, default patch_size): ViT-Ti for small images (patch 4), ViT-S/16, ViT-B/16.
VIT_SIZES = {"vit_tiny": (192, 12, 3, 4), "vit_small": (384, 12, 6, 16), "vit_base": (768, 12, 12, 16)}


def _vit_size(name: str) -> Callable[..., nn.Module]:
    width, depth, heads, patch = VIT_SIZES[name]

    def make(num_classes: int, patch_size: int = patch, pool: str = "cls") -> nn.Module:
        return _vit(num_classes, patch_size, width, depth, heads, 4, pool, model=name)

    return make


def _bert(
    num_classes: int,
    vocab_size: int = 30522,
    hidden: int = 768,
    layers: int = 12,
    heads: int = 12,
    intermediate: int = 3072,
    max_positions: int = 512,
    type_vocab: int = 2,
    pad_id: int = 0,
    head: str = "classify",
    ln_epsilon: float = 1e-12,
    dropout: float = 0.1,
    *,
    model: str = "bert",
) -> nn.Module:
    sizes = dict(vocab_size=vocab_size, hidden=hidden, layers=layers, heads=heads, intermediate=intermediate)
    sizes |= dict(max_positions=max_positions, type_vocab=type_vocab)
    sizes = {option: _positive_int(model, option, value) for option, value in sizes.items()}
    if sizes["hidden"] % sizes["heads"]:
        raise UserError(f"model {model!r} needs a hidden size divisible by heads, got {hidden} and {heads} heads")
    if isinstance(pad_id, bool) or not isinstance(pad_id, (int, np.integer)) or not 0 <= pad_id < vocab_size:
        raise UserError(f"model {model!r} needs a pad_id in [0, vocab_size {vocab_size}), got {pad_id!r}")
    if head not in HEADS:
        raise UserError(f"model {model!r} needs head to be one of {', '.join(HEADS)}, got {head!r}")
    if head == "mlm" and num_classes != vocab_size:
        raise UserError(f"model {model!r} with head 'mlm' has vocab_size {vocab_size} outputs, not {num_classes}")
    if head == "regress" and num_classes != 1:
        raise UserError(f"model {model!r} with head 'regress' predicts one score (num_classes 1), not {num_classes}")
    if isinstance(ln_epsilon, bool) or not isinstance(ln_epsilon, (int, float, np.floating)) or not ln_epsilon > 0:
        raise UserError(f"model {model!r} needs a positive ln_epsilon, got {ln_epsilon!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float, np.floating)) or not 0 <= dropout < 1:
        raise UserError(f"model {model!r} needs a dropout rate in [0, 1), got {dropout!r}")
    return Bert(
        num_classes=num_classes,
        pad_id=int(pad_id),
        head=head,
        ln_epsilon=float(ln_epsilon),
        dropout=float(dropout),
        **sizes,
    )


# name -> (layers, hidden): Turc et al. 2019's miniatures and BERT-base; heads H / 64, intermediate 4 H.
BERT_SIZES = {
    "bert_tiny": (2, 128),
    "bert_mini": (4, 256),
    "bert_small": (4, 512),
    "bert_medium": (8, 512),
    "bert_base": (12, 768),
}


def _bert_size(name: str) -> Callable[..., nn.Module]:
    layers, hidden = BERT_SIZES[name]

    def make(
        num_classes: int,
        vocab_size: int = 30522,
        max_positions: int = 512,
        type_vocab: int = 2,
        pad_id: int = 0,
        head: str = "classify",
        ln_epsilon: float = 1e-12,
        dropout: float = 0.1,
    ) -> nn.Module:
        sizes = dict(hidden=hidden, layers=layers, heads=hidden // 64, intermediate=4 * hidden)
        options = dict(max_positions=max_positions, type_vocab=type_vocab, pad_id=pad_id, head=head)
        return _bert(num_classes, vocab_size, **sizes, **options, ln_epsilon=ln_epsilon, dropout=dropout, model=name)

    return make


MODELS: dict[str, Callable[..., nn.Module]] = {
    "lenet": _lenet,
    "lenet_300_100": _lenet_300_100,
    "conv2": functools.partial(_conv, pairs=1),
    "conv4": functools.partial(_conv, pairs=2),
    "conv6": functools.partial(_conv, pairs=3),
    "convnet": _convnet,
    "resnet_cifar": _resnet_cifar,
    **{f"resnet{d}": _cifar_resnet_alias(d) for d in (20, 32, 56, 110)},
    **{f"vgg{d}": functools.partial(_vgg, depth=d) for d in sorted(PLANS)},
    **{f"resnet{d}": functools.partial(_resnet_imagenet, depth=d) for d in sorted(LAYOUTS)},
    "vit": _vit,
    **{name: _vit_size(name) for name in VIT_SIZES},
    "bert": _bert,
    **{name: _bert_size(name) for name in BERT_SIZES},
}


def dense_by_default(name: str) -> tuple[str, ...]:
    """Patterns (as ``pruning.layers_to_ignore``) of the kernels model ``name`` keeps dense by default.

    Only kernels with two or more dimensions are ever prunable, so for a ViT these two patterns leave
    exactly the attention (query, key, value, out) and MLP (fc1, fc2) kernels to prune: the patch
    embedding and the classifier stay dense; tokens, embeddings and norms are never kernels. For a
    BERT, the pooler and the head (``output``, the MLM transform too) stay dense: the prunable kernels
    are each layer's query, key, value, out, intermediate and ffn_out. Other models: ``()``.
    """
    if name == "vit" or name in VIT_SIZES:
        return ("^patch_embedding/", "^output/")
    if name == "bert" or name in BERT_SIZES:
        return ("^pooler/", "^output/")
    return ()


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
