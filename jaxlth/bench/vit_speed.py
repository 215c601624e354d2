"""``python -m jaxlth.bench train --model vit_tiny``: Vision Transformer training throughput.

The ViT ``--model`` (``vit``, ``vit_tiny``, ``vit_small``, ``vit_base``; ``--model-options
width=64,depth=4`` for a smaller one) on CIFAR-10-shaped data (random 32x32x3 uint8 images, CIFAR
augmentation on the device), batch ``--batch-size``, AdamW (lr 1e-3, weight decay 0.05), for each
``R`` in ``--replicates`` (default 1, 2, 4) vmapped replicates:

* steps/s and images/s per replicate of jaxlth's masked, resumable step (``Program.train_chunk``
  with a mask applied to gradients and weights, as every IMP level trains), the achieved GFLOP/s
  (XLA's cost analysis of one compiled step) and the memory that step needs;
* at ``R = 1``, the same model, optimizer, batches and augmentation in a plain Flax + optax loop
  (one jitted step per call, no masks: :class:`jaxlth.bench.conv_speed.PlainLoop`), and the ratio.

Timings exclude compilation and take the best of ``--repeats`` runs of ``--steps`` steps.
"""

from __future__ import annotations

import dataclasses

from jaxlth import models
from jaxlth.bench import conv_speed
from jaxlth.fields import common_config
from jaxlth.training import optim
from jaxlth.training.program import Program, Spec
from jaxlth.training.setup import optimizer, step_loop

DEFAULT_REPLICATES = "1,2,4"


def parse_options(text: str) -> dict:
    """``"width=64,depth=4,pool=mean"`` -> ``{"width": 64, "depth": 4, "pool": "mean"}``."""
    options = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        options[key.strip()] = int(value) if value.strip().lstrip("-").isdigit() else value.strip()
    return options


def program_for(name: str, options: dict, num_train: int, batch_size: int) -> Program:
    """jaxlth's program of the ViT ``name`` with ``options``, AdamW, on CIFAR-10-shaped images."""
    c = common_config()
    c.train.optimizer, c.train.lr, c.train.weight_decay = "adamw", 1e-3, 0.05
    steps_per_epoch = max(1, num_train // batch_size)
    spec = Spec(
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
        num_train=num_train,
        image_shape=(32, 32, 3),
        mean=conv_speed.CIFAR_MEAN,
        std=conv_speed.CIFAR_STD,
        pixel_scale=255.0,
        augmentation="cifar",
        eval_batch_size=min(1000, num_train),
    )
    model = models.get_model(name, 10, **options)
    spec = dataclasses.replace(spec, step_loop=step_loop(model, spec))
    return Program(model, optimizer(c.train, model, spec), optim.make_schedule(c.train, steps_per_epoch, 10**6), spec)


def suite(args) -> None:
    name = args.model
    options = dict(getattr(args, "model_options", None) or {})
    counts = [int(x) for x in (getattr(args, "replicates", None) or DEFAULT_REPLICATES).split(",") if x]
    batch, steps, repeats = args.batch_size, args.steps, args.repeats
    data = conv_speed.cifar_shaped(args.train_size, num_test=min(1000, args.train_size))
    program = program_for(name, options, args.train_size, batch)
    shown = f"{name}({', '.join(f'{k}={v}' for k, v in options.items())})" if options else name
    print(
        f"\n{shown} on CIFAR-10-shaped data ({args.train_size} images, batch {batch}, CIFAR augmentation), AdamW, "
        f"{steps} steps per timed run, best of {repeats}; step loop {program.spec.step_loop}"
    )
    print(
        "| model | R | steps/s per replicate | images/s per replicate | images/s all | vs R=1 | GFLOP/s | step memory |"
    )
    print("|---|---|---|---|---|---|---|---|")
    one = None
    for r in counts:
        m = conv_speed.measure(program, data, r, steps, repeats)
        per = m["images_per_s"]
        one = one or per * r
        print(
            f"| {name} | {r} | {per / batch:.2f} | {per:,.1f} | {per * r:,.1f} | {per * r / one:.2f}x | "
            f"{m['flops_per_step'] * steps / m['seconds'] / 1e9:.1f} | {m['bytes'] / 2**20:,.0f} MiB |",
            flush=True,
        )
    plain = conv_speed.measure_plain(program, data, steps, repeats)
    mine = conv_speed.measure(program, data, 1, steps, repeats)
    per = plain["images_per_s"]
    print(f"| {name}, plain Flax + optax loop | 1 | {per / batch:.2f} | {per:,.1f} | | | | |")
    ratio = mine["images_per_s"] / per
    print(f"\n{name}: jaxlth / plain loop (R=1) = {ratio:.2f}x (target >= 0.9x)", flush=True)
