"""``python -m jaxlth.bench export``: inference time of an exported network, dense against BCOO kernels.

For LeNet-300-100 and a wider MLP (784-1024-1024-1024-10; ``--models``) with random weights and a
random mask of each ``--densities`` fraction over every Dense kernel, writes the network with
:func:`jaxlth.export.write` (``sparse=True``) to a temporary folder, loads it as a user does (the
folder's ``load.py``, :mod:`jaxlth.export.loader`) and times one forward call on ``--batches`` uint8
Fashion-MNIST-sized images already on the device (preprocessing included, compiled and warm): the
dense forward (its time does not depend on the mask, so it is measured once per model and batch)
and the BCOO one at each density. Each time is the best of ``--repeats`` rounds, a round being the
mean of as many calls as fill about 0.2 s, rounds taken round-robin over the variants.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import jax
import numpy as np

from jaxlth import export, models
from jaxlth.bench.harness import fashion_mnist_sized
from jaxlth.export import loader
from jaxlth.training.functions import Spec

MODELS = {"lenet_300_100": (300, 100), "mlp_1024x3": (1024, 1024, 1024)}
IMAGE = (28, 28, 1)


def network(widths: tuple[int, ...], density: float, seed: int = 0) -> tuple:
    """``(model, spec, variables, mask)``: an MLP of ``widths`` with random weights, a random mask keeping
    ``density`` of every Dense kernel, and the spec of Fashion-MNIST-sized uint8 images."""
    data = fashion_mnist_sized(8, 8)
    spec = Spec(8, 1, 8, IMAGE, data.mean, data.std, data.pixel_scale, "none", 8)
    model = models.get_model("lenet", 10, widths=widths)
    variables = model.init(jax.random.key(seed), np.zeros((1, *IMAGE), np.float32), train=False)
    variables = jax.tree.map(np.asarray, variables)
    rng = np.random.default_rng(seed)
    kernels = {name: layer["kernel"] for name, layer in variables["params"].items()}
    mask = {name: {"kernel": rng.random(kernel.shape) < density} for name, kernel in kernels.items()}
    return model, spec, variables, mask


def seconds_per_call(forward, variables, inputs, budget: float = 0.2) -> float:
    """Mean wall time of one ``forward(variables, inputs)`` over as many calls as fill about ``budget`` s."""
    jax.block_until_ready(forward(variables, inputs))
    start, calls = time.perf_counter(), 0
    while True:
        jax.block_until_ready(forward(variables, inputs))
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= budget:
            return elapsed / calls


def best_per_call(variants: dict, inputs, repeats: int) -> dict:
    """Best of ``repeats`` rounds of :func:`seconds_per_call` for each ``(forward, variables)``, round-robin."""
    best = {name: float("inf") for name in variants}
    for _ in range(repeats):
        for name, (forward, variables) in variants.items():
            best[name] = min(best[name], seconds_per_call(forward, variables, inputs))
    return best


def loaded(widths: tuple[int, ...], density: float, folder: str, sparse: bool):
    """``(forward, variables)`` of the network exported to ``folder`` and loaded back by its ``load.py``."""
    if not os.path.exists(os.path.join(folder, "export.json")):
        export.write(folder, *network(widths, density), np.dtype(np.uint8), sparse=True)
    variables, forward = loader.load(folder, sparse=sparse)
    return forward, variables


def suite(models_: list[str], densities: list[float], batches: list[int], repeats: int) -> None:
    print(
        f"\nexported forward pass, CPU time per call (best of {repeats}; inputs uint8 28x28x1 on the device; "
        f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}); in brackets: dense time / BCOO time"
    )
    header = " | ".join(f"BCOO {100 * d:g}%" for d in densities)
    print(f"| model | batch | dense | {header} |\n|---|---|---|{'---|' * len(densities)}")
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        for name in models_:
            widths = MODELS[name]
            variants = {"dense": loaded(widths, densities[0], os.path.join(tmp, f"{name}_{densities[0]}"), False)}
            for d in densities:
                variants[d] = loaded(widths, d, os.path.join(tmp, f"{name}_{d}"), True)
            for batch in batches:
                inputs = jax.device_put(rng.integers(0, 256, (batch, *IMAGE), dtype=np.uint8))
                best = best_per_call(variants, inputs, repeats)
                dense = best["dense"]
                cells = " | ".join(f"{duration(best[d])} ({dense / best[d]:.2f}x)" for d in densities)
                print(f"| {name} | {batch} | {duration(dense)} | {cells} |")


def duration(seconds: float) -> str:
    return f"{1e6 * seconds:.0f} µs" if seconds < 1e-3 else f"{1e3 * seconds:.2f} ms"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m jaxlth.bench export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--densities", default="0.2,0.05,0.01", help="fractions of each kernel kept")
    parser.add_argument("--batches", default="1,1000", help="comma-separated batch sizes")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    chosen = [m for m in args.models.split(",") if m]
    unknown = [m for m in chosen if m not in MODELS]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}; the models are {', '.join(MODELS)}")
    device = jax.devices()[0]
    print(f"jax {jax.__version__} on {jax.device_count()} x {device.platform} ({device.device_kind})")
    densities = [float(d) for d in args.densities.split(",") if d]
    suite(chosen, densities, [int(b) for b in args.batches.split(",") if b], args.repeats)
