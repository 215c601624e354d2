"""``python -m jaxlth.bench distill``: the cost of dataset distillation (:mod:`jaxlth.distillation`).

For each model (``--models``, default ``lenet_300_100,convnet``, with ``--model-options`` such as ``width=32``
for those that take them) on data of Fashion-MNIST's size or CIFAR-10's (``--data``; random pixels: the
arithmetic does not depend on the values) at ``--ipc`` images per class (default 10): seconds per
MTT outer iteration (``--inner-steps`` student steps on all synthetic images, unrolled under
``jax.checkpoint``, and the backward pass through them) and per DM iteration (256 real images of each class
and the synthetic ones through a fresh network), for ``R`` synthetic sets in one program
(``--replicates``, default ``1,2``), each a chunk of ``--iterations`` iterations compiled ahead of time
(best of ``--repeats``); and the compiled chunk's memory (XLA's memory analysis: its temporaries, the
peak beyond arguments and outputs, and the arguments: the expert trajectories and the dataset).
Options: ``--models``, ``--model-options``, ``--data``, ``--methods``, ``--ipc``, ``--inner-steps``, ``--replicates``,
``--iterations``, ``--repeats``.
"""

from __future__ import annotations

import argparse
import inspect

import jax
import jax.numpy as jnp

from jaxlth import models
from jaxlth.bench.harness import best_times, cifar_sized, fashion_mnist_sized
from jaxlth.distillation import dm, mtt, outer
from jaxlth.training import functions as fn

EXPERTS, EPOCHS = 2, 4  # trajectory leaves (experts, epochs, ...): random networks, the values do not matter


def spec_of(dataset) -> fn.Spec:
    return fn.Spec(
        256, dataset.num_train // 256, dataset.num_train, dataset.image_shape, dataset.mean, dataset.std,
        dataset.pixel_scale, dataset.augmentation, 1000,
    )  # fmt: skip


DATA = {"fashion_mnist": fashion_mnist_sized, "cifar10": cifar_sized}


def model_options(name: str, text: str) -> dict:
    """``"width=32,depth=3"`` -> the options of those ``name`` takes (literals where they parse)."""
    options = dict(item.split("=", 1) for item in text.split(",") if item)
    options = {k: int(v) if v.isdigit() else v for k, v in options.items()}
    accepted = inspect.signature(models.MODELS[name]).parameters
    return {k: v for k, v in options.items() if k in accepted}


def measure(name: str, method: str, replicates: int, args, dataset, data) -> dict:
    """``{"seconds": per iteration, "temp_mb", "argument_mb"}`` of one chunk of ``args.iterations``."""
    options = model_options(name, args.model_options)
    model, spec = models.get_model(name, dataset.num_classes, **options), spec_of(dataset)
    settings = outer.Settings(
        method=method, images_per_class=args.ipc, num_classes=dataset.num_classes, iterations=args.iterations,
        lr_images=1.0, lr_lr=0.0, matching=mtt.Matching(args.inner_steps, 2, 2, args.ipc * dataset.num_classes),
        distribution=dm.Distribution(256, dataset.num_classes),
    )  # fmt: skip
    program = outer.Outer(model, spec, settings)
    keys = jax.random.split(jax.random.PRNGKey(0), EXPERTS * EPOCHS)
    networks = jax.vmap(lambda k: fn.init(model, spec, k))(keys)
    trajectory = {
        "params": jax.tree.map(lambda x: x.reshape(EXPERTS, EPOCHS, *x.shape[1:]), networks[0]),
        "batch_stats": jax.tree.map(lambda x: x.reshape(EXPERTS, EPOCHS, *x.shape[1:]), networks[1]),
    }
    trajectory = trajectory if method == "mtt" else None
    images, labels = data
    state = program.start(jax.random.split(jax.random.PRNGKey(1), replicates), images, labels)
    set_keys = jax.random.split(jax.random.PRNGKey(2), replicates)
    bounds = (jnp.int32(0), jnp.int32(args.iterations))
    compiled = program.chunk.lower(state, set_keys, trajectory, images, labels, *bounds).compile()
    memory = compiled.memory_analysis()

    def run():
        fresh = jax.tree.map(jnp.copy, state)  # (the chunk donates its state)
        jax.block_until_ready(compiled(fresh, set_keys, trajectory, images, labels, *bounds))

    run()
    seconds = best_times({"chunk": run}, args.repeats)["chunk"] / args.iterations
    mb = 1 / 2**20
    return {
        "seconds": seconds,
        "temp_mb": getattr(memory, "temp_size_in_bytes", 0) * mb,
        "argument_mb": getattr(memory, "argument_size_in_bytes", 0) * mb,
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m jaxlth.bench distill", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="lenet_300_100,convnet")
    parser.add_argument("--model-options", default="", help="e.g. width=32 (for the models that take it)")
    parser.add_argument("--data", default="fashion_mnist", choices=sorted(DATA), help="random data of this size")
    parser.add_argument("--ipc", type=int, default=10, help="synthetic images per class (default 10)")
    parser.add_argument("--inner-steps", type=int, default=20, help="MTT's student steps N (default 20)")
    parser.add_argument("--replicates", default="1,2", help="synthetic sets in one program (default 1,2)")
    parser.add_argument("--iterations", type=int, default=3, help="outer iterations per timed chunk (default 3)")
    parser.add_argument("--methods", default="mtt,dm", help="mtt, dm or both (default mtt,dm)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    device = jax.devices()[0]
    print(f"jax {jax.__version__} on {jax.device_count()} x {device.platform} ({device.device_kind})")
    dataset = DATA[args.data]()
    data = (jax.device_put(dataset.train_images), jax.device_put(dataset.train_labels))
    print(
        f"\n| distillation, {args.ipc} images per class, {dataset.image_shape} images | R | seconds per iteration | "
        "temporaries (MB) | arguments (MB) |\n|---|---|---|---|---|"
    )
    for name in filter(None, args.models.split(",")):
        for method in filter(None, args.methods.split(",")):
            for r in (int(x) for x in args.replicates.split(",") if x):
                m = measure(name, method, r, args, dataset, data)
                what = f"MTT, {args.inner_steps} student steps" if method == "mtt" else "DM, 256 real images per class"
                shown = ", ".join(f"{k}={v}" for k, v in model_options(name, args.model_options).items())
                label = f"{name} ({shown})" if shown else name
                print(
                    f"| {label}: {what} | {r} | {m['seconds']:.3f} ({m['seconds'] / r:.3f} per set) | "
                    f"{m['temp_mb']:.1f} | {m['argument_mb']:.1f} |",
                    flush=True,
                )
