"""A network whose loss or weights turn non-finite: the run stops, or only that replicate is masked."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlth.checkpoint import Checkpoints
from jaxlth.errors import UserError
from jaxlth.sharding import copy
from jaxlth.training import loop
from jaxlth.training import setup as setup_lib
from tests.conftest import TINY, run_cli, tiny_config


class Rows:
    def __init__(self):
        self.rows = []

    def restart(self, step, end, resumed):
        pass

    def report(self, step, density, metrics):
        self.rows.append((step, {k: dict(v) for k, v in metrics.items()}))

    def describe(self, positions):
        return "; ".join(f"replicate {i}" for i in positions)

    def written(self, step):
        return {"rows": len(self.rows)}

    def holds(self, step, written):
        return True


def run(tmp_path, name, on_nan, poison):
    setup = setup_lib.build(tiny_config("train", replicates=2))  # 24 steps
    state = setup.init_state()
    if poison:  # replicate 1 starts with a NaN weight
        leaf = jax.tree.leaves(state.params)[0]
        poisoned = leaf.at[1].set(leaf[1].at[(0,) * (leaf.ndim - 1)].set(jnp.nan))
        state = state.replace(
            params=jax.tree.unflatten(jax.tree.structure(state.params), [poisoned, *jax.tree.leaves(state.params)[1:]])
        )
    segment = loop.Segment(0, 24, eval_every=8, checkpoint_every=8, progress=False, on_nan=on_nan)
    checkpoints = Checkpoints(str(tmp_path / name))
    rows = Rows()
    try:
        final = loop.run_segment(
            setup.program, setup.data, setup.dense_mask(state.params), segment, lambda: copy(state), checkpoints, rows
        )
    finally:
        checkpoints.close()
    return final, rows, checkpoints


def test_a_diverged_replicate_stops_the_run_and_no_checkpoint_of_it_is_saved(tmp_path):
    with pytest.raises(UserError, match=r"diverged .* between steps 0 and 8 .*\(replicate 1\); no checkpoint"):
        run(tmp_path, "stop", "stop", poison=True)
    assert Checkpoints(str(tmp_path / "stop")).all_steps() == []


def test_mask_replicate_lets_the_others_train_exactly_as_they_would(tmp_path, capsys):
    clean, _, _ = run(tmp_path, "clean", "stop", poison=False)
    masked, rows, _ = run(tmp_path, "masked", "mask_replicate", poison=True)
    for a, b in zip(jax.tree.leaves(clean.params), jax.tree.leaves(masked.params)):
        np.testing.assert_array_equal(np.asarray(a)[0], np.asarray(b)[0])  # replicate 0: bitwise unaffected
    assert not all(np.all(np.isfinite(np.asarray(b)[1])) for b in jax.tree.leaves(masked.params))
    last_step, metrics = rows.rows[-1]
    assert last_step == 24 and np.isfinite(metrics["test"]["loss"][0]) and np.isnan(metrics["test"]["loss"][1])
    err = capsys.readouterr().err
    assert err.count("diverged") == 1 and "replicate 1" in err  # reported once, not at every chunk


def test_a_diverged_run_on_the_command_line_is_one_sentence(tmp_path):
    proc = run_cli("--config", f"{TINY}:train", "--workdir", str(tmp_path / "w"), "--config.train.lr=1e12")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "diverged" in lines[0] and "on_nan=mask_replicate" in lines[0], proc.stderr
