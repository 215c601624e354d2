"""``python -m jaxlth.bench train --model bert_mini``: BERT fine-tuning throughput on SST-2-shaped tokens.

The BERT ``--model`` (``bert``, ``bert_tiny``, ``bert_mini``, ``bert_small``, ``bert_medium``,
``bert_base``; ``--model-options`` such as ``hidden=128,layers=2,heads=2,intermediate=512`` for ``bert``)
with a 2-class head, dropout 0.1, on random token data of SST-2's shape: ``--train-size`` examples
(default 67,349, SST-2's training set) of ``T = 128`` tokens, each ``[CLS] a [SEP] b [SEP]`` of a random
length in ``[8, T/2]`` (token types 0, then 1), padded with ``[PAD] = 0`` to ``T``; random labels.
AdamW (lr 2e-5, eps 1e-8, no weight decay) with the linear decay of ``configs/bert_glue.py``, batch
``--batch-size`` (default 32), ``--dtype`` (float32; bfloat16 is the recipe's on an accelerator). For
each ``R`` in ``--replicates`` (default 1, 2, 4) vmapped replicates:

* steps/s and examples/s per replicate of jaxlth's masked, resumable step (``Program.train_chunk``
  with a mask on every kernel but the classifier's applied to gradients and weights, as every IMP level
  trains; dropout keyed by stream ``DROPOUT``), and tokens/s per replicate two ways: *padded* (every
  one of the ``T`` positions a step computes: examples/s x ``T``) and *real* (the non-``[PAD]`` tokens:
  examples/s x the data's mean real length, the batches being uniform draws of it);
* the achieved GFLOP/s (XLA's cost analysis of one compiled step) and the memory that step needs;
* at ``R = 1``, the same encoder, optimizer, schedule, batches and dropout keys in a plain Flax +
  optax loop (one jitted step per call, no masks: :class:`PlainBertLoop`), and the ratio.

Timings exclude compilation and take the best of ``--repeats`` runs of ``--steps`` steps.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlth import models
from jaxlth.bench import conv_speed
from jaxlth.data.dataset import Dataset, Text
from jaxlth.fields import common_config
from jaxlth.training import functions as fn
from jaxlth.training import optim
from jaxlth.training.program import DeviceData, Program, Spec, to_device
from jaxlth.training.setup import optimizer, step_loop

MODELS = ("bert", *models.BERT_SIZES)
DEFAULT_BATCH = 32  # configs/bert_glue.py
SST2_TRAIN, SST2_DEV = 67_349, 872  # SST-2's training and dev sets (examples)
LENGTH = 128  # T: data.max_length of configs/bert_glue.py
VOCAB = 30_522  # bert-base-uncased; [PAD] 0, [CLS] 101, [SEP] 102, [MASK] 103; words from 999 on
PAD, CLS, SEP, MASK, FIRST_WORD = 0, 101, 102, 103, 999
MIN_REAL = 8  # the shortest example, in real tokens
EPOCHS = 3  # the recipe's train.steps: the linear decay ends there


def is_bert(name: str) -> bool:
    return name in MODELS


def text_of(length: int = LENGTH) -> Text:
    """What the tokens mean: a 2-class GLUE task (SST-2) of ``length`` tokens."""
    return Text(
        objective="classify",
        metrics=("accuracy",),
        vocab_size=VOCAB,
        pad_id=PAD,
        cls_id=CLS,
        sep_id=SEP,
        mask_id=MASK,
        max_length=length,
    )


def _split(generator: np.random.Generator, n: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 2, length)`` int32 ids and types, ``(n,)`` int32 labels."""
    real = generator.integers(MIN_REAL, length // 2 + 1, n)  # [CLS] a [SEP] b [SEP]
    sep = generator.integers(2, real - 2)  # the first [SEP]: a and b hold at least one token each
    position = np.arange(length)[None]
    ids = generator.integers(FIRST_WORD, VOCAB, (n, length), dtype=np.int32)
    ids[:, 0] = CLS
    ids[np.arange(n), sep] = ids[np.arange(n), real - 1] = SEP
    inside = position < real[:, None]
    ids = np.where(inside, ids, PAD).astype(np.int32)
    types = ((position > sep[:, None]) & inside).astype(np.int32)
    return np.stack([ids, types], axis=1), generator.integers(0, 2, n).astype(np.int32)


def sst2_shaped(num_train: int = SST2_TRAIN, num_test: int = SST2_DEV, length: int = LENGTH) -> Dataset:
    """Random token data of SST-2's shape (module docstring); the arithmetic does not depend on the ids."""
    generator = np.random.default_rng(0)
    train, test = _split(generator, num_train, length), _split(generator, num_test, length)
    return Dataset(
        name="sst2",
        train_images=train[0],
        train_labels=train[1],
        test_images=test[0],
        test_labels=test[1],
        num_classes=2,
        mean=(0.0,),
        std=(1.0,),
        pixel_scale=1.0,
        augmentation="none",
        source="random tokens",
        text=text_of(length),
    )


def mean_real_tokens(dataset: Dataset) -> float:
    """The mean number of non-``[PAD]`` tokens of a training example."""
    return float(np.mean(np.sum(dataset.train_images[:, 0] != dataset.text.pad_id, axis=1)))


def program_for(name: str, options: dict, dataset: Dataset, batch_size: int, dtype: str = "float32") -> Program:
    """jaxlth's program of the BERT ``name`` with ``options`` (a 2-class head, dropout 0.1), AdamW lr 2e-5
    and the linear decay over 3 epochs, as ``configs/bert_glue.py`` fine-tunes it."""
    c = common_config()
    c.train.optimizer, c.train.lr, c.train.eps, c.train.schedule = "adamw", 2e-5, 1e-8, "linear"
    steps_per_epoch = max(1, dataset.num_train // batch_size)
    spec = Spec(
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
        num_train=dataset.num_train,
        image_shape=dataset.image_shape,
        mean=tuple(dataset.mean),
        std=tuple(dataset.std),
        pixel_scale=float(dataset.pixel_scale),
        augmentation=dataset.augmentation,
        eval_batch_size=min(256, dataset.num_test),
        dtype=dtype,
        text=dataset.text,
    )
    model = models.get_model(name, dataset.num_classes, **{"dropout": 0.1, **options})
    spec = dataclasses.replace(spec, step_loop=step_loop(model, spec))
    schedule = optim.make_schedule(c.train, steps_per_epoch, EPOCHS * steps_per_epoch)
    return Program(model, optimizer(c.train, model, spec), schedule, spec)


class PlainBertLoop(conv_speed.PlainLoop):
    """:class:`~jaxlth.bench.conv_speed.PlainLoop` for BERT: one jitted Flax + optax step per call, no
    masks, the program's batches, and dropout driven by ``rngs={"dropout": key}`` with the key jaxlth's
    step uses (:func:`jaxlth.training.functions.dropout_key` of the data key and the step)."""

    def __init__(self, program: Program):
        self.program = program
        spec = program.spec
        computing = fn.computing_in(program.model, spec.dtype)

        def loss_fn(params, x, y, key):
            logits = computing.apply({"params": params}, x, train=True, rngs={"dropout": key})
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        def step(params, opt_state, x, y, lr, key):
            loss, grads = jax.value_and_grad(loss_fn)(params, x, y, key)
            updates, opt_state = program.tx.update(grads, opt_state, params)
            params = jax.tree.map(lambda p, u: p - (lr * u).astype(p.dtype), params, updates)
            return params, opt_state, loss

        def batch(images, labels, data_key, perms, first_epoch, step):
            x, y, _ = fn.train_batch(images, labels, data_key, perms, first_epoch, step, spec)
            return x, y, fn.dropout_key(data_key, step, spec)

        self.step = jax.jit(step, donate_argnums=(0, 1))
        self.batch = jax.jit(batch)

    def train(self, params, batch_stats, opt_state, data: DeviceData, data_key, start: int, num_steps: int):
        """``num_steps`` steps from ``start``; returns the state and the ``(num_steps,)`` losses."""
        first_epoch, perms = self.program._chunk_perms(
            data_key[None], start, num_epochs=self.program._epochs(num_steps)
        )
        losses = []
        for step in range(start, start + num_steps):
            x, y, key = self.batch(
                data.train_images, data.train_labels, data_key, perms[0], first_epoch, jnp.int32(step)
            )
            params, opt_state, loss = self.step(params, opt_state, x, y, self.program.schedule(step), key)
            losses.append(loss)
        return params, batch_stats, opt_state, jnp.stack(losses)


def suite(args) -> None:
    name, options = args.model, dict(getattr(args, "model_options", None) or {})
    counts = [int(x) for x in args.replicates.split(",") if x]
    batch, steps, repeats, dtype = args.batch_size, args.steps, args.repeats, getattr(args, "dtype", "float32")
    dataset = sst2_shaped(args.train_size, min(SST2_DEV, args.train_size))
    data, program = to_device(dataset), program_for(name, options, dataset, batch, dtype)
    real, length = mean_real_tokens(dataset), dataset.text.max_length
    shown = f"{name}({', '.join(f'{k}={v}' for k, v in options.items())})" if options else name
    print(
        f"\n{shown} on SST-2-shaped tokens ({dataset.num_train} examples of {length} tokens, {real:.1f} real on "
        f"average, the rest [PAD]), batch {batch}, AdamW lr 2e-5 linear decay, dropout 0.1, {dtype}, {steps} steps "
        f"per timed run, best of {repeats}; step loop {program.spec.step_loop}"
    )
    print(
        "| model | R | steps/s per replicate | examples/s per replicate | real tokens/s per replicate | "
        "padded tokens/s per replicate | padded tokens/s all | vs R=1 | GFLOP/s | step memory |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    one = None
    for r in counts:
        m = conv_speed.measure(program, data, r, steps, repeats)
        per, gflops = m["images_per_s"], m["flops_per_step"] * steps / m["seconds"] / 1e9
        one = one or per * r
        print(
            f"| {name} | {r} | {per / batch:.2f} | {per:,.1f} | {per * real:,.0f} | {per * length:,.0f} | "
            f"{per * length * r:,.0f} | {per * r / one:.2f}x | {gflops:.1f} | "
            f"{m['bytes'] / 2**20:,.0f} MiB |",
            flush=True,
        )
    plain = conv_speed.measure_plain(program, data, steps, repeats, loop=PlainBertLoop)
    mine = conv_speed.measure(program, data, 1, steps, repeats)
    per = plain["images_per_s"]
    print(
        f"| {name}, plain Flax + optax loop | 1 | {per / batch:.2f} | {per:,.1f} | {per * real:,.0f} | "
        f"{per * length:,.0f} | | | | |"
    )
    ratio = mine["images_per_s"] / per
    print(f"\n{name}: jaxlth / plain loop (R=1) = {ratio:.2f}x (target >= 0.9x)", flush=True)
