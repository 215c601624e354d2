"""``python -m jaxlth.bench load``: reading a checkpoint file into a network against reading its bytes.

Writes an ImageNet ResNet (``--model``, default ``resnet50``: 25.6 M parameters, a 102 MB file at
full width; ``--mb N`` narrows it to a file of about ``N`` MB) with random numbers under
torchvision's names and layout to a temporary ``.safetensors`` file, then times, best of
``--repeats``, with the file in the page cache: (a) reading its bytes (``open(path).read()``), and
(b) :func:`jaxlth.weights.read_safetensors` + :func:`jaxlth.weights.to_network` into the model's
template (every conv and linear kernel transposed into Flax's layout). The target: (b) <= 2 x (a).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile

import jax
import numpy as np
import safetensors

from jaxlth import weights
from jaxlth.bench.harness import best_times
from jaxlth.errors import UserError
from jaxlth.models import get_model
from jaxlth.models.resnet_imagenet import LAYOUTS

MODELS = tuple(f"resnet{depth}" for depth in sorted(LAYOUTS))
FULL_WIDTH = 64
IMAGE = (224, 224, 3)


def template(model: str, width: int) -> dict:
    """``{"params", "batch_stats"}`` of ``model`` (1,000 classes) at ``width``, as shapes."""
    net = get_model(model, 1000, width=width)
    shapes = jax.eval_shape(lambda: net.init(jax.random.key(0), np.zeros((1, *IMAGE), np.float32), train=False))
    return {"params": shapes["params"], "batch_stats": shapes["batch_stats"]}


def megabytes(tree) -> float:
    return sum(math.prod(leaf.shape) * np.dtype(leaf.dtype).itemsize for leaf in jax.tree.leaves(tree)) / 1e6


def width_for(model: str, mb: float | None) -> int:
    """The width whose float32 file is about ``mb`` MB (sizes grow with the width squared)."""
    if mb is None:
        return FULL_WIDTH
    full = megabytes(template(model, FULL_WIDTH))
    return max(1, min(FULL_WIDTH, round(FULL_WIDTH * math.sqrt(mb / full))))


def random_network(shapes, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: rng.standard_normal(s.shape, dtype=np.float32), shapes)


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def suite(model: str = "resnet50", mb: float | None = None, repeats: int = 5) -> dict:
    """Prints the table; returns the best times ``{"bytes": s, "load": s}``."""
    if model not in MODELS:
        raise UserError(f"the load benchmark reads ImageNet ResNets ({', '.join(MODELS)}), not {model!r}")
    width = width_for(model, mb)
    shapes = template(model, width)
    flat = weights.from_network(random_network(shapes), "torchvision_resnet")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{model}.safetensors")
        weights.write_safetensors(path, flat)
        del flat
        size = os.path.getsize(path) / 1e6

        def load():
            return weights.to_network(weights.read_safetensors(path), "torchvision_resnet", shapes)

        _, report = load()  # checks that it loads whole, and puts the file in the page cache
        assert not report["kept"], report["kept"]
        seconds = best_times({"bytes": lambda: read_bytes(path), "load": load}, repeats)
    ratio = seconds["load"] / seconds["bytes"]
    print(
        f"\n{model} (width {width}) under torchvision's names: a {size:.1f} MB .safetensors file in the page "
        f"cache, best of {repeats}"
    )
    print("| reading | time | MB/s |\n|---|---|---|")
    print(f"| the file's bytes (open().read()) | {1e3 * seconds['bytes']:.1f} ms | {size / seconds['bytes']:,.0f} |")
    print(
        f"| read_safetensors + to_network (into Flax's layout) | {1e3 * seconds['load']:.1f} ms | "
        f"{size / seconds['load']:,.0f} |"
    )
    print(f"load / bytes: {ratio:.2f}x (target <= 2x)")
    return seconds


def main(argv: list[str] | None = None) -> dict:
    """``python -m jaxlth.bench load [--model resnet50] [--mb N] [--repeats 5]``."""
    parser = argparse.ArgumentParser(prog="python -m jaxlth.bench load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet50", choices=MODELS, help="the ResNet written (default resnet50)")
    parser.add_argument("--mb", type=float, default=None, help="narrow it to a file of about this many MB")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the best is printed (default 5)")
    args = parser.parse_args(argv)
    print(f"numpy {np.__version__}, safetensors {safetensors.__version__}")
    return suite(args.model, args.mb, args.repeats)
