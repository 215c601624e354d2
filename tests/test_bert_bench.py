"""``python -m jaxlth.bench train --model bert...`` (jaxlth/bench/bert_speed.py): its SST-2-shaped tokens, its
plain Flax + optax reference computing what jaxlth's step computes (dropout keys included), and its table."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlth import bench, rng
from jaxlth.bench import bert_speed
from jaxlth.pruning import masks as mask_lib
from jaxlth.training import functions as fn
from jaxlth.training.program import to_device

TINY = {"hidden": 32, "layers": 1, "heads": 2, "intermediate": 64}


def test_sst2_shaped_tokens_are_a_cls_pair_sep_padded_with_zeros():
    data = bert_speed.sst2_shaped(200, 20, length=32)
    ids, types = data.train_images[:, 0], data.train_images[:, 1]
    assert data.train_images.shape == (200, 2, 32) and data.train_images.dtype == np.int32
    real = (ids != bert_speed.PAD).sum(1)
    assert real.min() >= bert_speed.MIN_REAL and real.max() <= 16
    for row, n, kinds in zip(ids, real, types):
        assert (row[n:] == bert_speed.PAD).all() and (row[:n] != bert_speed.PAD).all()  # padding only at the end
        assert (
            row[0] == bert_speed.CLS and row[n - 1] == bert_speed.SEP and (row[1 : n - 1] == bert_speed.SEP).sum() == 1
        )
        sep = int(np.flatnonzero(row[1 : n - 1] == bert_speed.SEP)[0]) + 1
        assert (kinds[: sep + 1] == 0).all() and (kinds[sep + 1 : n] == 1).all() and (kinds[n:] == 0).all()
    assert set(np.unique(data.train_labels)) == {0, 1}
    assert bert_speed.mean_real_tokens(data) == pytest.approx(real.mean())


def test_the_plain_loop_computes_jaxlths_steps_with_the_same_dropout():
    data = bert_speed.sst2_shaped(64, 16, length=32)
    program = bert_speed.program_for("bert", TINY, data, batch_size=8)
    device = to_device(data)
    state = program.init(rng.replicate_keys(0, 1, rng.INIT), rng.replicate_keys(0, 1, rng.DATA))
    state, _ = program.train_chunk(state, mask_lib.ones_like(state.params, ("output",)), device, 0, num_steps=3)
    params, batch_stats = fn.init(program.model, program.spec, rng.replicate_keys(0, 1, rng.INIT)[0])
    plain = bert_speed.PlainBertLoop(program)
    out = plain.train(params, batch_stats, program.tx.init(params), device, rng.replicate_keys(0, 1, rng.DATA)[0], 0, 3)
    for ours, theirs in zip(jax.tree.leaves(state.params), jax.tree.leaves(out[0])):
        np.testing.assert_allclose(ours[0], theirs, atol=1e-6)
    # dropout acts: the shared keys, not its absence, make the two agree
    first_epoch, perms = program._chunk_perms(state.data_key, 0, num_epochs=program._epochs(1))
    x, _, key = plain.batch(device.train_images, device.train_labels, state.data_key[0], perms[0], first_epoch, 0)
    params = out[0]
    train = program.model.apply({"params": params}, x, train=True, rngs={"dropout": key})
    assert not jnp.allclose(train, program.model.apply({"params": params}, x, train=False))


def test_the_bert_bench_prints_a_row_per_replicate_count_and_the_plain_ratio(capsys):
    options = ",".join(f"{k}={v}" for k, v in TINY.items())
    bench.main(
        ["train", "--model", "bert", "--model-options", options, "--replicates", "1,2", "--batch", "4"]
        + ["--steps", "2", "--repeats", "1", "--train-size", "32"]
    )
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("bert(hidden=32, layers=1, heads=2, intermediate=64) on SST-2-shaped") for line in lines)
    rows = [line.split(" | ") for line in lines if line.startswith("| bert | ")]
    assert [row[1] for row in rows] == ["1", "2"] and rows[0][7] == "1.00x"
    for row in rows:
        steps, examples, real, padded = (float(row[i].replace(",", "")) for i in (2, 3, 4, 5))
        assert examples == pytest.approx(4 * steps, rel=0.01) and padded == pytest.approx(128 * examples, rel=0.01)
        assert 0 < real < padded and "MiB" in row[9]
    assert any(line.startswith("| bert, plain Flax + optax loop | 1 | ") for line in lines)
    assert any(line.startswith("bert: jaxlth / plain loop (R=1) = ") for line in lines)
