"""The conv benchmark's reference loop trains like jaxlth's step; mixed precision (train.dtype =
bfloat16) trains, keeps float32 master weights and keeps pruned weights exactly zero; conv nets on a
CPU run their steps one compiled call each (XLA:CPU is ~30x slower with convolutions in a loop), one
replicate at a time (tests/test_conv_replicates.py)."""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from jaxlth import rng
from jaxlth.bench import conv_speed as conv
from jaxlth.pruning import masks as mask_lib
from jaxlth.training import functions as fn
from tests.conftest import tiny_config

STEPS = 8


@pytest.fixture(scope="module")
def data():
    return conv.cifar_shaped(num_train=512, num_test=64)


def jaxlth_losses(program, data, mask_of=None):
    state = program.init(rng.replicate_keys(0, 1, rng.INIT), rng.replicate_keys(0, 1, rng.DATA))
    mask = mask_of(state.params) if mask_of else {}
    losses = []
    for step in range(STEPS):
        state, (loss, _) = program.train_chunk(state, mask, data, step, num_steps=1)
        losses.append(float(loss[0]))
    return state, mask, np.array(losses)


def test_the_plain_loop_trains_like_jaxlths_step(data):
    program = conv.program_for("lenet_300_100", 512)
    _, _, mine = jaxlth_losses(program, data)
    plain = conv.PlainLoop(program)
    params, batch_stats = fn.init(program.model, program.spec, rng.replicate_keys(0, 1, rng.INIT)[0])
    out = plain.train(
        params, batch_stats, program.tx.init(params), data, rng.replicate_keys(0, 1, rng.DATA)[0], 0, STEPS
    )
    np.testing.assert_allclose(np.asarray(out[3]), mine, rtol=1e-5)
    assert mine[-1] < mine[0]


def half_pruned(params):
    mask = mask_lib.ones_like(params, ("output",))
    return jax.tree.map(lambda m: m.at[..., ::2].set(False), mask)


@pytest.mark.parametrize("name", ["lenet_300_100", "resnet20"])
def test_bfloat16_trains_keeps_float32_weights_and_pruned_weights_zero(data, name):
    program = conv.program_for(name, 512, batch_size=32, dtype="bfloat16")
    state, mask, losses = jaxlth_losses(program, data, half_pruned)
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    for leaf in jax.tree.leaves(state.params) + jax.tree.leaves(state.opt_state) + jax.tree.leaves(state.batch_stats):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            assert leaf.dtype == jnp.float32  # master weights, optimizer state, BatchNorm statistics
    weights = traverse_util.flatten_dict(dict(state.params))
    for path, keep in traverse_util.flatten_dict(dict(mask)).items():
        assert not np.any(np.asarray(weights[path])[~np.asarray(keep)])  # pruned weights exactly zero
    float32 = conv.program_for(name, 512, batch_size=32)
    _, _, reference = jaxlth_losses(float32, data, half_pruned)
    assert not np.array_equal(losses, reference)  # the dtype is in effect ...
    np.testing.assert_allclose(losses[:3], reference[:3], rtol=0.02)  # ... and close to float32 (before
    # random-label SGD at lr 0.1 lets the two trajectories drift apart)


def test_conv_nets_on_a_cpu_loop_on_the_host_and_dense_nets_scan():
    from jaxlth.training import setup as setup_lib

    for name, loop in (("conv2", "replicates"), ("resnet20", "replicates"), ("lenet_300_100", "scan"), ("vit", "scan")):
        program = conv.program_for(name, 512)
        assert program.spec.step_loop == (loop if jax.default_backend() == "cpu" else "scan"), name
    config = tiny_config(**{"train.dtype": "bfloat16"})
    assert setup_lib.build(config).program.spec.dtype == "bfloat16"


def test_a_chunk_on_the_host_equals_its_steps_one_by_one(data):
    """The host loop's chunks are cut anywhere without changing a bit (resume stays exact)."""
    program = conv.program_for("conv2", 512, batch_size=16)
    keys = rng.replicate_keys(0, 1, rng.INIT), rng.replicate_keys(0, 1, rng.DATA)
    whole, _ = program.train_chunk(program.init(*keys), {}, data, 0, num_steps=3)
    state = program.init(*keys)
    for start, count in ((0, 1), (1, 2)):
        state, _ = program.train_chunk(state, {}, data, start, num_steps=count)
    for a, b in zip(jax.tree.leaves(whole.params), jax.tree.leaves(state.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_the_conv_benchmark_prints_its_table_against_the_published_peak(capsys, monkeypatch):
    assert conv.peak_flops("NVIDIA H100 80GB HBM3", "bfloat16") == 989.4e12
    assert conv.peak_flops("NVIDIA H100 PCIe", "float32") == 378.0e12  # not the SXM part's
    assert conv.peak_flops("TPU v5 lite", "bfloat16") == 197.0e12 and conv.peak_flops("cpu", "float32") is None
    monkeypatch.setattr(conv, "matmul_ceiling", lambda dtype: 1e11)
    monkeypatch.setattr(conv, "peak_flops", lambda kind, dtype: 2e11)  # as on a listed accelerator
    # the table does not depend on the model: a dense one keeps the test fast on a CPU
    args = argparse.Namespace(
        models="lenet_300_100", replicates="1,2", steps=1, repeats=1, train_size=256, dtype="float32"
    )
    conv.suite(args)
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split(" | ") for line in lines if line.startswith("| lenet_300_100 | ")]
    assert [row[1] for row in rows] == ["1", "2"] and rows[0][5] == "1.00x"
    epoch = float(rows[0][6])  # a CIFAR-10 epoch, s per replicate, from the images/s of the same row
    assert epoch == pytest.approx(conv.CIFAR_EPOCH / float(rows[0][3].replace(",", "")), rel=0.01)
    assert float(rows[0][9].rstrip("%")) == pytest.approx(100 * float(rows[0][7]) * 1e12 / 2e11, abs=0.3)
    assert any(line.startswith("lenet_300_100: jaxlth / plain loop (R=1) = ") for line in lines)
