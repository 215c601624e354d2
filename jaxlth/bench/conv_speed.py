"""``python -m jaxlth.bench conv``: conv-net training throughput, where the papers spend their compute.

ResNet-20 and VGG-16 (``--models``) on CIFAR-10-shaped data (random 32x32x3 uint8 images: the
arithmetic does not depend on the values; CIFAR augmentation on the device), batch 128, for each
``R`` in ``--replicates`` vmapped replicates:

* images/s per replicate of jaxlth's masked, resumable step (``Program.train_chunk`` with a mask
  applied to gradients and weights, as every IMP level trains);
* the time of a 50,000-image CIFAR-10 epoch per replicate (all ``R`` replicates' epoch over ``R``);
* the achieved FLOP/s (XLA's cost analysis of one compiled step, times the steps per second)
  against the device's ceiling, measured as a large matrix product in the same dtype, and against
  its published dense peak (:data:`PEAK_TFLOPS`);
* the memory a compiled step needs (XLA's memory analysis: arguments + outputs + temporaries) and
  the device's peak memory so far, where it reports one (GPUs, TPUs);
* at ``R = 1``, a minimal plain Flax + optax loop on the same model, optimizer, batches and
  augmentation (one jitted step per call, no masks, no chunking): jaxlth should reach >= 0.9x;
* what ``R`` replicates cost against ``R`` times one: the time of a step of all ``R`` over ``R`` times
  that of one (``<= 1.1`` on a CPU, where conv replicates train one at a time: ``step_loop="replicates"``).

``--dtype bfloat16`` runs both in mixed precision (``train.dtype``). Timings exclude compilation
and take the best of ``--repeats`` runs of ``--steps`` steps.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlth import models, rng
from jaxlth.fields import common_config
from jaxlth.pruning import masks as mask_lib
from jaxlth.training import functions as fn
from jaxlth.training import memory, optim
from jaxlth.training.program import DeviceData, Program, Spec
from jaxlth.training.setup import optimizer, step_loop

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR_EPOCH = 50_000  # images in one CIFAR-10 training epoch

# Published dense peak TFLOP/s by device kind (a substring of jax's device_kind), for the dtype a
# program computes in: "bfloat16", and "float32" as JAX runs it at its default matmul precision
# (TF32 tensor cores on NVIDIA Ampere and Hopper, one bfloat16 pass on a TPU). Sources: NVIDIA's H100,
# H200, A100, L4 and T4 datasheets (dense, without sparsity); Google Cloud's TPU v4, v5e and v5p pages.
PEAK_TFLOPS = {
    "H100 PCIe": {"float32": 378.0, "bfloat16": 756.0},
    "H100": {"float32": 494.7, "bfloat16": 989.4},
    "H200": {"float32": 494.7, "bfloat16": 989.4},
    "A100": {"float32": 156.0, "bfloat16": 312.0},
    "L4": {"float32": 60.0, "bfloat16": 121.0},
    "T4": {"float32": 8.1, "bfloat16": 65.0},
    "TPU v4": {"float32": 275.0, "bfloat16": 275.0},
    "TPU v5 lite": {"float32": 197.0, "bfloat16": 197.0},
    "TPU v5e": {"float32": 197.0, "bfloat16": 197.0},
    "TPU v5p": {"float32": 459.0, "bfloat16": 459.0},
}


def peak_flops(device_kind: str, dtype: str) -> float | None:
    """The published dense peak FLOP/s of a device kind in ``dtype`` (None when not listed: CPUs)."""
    for kind, peaks in PEAK_TFLOPS.items():  # "H100 PCIe" is listed before "H100"
        if kind.lower() in device_kind.lower():
            return peaks[dtype] * 1e12
    return None


def peak_memory(device) -> int | None:
    """The most bytes this process has held on ``device`` so far (None where it does not say: CPUs)."""
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None


def cifar_shaped(num_train: int = 50_000, num_test: int = 1_000) -> DeviceData:
    """Random uint8 images of CIFAR-10's shape, on the device."""
    generator = np.random.default_rng(0)
    return DeviceData(
        jnp.asarray(generator.integers(0, 256, (num_train, 32, 32, 3), dtype=np.uint8)),
        jnp.asarray(generator.integers(0, 10, num_train), jnp.int32),
        jnp.asarray(generator.integers(0, 256, (num_test, 32, 32, 3), dtype=np.uint8)),
        jnp.asarray(generator.integers(0, 10, num_test), jnp.int32),
    )


def program_for(name: str, num_train: int, batch_size: int = 128, dtype: str = "float32") -> Program:
    """jaxlth's program of ``name`` with the CIFAR recipes' SGD (lr 0.1, momentum 0.9, wd 1e-4)."""
    c = common_config()
    c.train.lr, c.train.momentum, c.train.weight_decay = 0.1, 0.9, 1e-4
    steps_per_epoch = num_train // batch_size
    spec = Spec(
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
        num_train=num_train,
        image_shape=(32, 32, 3),
        mean=CIFAR_MEAN,
        std=CIFAR_STD,
        pixel_scale=255.0,
        augmentation="cifar",
        eval_batch_size=1000,
        dtype=dtype,
    )
    model = models.get_model(name, 10)
    spec = dataclasses.replace(spec, step_loop=step_loop(model, spec))
    return Program(model, optimizer(c.train, model, spec), optim.make_schedule(c.train, steps_per_epoch, 10**6), spec)


class PlainLoop:
    """The reference: one jitted Flax + optax step per call, no masks, the program's own batches."""

    def __init__(self, program: Program):
        self.program = program
        spec = program.spec
        computing = fn.computing_in(program.model, spec.dtype)

        def loss_fn(params, batch_stats, x, y):
            variables = {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}
            if batch_stats:
                logits, updates = computing.apply(variables, x, train=True, mutable=["batch_stats"])
                batch_stats = updates["batch_stats"]
            else:
                logits = computing.apply(variables, x, train=True)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), batch_stats

        def step(params, batch_stats, opt_state, x, y, lr):
            (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch_stats, x, y)
            updates, opt_state = program.tx.update(grads, opt_state, params)
            params = jax.tree.map(lambda p, u: p - (lr * u).astype(p.dtype), params, updates)
            return params, batch_stats, opt_state, loss

        def batch(images, labels, data_key, perms, first_epoch, step):
            x, y, _ = fn.train_batch(images, labels, data_key, perms, first_epoch, step, spec)
            return x, y

        self.step = jax.jit(step, donate_argnums=(0, 1, 2))
        self.batch = jax.jit(batch)

    def train(self, params, batch_stats, opt_state, data: DeviceData, data_key, start: int, num_steps: int):
        """``num_steps`` steps from ``start``; returns the state and the ``(num_steps,)`` losses."""
        first_epoch, perms = self.program._chunk_perms(
            data_key[None], start, num_epochs=self.program._epochs(num_steps)
        )
        losses = []
        for step in range(start, start + num_steps):
            x, y = self.batch(data.train_images, data.train_labels, data_key, perms[0], first_epoch, jnp.int32(step))
            params, batch_stats, opt_state, loss = self.step(
                params, batch_stats, opt_state, x, y, self.program.schedule(step)
            )
            losses.append(loss)
        return params, batch_stats, opt_state, jnp.stack(losses)


def matmul_ceiling(dtype: str, n: int = 4096, repeats: int = 5) -> float:
    """FLOP/s of an ``n x n`` matrix product in ``dtype`` on the default device."""
    a = jnp.full((n, n), 0.5, dtype)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    return 2 * n**3 / min(_timed(lambda: f(a).block_until_ready()) for _ in range(repeats))


def _timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _analysis(compiled) -> tuple[float, int]:
    """``(FLOPs, bytes)`` of a compiled program (XLA's cost and memory analyses)."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float((cost or {}).get("flops", 0.0)), memory.program_bytes(compiled)


def measure(program: Program, data: DeviceData, replicates: int, num_steps: int, repeats: int) -> dict:
    """jaxlth's masked step: images/s per replicate, FLOPs and bytes of one step of all replicates."""
    keys = rng.replicate_keys(0, replicates, rng.INIT)
    state = program.init(keys, rng.replicate_keys(0, replicates, rng.DATA))
    mask = mask_lib.ones_like(state.params, ("output",))
    state, _ = program.train_chunk(state, mask, data, 0, num_steps=num_steps)  # compile
    jax.block_until_ready(state)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        state, _ = program.train_chunk(state, mask, data, 0, num_steps=num_steps)
        jax.block_until_ready(state)
        best = min(best, time.perf_counter() - start)
    first_epoch, perms = program._chunk_perms(state.data_key, 0, num_epochs=program._epochs(1))
    alone = program.spec.step_loop == "replicates"  # one replicate's step, run for each replicate

    def run(tree):
        return jax.tree.map(lambda x: x[:1], tree) if alone else tree

    args = (run(state), run(mask), run(perms), first_epoch, jnp.int32(0), data)
    flops, needed = _analysis(jax.jit(program._one_step_of_all).lower(*args).compile())
    if alone:
        flops, needed = flops * replicates, needed + program.held_bytes((state, mask), state)
    return {
        "seconds": best,
        "images_per_s": program.spec.batch_size * num_steps / best,
        "flops_per_step": flops,
        "bytes": needed,
    }


def measure_plain(program: Program, data: DeviceData, num_steps: int, repeats: int, loop=None) -> dict:
    """The plain loop's images/s (one replicate; the same initialisation and data key as jaxlth's).
    ``loop``: the plain loop's class (default :class:`PlainLoop`)."""
    plain = (loop or PlainLoop)(program)
    params, batch_stats = fn.init(program.model, program.spec, rng.replicate_keys(0, 1, rng.INIT)[0])
    opt_state = program.tx.init(params)
    data_key = rng.replicate_keys(0, 1, rng.DATA)[0]
    out = plain.train(params, batch_stats, opt_state, data, data_key, 0, num_steps)
    jax.block_until_ready(out)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = plain.train(*out[:3], data, data_key, 0, num_steps)
        jax.block_until_ready(out)
        best = min(best, time.perf_counter() - start)
    return {"seconds": best, "images_per_s": program.spec.batch_size * num_steps / best}


def suite(args) -> None:
    device = jax.devices()[0]
    dtype = args.dtype
    data = cifar_shaped(args.train_size)
    ceiling, peak = matmul_ceiling(dtype), peak_flops(device.device_kind, dtype)
    counts = [int(x) for x in args.replicates.split(",") if x]
    peak_text = f"published peak {peak / 1e12:.0f} TFLOP/s" if peak else "no published peak listed"
    print(
        f"\nconv nets on CIFAR-10-shaped data ({args.train_size} images, batch 128, CIFAR augmentation), {dtype}, "
        f"{args.steps} steps per timed run, best of {args.repeats}; {device.device_kind}: matmul ceiling "
        f"{ceiling / 1e12:.2f} TFLOP/s ({dtype}), {peak_text}"
    )
    print(
        "| model | R | step loop | images/s per replicate | images/s all | vs R=1 | CIFAR-10 epoch, s per replicate | "
        "TFLOP/s | % of matmul ceiling | % of peak | step memory | peak memory so far |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        program = program_for(name, args.train_size, dtype=dtype)
        one, rows = None, {}
        for r in counts:
            m = measure(program, data, r, args.steps, args.repeats)
            per = m["images_per_s"]
            one = one or per * r
            rows[r] = {"epoch": CIFAR_EPOCH / (per * r), "speedup": per * r / one, "step": m["seconds"] / args.steps}
            achieved = m["flops_per_step"] * args.steps / m["seconds"]
            used = peak_memory(device)
            print(
                f"| {name} | {r} | {program.spec.step_loop} | {per:,.0f} | {per * r:,.0f} | {per * r / one:.2f}x | "
                f"{rows[r]['epoch']:.2f} | {achieved / 1e12:.3f} | {100 * achieved / ceiling:.0f}% | "
                f"{f'{100 * achieved / peak:.1f}%' if peak else '-'} | {m['bytes'] / 2**20:,.0f} MiB | "
                f"{f'{used / 2**20:,.0f} MiB' if used else '-'} |",
                flush=True,
            )
        base = counts[0]
        for r in counts[1:]:
            ratio = rows[r]["step"] / (r / base * rows[base]["step"])
            times = f"{r} times one" if base == 1 else f"{r / base:g} times {base}"
            print(f"{name}: {r} replicates cost {ratio:.2f} x {times} (target <= 1.1 on a CPU)", flush=True)
        plain = measure_plain(program, data, args.steps, args.repeats)
        mine = measure(program, data, 1, args.steps, args.repeats)
        print(f"| {name} plain Flax + optax loop | 1 | step per call | {plain['images_per_s']:,.0f} | | | | | | | | |")
        print(
            f"\n{name}: jaxlth / plain loop (R=1) = {mine['images_per_s'] / plain['images_per_s']:.2f}x "
            "(target >= 0.9x)",
            flush=True,
        )
        if name == "resnet20" and 8 in rows:
            print(
                f"{name} at R=8: a CIFAR-10 epoch in {rows[8]['epoch']:.2f} s per replicate (target <= 2 s); "
                f"8 replicates at {rows[8]['speedup']:.2f}x the images/s of one (target >= 4x)\n",
                flush=True,
            )
