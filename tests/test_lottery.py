"""IMP with rewinding and branches, end to end on tiny synthetic data (and real Fashion-MNIST)."""

import hashlib
import os

import jax
import numpy as np
import pytest

from jaxlth import experiments, results
from jaxlth.experiments import lottery as lottery_lib
from jaxlth.experiments.context import Context
from jaxlth.experiments.lottery.run import Lottery
from tests.conftest import (
    FASHION_MNIST_DIR,
    TINY,
    assert_same_rows,
    checkpoint_steps,
    record_trainings,
    run_cli,
    start_and_kill,
    tiny_config,
)


def tiny_lottery(**lottery):
    return tiny_config("lottery", **{f"lottery.{key}": value for key, value in lottery.items()})


def bn_lottery():
    config = tiny_lottery(levels=1, rewind="2it", branches=())
    config.data.synthetic_image_shape = (16, 16, 3)
    config.model.name = "resnet_cifar"
    config.model.options = {"depth": 8, "width": 4}
    config.train.steps = "1ep"
    return config


def run_in_process(config, workdir):
    experiments.claim(str(workdir), config)
    lottery = Lottery(Context(config, str(workdir), lottery_lib.EXPERIMENT))
    lottery.run()
    return lottery


@pytest.fixture
def captured_starts(monkeypatch):
    """(arm, level, start step, initial state) of every training segment that runs."""
    return _Live(record_trainings(monkeypatch))


class _Live:
    """A live view of the recorded trainings as (arm, level, start, state) tuples."""

    def __init__(self, recorded):
        self.recorded = recorded

    def __iter__(self):
        return iter([(s["labels"]["arm"], s["labels"]["level"], s["start"], s["state"]) for s in self.recorded])

    def clear(self):
        self.recorded.clear()


def test_weight_rewinding_starts_each_level_from_the_step_k_params_on_its_mask(tmp_path, captured_starts):
    config = tiny_lottery(levels=2, branches=())
    lottery = run_in_process(config, tmp_path)
    run = results.load(str(tmp_path))
    k = lottery.rewind_step
    assert k == 3

    # The saved rewind point is the dense network trained for k steps.
    init = lottery.setup.init_state()
    expected, _ = lottery.setup.program.train_chunk(init, {}, lottery.setup.data, 0, num_steps=k)
    rewind = checkpoint_params(tmp_path, "rewind")
    for a, b in zip(jax.tree.leaves(expected.params), jax.tree.leaves(rewind)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)

    imp_starts = {level: (start, state) for arm, level, start, state in captured_starts if arm == "imp"}
    assert sorted(imp_starts) == [0, 1, 2]
    for level, (start, state) in imp_starts.items():
        assert start == k
        mask = run.mask(level)
        for layer in ("hidden_0", "hidden_1"):
            keep = mask[layer]["kernel"]
            w = state.params[layer]["kernel"]
            np.testing.assert_array_equal(w[keep], rewind[layer]["kernel"][keep])
            assert np.all(w[~keep] == 0)
        np.testing.assert_array_equal(state.params["output"]["kernel"], rewind["output"]["kernel"])
        assert all(np.all(m == 0) for m in jax.tree.leaves(state.opt_state))  # fresh momentum
        np.testing.assert_array_equal(
            run.params(level, which="rewind")["hidden_0"]["kernel"], state.params["hidden_0"]["kernel"]
        )
    # Densities of the table: 1, 0.8, 0.64 of the prunable weights (output layer ignored, dense).
    table = run.table
    final = table[
        (table.arm == "imp")
        & (table.split == "test")
        & (table.metric == "accuracy")
        & (table.step == lottery.total_steps)
    ]
    np.testing.assert_allclose(sorted(final.density, reverse=True), [1.0, 0.8, 0.64], atol=2 / 1024)
    assert "output" not in run.mask(2)


def test_batch_statistics_are_rewound_too(tmp_path, captured_starts):
    config = bn_lottery()
    run_in_process(config, tmp_path)
    rewind_stats = checkpoint_artifact(tmp_path, "rewind")["batch_stats"]
    init_stats = checkpoint_artifact(tmp_path, "init")["batch_stats"]
    level1 = [state for arm, level, _, state in captured_starts if arm == "imp" and level == 1]
    assert len(level1) == 1
    for got, want, initial in zip(
        jax.tree.leaves(level1[0].batch_stats), jax.tree.leaves(rewind_stats), jax.tree.leaves(init_stats)
    ):
        np.testing.assert_array_equal(got, want)
    assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(rewind_stats), jax.tree.leaves(init_stats)))


def test_branches_run_beside_imp_at_every_pruned_level(tmp_path):
    config = tiny_lottery(
        levels=2,
        branches=("random_prune", "random_reinit", "shuffle", "sign_flip", "reinit_keep_sign", "retrain"),
        retrain_overrides="lr=0.01",
    )
    run_in_process(config, tmp_path)
    run = results.load(str(tmp_path))
    for arm in ("random_prune", "random_reinit", "shuffle", "sign_flip", "reinit_keep_sign", "retrain"):
        assert run.levels(arm) == [1, 2], arm
        branch_density = run.table[(run.table.arm == arm) & (run.table.split == "test")].density.unique()
        np.testing.assert_allclose(sorted(branch_density, reverse=True), [0.8, 0.64], atol=2 / 1024)
    for layer in ("hidden_0", "hidden_1"):
        imp_mask = run.mask(2)[layer]["kernel"]
        random_mask = run.mask(2, arm="random_prune")[layer]["kernel"]
        np.testing.assert_array_equal(imp_mask.sum(axis=(1, 2)), random_mask.sum(axis=(1, 2)))
        np.testing.assert_array_equal(run.mask(2, arm="shuffle")[layer]["kernel"], imp_mask)
    assert not np.allclose(
        run.params(2, arm="retrain")["hidden_0"]["kernel"], run.params(2, arm="imp")["hidden_0"]["kernel"]
    )


@pytest.mark.parametrize("mode", ["lr_rewind", "finetune"])
def test_lr_rewinding_and_finetuning_start_from_the_trained_weights(tmp_path, captured_starts, mode):
    config = tiny_lottery(levels=1, branches=(), retrain=mode)
    run_in_process(config, tmp_path)
    run = results.load(str(tmp_path))
    start = [s for arm, level, _, s in captured_starts if arm == "imp" and level == 1][0]
    previous = run.params(0)
    keep = run.mask(1)["hidden_0"]["kernel"]
    np.testing.assert_array_equal(start.params["hidden_0"]["kernel"][keep], previous["hidden_0"]["kernel"][keep])


def test_extending_levels_reuses_finished_levels(tmp_path, captured_starts):
    run_in_process(tiny_lottery(levels=1), tmp_path)
    before = digest(tmp_path / "artifacts")
    rows_before = len(results.load(str(tmp_path)).table)
    captured_starts.clear()
    run_in_process(tiny_lottery(levels=2), tmp_path)
    assert {(arm, level) for arm, level, _, _ in captured_starts} == {
        ("imp", 2),
        ("random_prune", 2),
        ("random_reinit", 2),
    }
    after = digest(tmp_path / "artifacts")
    assert all(after[path] == h for path, h in before.items())
    table = results.load(str(tmp_path)).table
    assert len(table[table.level < 2]) == rows_before
    assert results.load(str(tmp_path)).config["lottery"]["levels"] == 2


def test_pruning_a_fraction_of_the_original_weights_gives_densities_one_minus_p_l(tmp_path):
    config = tiny_lottery(levels=3, prune_fraction=0.25, prune_of="original", branches=(), rewind="0it")
    config.train.steps = "2it"
    lottery = run_in_process(config, tmp_path / "w")
    for level, density in enumerate((1.0, 0.75, 0.5, 0.25)):
        mask = lottery.ctx.load(f"imp/level_{level:02d}/mask")
        kept = sum(int(np.sum(leaf)) for leaf in jax.tree.leaves(mask))
        total = sum(int(np.size(leaf)) for leaf in jax.tree.leaves(mask))
        assert abs(kept / total - density) * total <= len(jax.tree.leaves(mask)), (level, kept / total)


def test_bad_lottery_settings_are_refused(tmp_path):
    for override, fragment in [
        ("--config.lottery.prune_fraction=1.5", "prune_fraction"),
        ("--config.lottery.branches=('magic',)", "unknown lottery branch 'magic'"),
        ("--config.lottery.rewind=99ep", "lottery.rewind"),
        ("--config.lottery.retrain=rewire", "lottery.retrain"),
        ("--config.lottery.prune_of=start", "lottery.prune_of"),
        ("--config.lottery.prune_of=original --config.lottery.levels=2 --config.lottery.prune_fraction=0.5", "all"),
    ]:
        workdir = str(tmp_path / override[9:20])
        proc = run_cli("--config", f"{TINY}:lottery", "--workdir", workdir, *override.split())
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert fragment in proc.stderr, proc.stderr


@pytest.mark.slow
def test_kill_during_level_2_resumes_bitwise(tmp_path):
    args = [
        "--config",
        f"{TINY}:lottery",
        "--config.train.steps=6ep",
        "--config.checkpoint_every=11it",
        "--config.replicates=2",
    ]
    run_cli(*args, "--workdir", str(tmp_path / "reference"), check=True)
    workdir = tmp_path / "killed"
    target = workdir / "checkpoints" / "imp" / "level_02"
    start_and_kill([*args, "--workdir", str(workdir)], lambda: checkpoint_steps(target)[-1:] >= [33])
    run_cli(*args, "--workdir", str(workdir), check=True)
    a, b = results.load(str(tmp_path / "reference")), results.load(str(workdir))
    for arm in ("imp", "random_prune", "random_reinit"):
        for level in a.levels(arm):
            for x, y in zip(jax.tree.leaves(a.params(level, arm=arm)), jax.tree.leaves(b.params(level, arm=arm))):
                np.testing.assert_array_equal(x, y)
    cols = ["arm", "level", "step", "replicate", "split", "metric", "layer", "value"]
    assert_same_rows(a.table, b.table, cols)


@pytest.mark.slow
@pytest.mark.skipif(
    not os.path.exists(os.path.join(FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz")),
    reason=f"real Fashion-MNIST is not installed in {FASHION_MNIST_DIR}",
)
def test_three_short_levels_on_fashion_mnist_make_the_figures(tmp_path):
    workdir = tmp_path / "lth"
    proc = run_cli(
        "--config",
        "configs/lenet_fashion_mnist.py:lottery",
        "--workdir",
        str(workdir),
        "--config.lottery.levels=2",
        "--config.train.steps=1ep",
        "--config.eval_every=1ep",
        "--config.lottery.branches=('random_prune',)",
        "--config.progress=false",
        check=True,
    )
    for name in ("accuracy_vs_weights.png", "layer_density.png"):
        assert (workdir / "plots" / name).stat().st_size > 10_000
    assert "plots" in proc.stdout
    table = results.load(str(workdir)).table
    final = table[(table.arm == "imp") & (table.split == "test") & (table.metric == "accuracy") & (table.step == 468)]
    np.testing.assert_allclose(sorted(final.density, reverse=True), [1.0, 0.8, 0.64], atol=1e-5)
    assert (final.value > 0.75).all()


def checkpoint_artifact(workdir, name):
    from jaxlth import checkpoint

    return checkpoint.load_artifact(results.artifact_dir(str(workdir), name))


def checkpoint_params(workdir, name):
    return checkpoint_artifact(workdir, name)["params"]


def digest(folder):
    out = {}
    for base, _, files in os.walk(folder):
        for name in files:
            with open(os.path.join(base, name), "rb") as f:
                out[os.path.relpath(os.path.join(base, name), folder)] = hashlib.sha256(f.read()).hexdigest()
    return out
