"""Hyper-parameter sweeps in one program: train.lr (momentum, weight_decay, warmup) as tuples, H settings
trained side by side (setting-major), each equal to a separate run of its value."""

import jax
import numpy as np
import pytest

from jaxlth import experiments, results
from jaxlth.errors import UserError
from jaxlth.experiments import replicates
from jaxlth.training import hyper
from jaxlth.training import setup as setup_lib
from tests.conftest import assert_same_rows, checkpoint_steps, record_trainings, run_cli, start_and_kill, tiny_config

LRS = (0.02, 0.05)
FRACTIONS = (0.3, 0.6)
LOTTERY = {"replicates": 2, "lottery.levels": 1, "lottery.branches": ("random_prune",)}
ROWS = ["arm", "level", "replicate", "prune_fraction", "step", "split", "metric", "layer"]


def _close(a, b, rtol=1e-5, atol=1e-6):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


@pytest.fixture(scope="module")
def lottery(tmp_path_factory):
    """A lottery run sweeping lr x prune_fraction (H = 2, F = 2), and one run per lr (the fractions swept)."""
    base = tmp_path_factory.mktemp("hyper")
    mp = pytest.MonkeyPatch()
    trainings = record_trainings(mp)
    sweep = {**LOTTERY, "lottery.prune_fraction": FRACTIONS, "train.lr": LRS}
    try:
        experiments.run(tiny_config("lottery", **sweep), str(base / "sweep"))
    finally:
        mp.undo()
    for lr in LRS:
        single = {**LOTTERY, "lottery.prune_fraction": FRACTIONS, "train.lr": lr}
        experiments.run(tiny_config("lottery", **single), str(base / f"lr{lr}"))
    return results.load(str(base / "sweep")), {lr: results.load(str(base / f"lr{lr}")) for lr in LRS}, trainings


def test_every_level_trains_all_settings_in_one_program(lottery):
    _, _, trainings = lottery
    widths = {t["name"]: jax.tree.leaves(t["state"].params)[0].shape[0] for t in trainings}
    assert widths["pretrain/level_00"] == widths["imp/level_00"] == 2 * len(LRS)  # R x H
    assert widths["imp/level_01"] == widths["random_prune/level_01"] == 2 * len(LRS) * len(FRACTIONS)
    state = next(t["state"] for t in trainings if t["name"] == "imp/level_01")
    assert list(state.opt_state.hyperparams["lr"]) == [LRS[0]] * 4 + [LRS[1]] * 4  # setting-major, fresh state


def test_a_lottery_sweep_equals_separate_runs(lottery):
    sweep, single, _ = lottery
    for lr, run in single.items():
        for p in FRACTIONS:
            for level in (0, 1):
                for a, b in zip(
                    jax.tree.leaves(sweep.mask(level, lr=lr, prune_fraction=p)),
                    jax.tree.leaves(run.mask(level, prune_fraction=p)),
                ):
                    np.testing.assert_array_equal(a, b)
                _close(sweep.params(level, lr=lr, prune_fraction=p), run.params(level, prune_fraction=p))
            _close(
                sweep.params(1, arm="random_prune", lr=lr, prune_fraction=p, replicate=1),
                run.params(1, arm="random_prune", prune_fraction=p, replicate=1),
            )
        rows, table = sweep.rows(lr=lr).fillna({"prune_fraction": -1}), run.table.fillna({"prune_fraction": -1})
        mine = rows[rows["split"].isin(["test", "train"])].set_index(ROWS[:-1])["value"].sort_index()
        theirs = table[table["split"].isin(["test", "train"])].set_index(ROWS[:-1])["value"].sort_index()
        assert list(mine.index) == list(theirs.index)
        np.testing.assert_allclose(mine.to_numpy(), theirs.to_numpy(), rtol=1e-4, atol=1e-5)
        masks = rows[rows["split"] == "mask"].set_index(ROWS)["value"].sort_index()
        np.testing.assert_array_equal(masks, table[table["split"] == "mask"].set_index(ROWS)["value"].sort_index())


def test_rows_carry_the_setting_and_the_report_groups_by_it(lottery, tmp_path):
    sweep, _, _ = lottery
    assert set(sweep.table["lr"]) == set(LRS) and sweep.table["lr"].notna().all()
    assert len(sweep.rows(lr=0.05)) * 2 == len(sweep.table)
    text, figures = experiments.registry.get("lottery").report(sweep, str(tmp_path))
    assert "lr=0.02:" in text and "lr=0.05:" in text and "largest matching p" in text
    assert any(path.endswith("accuracy_vs_weights_p0.3_lr0.05.png") for path in figures)
    with pytest.raises(UserError, match="name one"):
        sweep.params(1, replicate=0)  # which lr?
    with pytest.raises(UserError, match="none of this run's settings"):
        sweep.params(1, lr=0.3)
    assert jax.tree.leaves(sweep.params(1))[0].shape[0] == 8  # everything, setting-major


def _trained(config, chunks=((0, 4), "rewind", (4, 4))):
    """Final params of a setup's program from initialisation: chunks of steps, ``"rewind"`` a fresh
    optimizer state (as after rewinding)."""
    setup = setup_lib.build(config)
    state = setup.init_state()
    for chunk in chunks:
        if chunk == "rewind":
            state = state.replace(opt_state=setup.program.fresh_opt_state(state.params))
            continue
        state, _ = setup.program.train_chunk(state, {}, setup.data, chunk[0], num_steps=chunk[1])
    return jax.tree.map(np.asarray, state.params)


@pytest.mark.parametrize(
    "field, values", [("momentum", (0.0, 0.9)), ("weight_decay", (0.0, 0.01)), ("warmup", ("0it", "6it"))]
)
def test_each_setting_of_a_program_equals_its_own_program(field, values):
    change = {"train.lr": 0.3} if field == "weight_decay" else {}  # decay that shows in 8 steps
    swept = _trained(tiny_config(None, **change, **{f"train.{field}": values}))
    for h, value in enumerate(values):
        alone = _trained(tiny_config(None, **change, **{f"train.{field}": value}))
        for a, b in zip(jax.tree.leaves(swept), jax.tree.leaves(alone), strict=True):
            # Not bitwise on every CPU: a program of two networks and one of a single network are
            # vectorised differently by XLA:CPU. Bitwise on the Intel Xeon where this was first run; up to
            # 2e-6 apart after these 8 steps on an AMD EPYC without AVX-512 (weights of magnitude ~1).
            np.testing.assert_allclose(a[h : h + 1], b, rtol=1e-5, atol=1e-5)
    first, second = (jax.tree.leaves(swept)[1][h] for h in (0, 1))
    assert not np.array_equal(first, second)


@pytest.fixture(scope="module")
def instability(tmp_path_factory):
    base = tmp_path_factory.mktemp("hyper_instability")
    settings = {"replicates": 2, "instability.spawn_steps": "4it", "instability.perturb_scales": (0.5,)}
    experiments.run(tiny_config("instability", **settings, **{"train.lr": LRS}), str(base / "sweep"))
    for lr in LRS:
        experiments.run(tiny_config("instability", **settings, **{"train.lr": lr}), str(base / f"lr{lr}"))
    return results.load(str(base / "sweep")), {lr: results.load(str(base / f"lr{lr}")) for lr in LRS}


def test_an_instability_sweep_equals_separate_runs(instability, tmp_path):
    sweep, single = instability
    keys = ["arm", "spawn_step", "replicate", "pair", "noise_scale", "alpha", "split", "metric"]
    for lr, run in single.items():
        _close(sweep.copies(4, lr=lr), run.copies(4))
        _close(sweep.copies(4, replicate=1, copy=1, lr=lr), run.copies(4, replicate=1, copy=1))
        paths = sweep.rows(lr=lr)
        paths = paths[paths["alpha"].notna() | paths["metric"].str.startswith("barrier")].fillna("").set_index(keys)
        theirs = run.table[run.table["alpha"].notna() | run.table["metric"].str.startswith("barrier")]
        theirs = theirs.fillna("").set_index(keys)["value"].sort_index()
        assert list(paths["value"].sort_index().index) == list(theirs.index)
        np.testing.assert_allclose(paths["value"].sort_index().to_numpy(), theirs.to_numpy(), rtol=1e-4, atol=1e-5)
    text, _ = experiments.registry.get("instability").report(sweep, str(tmp_path))
    assert text.index("lr=0.02:") < text.index("lr=0.05:") and text.count("between copies") == 2
    table = experiments.registry.get("instability").figures.barriers(sweep.table)
    assert set(table["lr"]) == set(LRS)  # never averaged over the settings


def test_fit_counts_the_settings():
    config = tiny_config(
        "lottery", **{"lottery.prune_fraction": FRACTIONS, "train.lr": LRS, "train.momentum": (0.0, 0.9)}
    )
    choice = replicates.choose(config, wanted=1)
    assert choice.widths == (2 * 2 * 2, 2 * 2 * 2)  # F x H networks per replicate
    assert "8 networks trained" in choice.describe()


def test_a_killed_sweep_resumes_bitwise(tmp_path):
    args = [
        "--config",
        "tests/configs/tiny.py",
        "--config.train.lr=0.02,0.05",
        "--config.train.warmup=0it,3it",
        "--config.replicates=2",
        "--config.checkpoint_every=5it",
        "--config.train.steps=6ep",
    ]
    reference = run_cli(*args, "--workdir", str(tmp_path / "reference"), check=True)
    assert "lr=0.05, warmup=3it: test accuracy" in reference.stdout
    workdir = tmp_path / "killed"
    start_and_kill([*args, "--workdir", str(workdir)], lambda: checkpoint_steps(workdir / "checkpoints")[-1:] >= [20])
    run_cli(*args, "--workdir", str(workdir), check=True)
    a, b = results.load(str(tmp_path / "reference")), results.load(str(workdir))
    for x, y in zip(jax.tree.leaves(a.params()), jax.tree.leaves(b.params()), strict=True):
        np.testing.assert_array_equal(x, y)
    assert_same_rows(a.table, b.table, ["arm", "step", "replicate", "lr", "warmup", "split", "metric", "value"])
    assert set(a.table["warmup"]) == {"0it", "3it"} and len(a.rows(lr=0.05, warmup="3it")) * 4 == len(a.table)


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"train.lr": ()}, "train.lr is an empty tuple"),
        ({"train.lr": (0.1, 0.0)}, "train.lr must be positive"),
        ({"train.momentum": (0.9, -0.1)}, "train.momentum must be >= 0"),
        ({"train.lr": (0.1, 0.1)}, "lists a value twice"),
        ({"train.warmup": ("1ep", "x")}, "malformed step spec"),
        ({"train.momentum": (0.0, 0.9), "train.optimizer": "adam"}, "needs train.optimizer = sgd"),
        ({"experiment": "one_shot", "train.lr": (0.1, 0.05)}, "the one_shot experiment trains one value of train.lr"),
        ({"experiment": "lottery", "train.lr": (0.1, 0.05), "lottery.retrain": "finetune"}, "finetune trains one"),
    ],
)
def test_bad_sweeps_are_one_sentence(changes, fragment, tmp_path):
    with pytest.raises(UserError) as caught:
        experiments.run(tiny_config(changes.pop("experiment", None), **changes), str(tmp_path / "w"))
    assert fragment in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "w").exists()


def test_the_command_line_refuses_a_tuple_the_experiment_cannot_sweep(tmp_path):
    proc = run_cli("--config", "tests/configs/tiny.py:scores", "--config.train.lr=0.1,0.05", "--workdir", str(tmp_path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "jaxlth: error: the scores experiment trains one value of train.lr, not a tuple; hyper-parameter sweeps "
        "in one program serve train, lottery, instability"
    ]


def test_the_grid_is_the_product_of_the_swept_fields():
    grid = hyper.grid({"lr": (0.1, 0.05), "momentum": 0.9, "warmup": ("0it", 2)})
    assert grid.fields == ("lr", "warmup") and grid.size == 4
    assert grid.settings[1] == {"lr": 0.1, "warmup": "2it"} and grid.label(1) == "lr=0.1, warmup=2it"
    assert grid.at(5, 8) == [{"replicate": 1, "lr": 0.05, "warmup": "0it"}]  # 2 replicates per setting
    assert list(grid.numbers(8)["warmup"]) == [0, 2, 0, 2]
    assert hyper.grid({"lr": 0.1}) is hyper.NONE
