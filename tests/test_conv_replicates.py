"""Conv nets on a CPU train and evaluate one replicate at a time (``step_loop="replicates"``): each
replicate runs a one-replicate run's compiled program, so it equals that run bitwise and the vmapped
program up to rounding; accelerators keep the vmapped program."""

import dataclasses
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlth import models, rng
from jaxlth.fields import common_config
from jaxlth.pruning import masks
from jaxlth.training import history, memory, optim, per_replicate
from jaxlth.training import setup as setup_lib
from jaxlth.training.program import DeviceData, Program, Spec
from jaxlth.training.state import with_examples
from jaxlth.training.streamed import StreamProgram
from tests.conftest import ROOT, xla_flags

NUM_TRAIN, BATCH, STEPS = 64, 8, 3
# The vmapped program sums in another order (grouped convolutions): after these steps the largest
# difference observed is 1.7e-6 (R = 3), a tenth of this tolerance.
RTOL, ATOL = 1e-4, 1e-5


def program(step_loop: str = "replicates", cls=Program, **extra) -> Program:
    """A ResNet-8 (BatchNorm) of width 4 on 8x8 images, with the CIFAR recipes' SGD."""
    train = common_config().train
    train.lr, train.momentum, train.weight_decay = 0.1, 0.9, 1e-4
    spec = Spec(
        batch_size=BATCH,
        steps_per_epoch=NUM_TRAIN // BATCH,
        num_train=NUM_TRAIN,
        image_shape=(8, 8, 3),
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        pixel_scale=255.0,
        augmentation="cifar",
        eval_batch_size=16,
        step_loop=step_loop,
    )
    model = models.get_model("resnet_cifar", 10, depth=8, width=4)
    schedule = optim.make_schedule(train, spec.steps_per_epoch, 100)
    return cls(model, optim.make_optimizer(train), schedule, spec, **extra)


@pytest.fixture(scope="module")
def data() -> DeviceData:
    generator = np.random.default_rng(0)
    return DeviceData(
        jnp.asarray(generator.integers(0, 256, (NUM_TRAIN, 8, 8, 3), dtype=np.uint8)),
        jnp.asarray(generator.integers(0, 10, NUM_TRAIN), jnp.int32),
        jnp.asarray(generator.integers(0, 256, (32, 8, 8, 3), dtype=np.uint8)),
        jnp.asarray(generator.integers(0, 10, 32), jnp.int32),
    )


@pytest.fixture(scope="module")
def programs():
    return {loop: program(loop) for loop in ("replicates", "host")}


def keys(replicates: int, first: int = 0):
    """The init and data keys of replicates ``first ..``: replicate ``r`` of a run of ``first + replicates``."""
    init, data = (rng.replicate_keys(0, first + replicates, s)[first:] for s in (rng.INIT, rng.DATA))
    return init, data


def trained(program: Program, data: DeviceData, replicates: int, first: int = 0, chunks=((0, STEPS),)) -> dict:
    """The state, the chunks' mean metrics and the evaluations after training, as numpy arrays."""
    state = program.init(*keys(replicates, first))
    mask = jax.tree.map(lambda m: m.at[..., ::2].set(False), masks.ones_like(state.params, ("output",)))
    metrics = []
    for start, count in chunks:
        state, chunk = program.train_chunk(state, mask, data, start, num_steps=count)
        metrics.append(chunk)
    out = {
        "state": state,
        "metrics": metrics,
        "test": program.evaluate_data(state.params, state.batch_stats, data, "test"),
        "splits": program.evaluate_splits(state.params, state.batch_stats, data, ("test", "train")),
    }
    return jax.tree.map(np.asarray, out)


def assert_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def assert_close(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=RTOL, atol=ATOL)


def test_conv_nets_on_a_cpu_train_one_replicate_at_a_time(programs, monkeypatch):
    cpu = jax.default_backend() == "cpu"
    assert setup_lib.step_loop(programs["host"].model, programs["host"].spec) == ("replicates" if cpu else "scan")
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")  # accelerators keep the vmapped scan
    assert setup_lib.step_loop(programs["host"].model, programs["host"].spec) == "scan"


@pytest.mark.parametrize("replicates", [1, 2, 3])
def test_one_at_a_time_equals_the_vmapped_program(programs, data, replicates):
    alone, vmapped = (trained(programs[loop], data, replicates) for loop in ("replicates", "host"))
    assert alone["state"].params["stem_conv"]["kernel"].shape[0] == replicates
    if replicates == 1:  # the same compiled programs
        assert_equal(alone, vmapped)
    else:  # the vmapped program's grouped convolutions sum in another order
        assert_close(alone, vmapped)


def test_three_replicates_are_bitwise_three_one_replicate_runs(programs, data):
    together = trained(programs["replicates"], data, 3)
    for r in range(3):
        alone = trained(programs["replicates"], data, 1, first=r)
        assert_equal(alone, jax.tree.map(lambda x: x[r : r + 1], together))


def test_chunks_cut_anywhere_give_the_same_bits(programs, data):
    whole = trained(programs["replicates"], data, 2, chunks=((0, 5),))
    cut = trained(programs["replicates"], data, 2, chunks=((0, 1), (1, 3), (4, 1)))
    assert_equal(whole["state"], cut["state"])
    assert_equal(whole["test"], cut["test"])


def test_the_history_of_chosen_examples_is_each_replicates(programs, data):
    """An ExampleState (chosen examples, forgetting events) trains one replicate at a time too."""
    base = programs["replicates"]
    spec = dataclasses.replace(base.spec, num_train=32, steps_per_epoch=4)
    chosen = Program(base.model, base.tx, base.schedule, spec)
    examples = np.stack([np.arange(32), np.arange(32, 64)]).astype(np.int32)

    def run(replicates, first=0):
        state = chosen.init(*keys(replicates, first))
        state = with_examples(state, examples[first : first + replicates], history.empty(NUM_TRAIN, replicates))
        state, _ = chosen.train_chunk(state, {}, data, 0, num_steps=6)
        return jax.tree.map(np.asarray, state)

    together = run(2)
    assert together.history["presentations"].sum() == 2 * 6 * BATCH
    for r in range(2):
        assert_equal(run(1, first=r), jax.tree.map(lambda x: x[r : r + 1], together))


def test_accelerators_keep_the_vmapped_programs(data):
    scan = program("scan")
    assert scan.evaluate is scan._evaluate and scan.evaluate_metrics is scan._evaluate_metrics
    assert hasattr(scan._chunk, "lower")  # one jitted chunk: vmap inside one loop
    host = program("host")
    assert host.train_chunk == host._train_chunk_on_host and host.evaluate is host._evaluate
    assert_close(trained(scan, data, 2), trained(program("replicates"), data, 2))


def test_a_streamed_chunk_runs_one_replicate_at_a_time(programs, data):
    """The streamed program's host batches ``(T, R, B, ...)`` are cut per replicate too."""
    alone, vmapped = (program(loop, cls=StreamProgram, stream=None, mesh=None) for loop in ("replicates", "host"))
    generator = np.random.default_rng(1)
    images = jnp.asarray(generator.integers(0, 256, (STEPS, 3, BATCH, 8, 8, 3), dtype=np.uint8))
    labels = jnp.asarray(generator.integers(0, 10, (STEPS, 3, BATCH)), jnp.int32)

    def run(p, first, count):
        state = p.init(*keys(count, first))
        x, y = images[:, first : first + count], labels[:, first : first + count]
        return jax.tree.map(np.asarray, p._train_given(state, {}, x, y, jnp.int32(0)))

    together = run(alone, 0, 3)
    for r in range(3):
        assert_equal(run(alone, r, 1), jax.tree.map(lambda x: x[r : r + 1], together))
    assert_close(together, run(vmapped, 0, 3))


def test_one_network_at_a_time_holds_one_batchs_activations(programs, data):
    """Memory: the programs are one network's; each network adds its state and mask and their copies."""
    alone, vmapped = (memory.measure(programs[loop], data, num_steps=STEPS) for loop in ("replicates", "host"))
    shapes = jax.eval_shape(programs["replicates"].init, *keys(1))
    state = memory.state_bytes(shapes)
    mask = memory.state_bytes(jax.eval_shape(lambda p: masks.ones_like(p), shapes.params))
    assert alone.training.per_network == 4 * state + 2 * mask  # the kept copy, stacked, split and stacked back
    assert alone.training.shared > vmapped.training.shared  # one batch's activations, once
    assert alone.evaluation.per_network < vmapped.evaluation.per_network


def test_replicates_are_cut_and_stacked_back():
    assert per_replicate.on_one_device({"a": jnp.zeros(3), "b": np.zeros(2)})
    parts = per_replicate.split({"a": jnp.arange(6).reshape(3, 2)}, count=3)
    assert [p["a"].tolist() for p in parts] == [[[0, 1]], [[2, 3]], [[4, 5]]]
    np.testing.assert_array_equal(per_replicate.stack(parts)["a"], np.arange(6).reshape(3, 2))


SHARDED = r"""
import json, jax, numpy as np
from jaxlth import sharding
from tests import test_conv_replicates as t
p, data = t.program(), t.data.__wrapped__()
mesh = sharding.replica_mesh(2)
placed = p.init(*t.keys(2))
sharded, _ = p.train_chunk(sharding.shard_replicas(placed, mesh), {}, sharding.replicate(data, mesh), 0, num_steps=2)
alone, _ = p.train_chunk(p.init(*t.keys(2)), {}, data, 0, num_steps=2)
loss = p.evaluate(sharded.params, sharded.batch_stats, data.test_images, data.test_labels)[0]
print(json.dumps({
    "devices": [len(x.sharding.device_set) for x in (sharded.params["output"]["kernel"], loss)],
    "difference": max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                      for a, b in zip(jax.tree.leaves(sharded), jax.tree.leaves(alone))),
}))
"""


@pytest.mark.slow
def test_replicates_sharded_over_devices_keep_the_vmapped_step():
    env = dict(os.environ, XLA_FLAGS=xla_flags("--xla_force_host_platform_device_count=2"), JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SHARDED], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["devices"] == [2, 2]  # each device trained and evaluated its replicate
    assert out["difference"] < ATOL


def test_interpolation_evaluates_one_network_at_a_time(programs, data):
    """The analyses' line between two networks (jaxlth.analysis.interpolation) too, BatchNorm recomputed."""
    from jaxlth.analysis import interpolation

    state = programs["host"].init(*keys(2))
    net = {"params": state.params, "batch_stats": state.batch_stats}
    other = jax.tree.map(lambda x: x[::-1], net)
    batches = data.train_images[:16].reshape(2, 8, 8, 8, 3)
    test = (data.test_images, data.test_labels)
    curves = [
        interpolation.interpolate(programs[loop], net, other, [0.0, 0.3, 1.0], *test, bn_batches=batches)
        for loop in ("replicates", "host")
    ]
    assert curves[0]["loss"].shape == (2, 3)
    assert_close(curves[0], curves[1])
