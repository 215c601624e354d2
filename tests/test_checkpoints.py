"""Training checkpoints: one safetensors file per step (jaxlth.checkpoint_files), saved in the background,
read back bitwise with the state's structure; steps Orbax wrote (earlier versions) are read and continued."""

import errno
import os

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import optax
import pytest

from jaxlth import checkpoint, checkpoint_files
from jaxlth.errors import UserError
from jaxlth.training.state import TrainState


def a_state(seed: int = 0) -> TrainState:
    """A train state with what real ones hold: nested dicts, optax's tuples and namedtuples, a 0-d count,
    bfloat16, uint32 keys and an empty dict."""
    rng = np.random.default_rng(seed)
    params = {"hidden_0": {"kernel": rng.standard_normal((5, 3)).astype(np.float32), "bias": np.zeros(3, np.float32)}}
    schedule = optax.linear_schedule(0.1, 0.0, 9)  # a 0-d step count in the state
    optimizer = optax.chain(optax.add_decayed_weights(1e-4), optax.sgd(schedule, momentum=0.9))
    opt_state = jax.tree.map(lambda x: x + 1, optimizer.init(jax.tree.map(jnp.asarray, params)))
    return TrainState(
        params=jax.tree.map(jnp.asarray, params),
        batch_stats={"bn": {"mean": jnp.asarray(rng.standard_normal(3), ml_dtypes.bfloat16)}},
        opt_state=opt_state,
        data_key=jnp.asarray([7, 2**32 - 1], jnp.uint32),
    )


def assert_bitwise(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert np.asarray(x).dtype == np.asarray(y).dtype and np.shape(x) == np.shape(y)
        assert np.asarray(x).tobytes() == np.asarray(y).tobytes()


def test_a_saved_state_comes_back_bitwise_with_its_structure_and_meta(tmp_path):
    state = a_state()
    saved = checkpoint.Checkpoints(str(tmp_path))
    saved.save(4, state, {"written": {"rows": 3}})
    saved.close()
    assert os.listdir(tmp_path) == ["4"] and os.listdir(tmp_path / "4") == [checkpoint_files.STATE_FILE]
    restored, meta = checkpoint.Checkpoints(str(tmp_path)).restore(4, jax.eval_shape(lambda: state))
    assert_bitwise(restored, state)
    assert isinstance(restored, TrainState) and meta == {"written": {"rows": 3}, "step": 4}
    assert checkpoint.Checkpoints(str(tmp_path)).meta(4) == meta
    count = next(x for x in jax.tree.leaves(restored.opt_state) if np.ndim(x) == 0)
    assert count.shape == () and isinstance(count, jax.Array)


def test_without_a_like_the_state_comes_back_as_nested_dicts(tmp_path):
    state = a_state()
    saved = checkpoint.Checkpoints(str(tmp_path))
    saved.save(2, state)
    saved.close()
    tree, _ = checkpoint.Checkpoints(str(tmp_path)).restore(2)
    np.testing.assert_array_equal(tree["params"]["hidden_0"]["kernel"], state.params["hidden_0"]["kernel"])
    assert tree["data_key"].dtype == np.uint32 and tree["batch_stats"]["bn"]["mean"].dtype == ml_dtypes.bfloat16
    assert {x.shape for x in jax.tree.leaves(tree["opt_state"]) if x.ndim == 0} == {()}


def test_the_newest_are_kept_and_a_partial_step_is_never_a_step(tmp_path):
    saved = checkpoint.Checkpoints(str(tmp_path), max_to_keep=2)
    for step in (1, 2, 3, 5):
        saved.save(step, a_state(step))
    saved.close()
    assert saved.all_steps() == [3, 5] and saved.latest_step() == 5
    (tmp_path / "7.partial").mkdir()  # what a process killed mid-save leaves
    (tmp_path / "7.partial" / "state.safetensors.tmp").write_bytes(b"\0" * 10)
    again = checkpoint.Checkpoints(str(tmp_path), max_to_keep=2)
    assert again.all_steps() == [3, 5] and not (tmp_path / "7.partial").exists()
    restored, _ = again.restore(5, jax.eval_shape(a_state))
    assert_bitwise(restored, a_state(5))
    again.save(5, a_state(6))  # saved again: replaces the step
    again.close()
    assert_bitwise(again.restore(5, jax.eval_shape(a_state))[0], a_state(6))


def test_a_damaged_or_foreign_state_file_is_one_sentence(tmp_path):
    saved = checkpoint.Checkpoints(str(tmp_path))
    saved.save(1, a_state())
    saved.save(2, a_state())
    saved.close()
    other = {"params": {"dense": jnp.zeros((2, 2))}}
    with pytest.raises(UserError, match="at step 1 .* cannot be read .*other arrays than the state"):
        saved.restore(1, jax.eval_shape(lambda: other))
    file = checkpoint_files.file(str(tmp_path), 2)
    os.truncate(file, os.path.getsize(file) // 3)
    with pytest.raises(UserError, match="at step 2 .* cannot be read"):
        saved.restore(2, jax.eval_shape(a_state))
    found = checkpoint.Checkpoints(str(tmp_path)).restore_latest(jax.eval_shape(a_state), 0, 10)
    assert found is not None and found[1] == 1  # the damaged one set aside
    assert os.listdir(str(tmp_path) + ".unreadable") == ["2"]


def test_a_failed_save_is_one_sentence_at_the_next_save_or_close(tmp_path, monkeypatch):
    saved = checkpoint.Checkpoints(str(tmp_path))

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_files, "write", full)
    saved.save(1, a_state())
    with pytest.raises(UserError, match="no space left on the device"):
        saved.save(2, a_state())
    saved.save(3, a_state())
    with pytest.raises(UserError, match="no space left on the device"):
        saved.close()
    assert saved.all_steps() == []


def test_steps_orbax_wrote_are_read_and_the_run_goes_on(tmp_path):
    import orbax.checkpoint as ocp

    state = a_state(3)
    options = ocp.CheckpointManagerOptions(max_to_keep=3, create=True)
    manager = ocp.CheckpointManager(str(tmp_path), options=options)  # as earlier versions saved
    args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave({"step": 4, "x": 1}))
    manager.save(4, args=args)
    manager.wait_until_finished()
    manager.close()
    resumed = checkpoint.Checkpoints(str(tmp_path), max_to_keep=2)
    assert resumed.latest_step() == 4 and resumed.meta(4) == {"step": 4, "x": 1}
    restored, step = resumed.restore_latest(jax.eval_shape(a_state), 0, 10)
    assert step == 4
    assert_bitwise(restored, state)
    resumed.save(6, a_state(6))
    resumed.save(8, a_state(8))
    resumed.close()
    assert resumed.all_steps() == [6, 8]  # the Orbax step too is past the newest two
    assert_bitwise(resumed.restore(8, jax.eval_shape(a_state))[0], a_state(8))
