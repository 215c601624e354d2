"""The instability experiment on a lottery run: IMP subnetworks, successive levels, perturbation,
bad settings, and a kill in the middle of the copies' training."""

import jax
import numpy as np
import pytest

from jaxlth import checkpoint, experiments, results
from jaxlth import config as config_lib
from jaxlth.errors import UserError
from jaxlth.experiments import instability as instability_lib
from jaxlth.experiments import lottery as lottery_lib
from jaxlth.experiments import registry
from jaxlth.experiments.context import Context
from jaxlth.experiments.instability import perturb as perturb_lib
from jaxlth.experiments.instability import run as instability_run
from jaxlth.experiments.lottery.run import Lottery
from tests.conftest import (
    TINY,
    assert_same_rows,
    checkpoint_steps,
    record_trainings,
    run_cli,
    start_and_kill,
    tiny_config,
)


def tiny(arg, replicates=2, **changes):
    """The tiny config with ``section__field=value`` changes (built without validation)."""
    config = tiny_config(arg)
    config.replicates = replicates
    for dotted, value in changes.items():
        section, field = dotted.split("__") if "__" in dotted else (None, dotted)
        (config[section] if section else config)[field] = value
    return config


def instability_config(**changes):
    """The tiny instability config trained like the tiny lottery run (so they can be compared)."""
    lottery = tiny("lottery")
    config = tiny("instability", **changes)
    config.train = lottery.train
    return config


@pytest.fixture(scope="module")
def lottery_run(tmp_path_factory):
    """A finished 2-level tiny lottery run (levels 0, 1, 2; rewind step 3; 2 replicates)."""
    workdir = str(tmp_path_factory.mktemp("lottery"))
    config = tiny("lottery", lottery__branches=())
    experiments.claim(workdir, config)
    Lottery(Context(config, workdir, lottery_lib.EXPERIMENT)).run()
    return results.load(workdir)


def run_instability(config, workdir) -> results.Run:
    config_lib.validate(config)
    experiments.claim(str(workdir), config)
    instability_run.run(Context(config, str(workdir), instability_lib.EXPERIMENT))
    return results.load(str(workdir))


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"instability__spawn_steps": ""}, "nothing to do"),
        ({"instability__alphas": 1}, "instability.alphas must be at least 2"),
        ({"instability__copies": 1}, "instability.copies must be at least 2"),
        ({"instability__perturb_scales": (0.5, -1.0)}, "perturb_scales must be positive"),
        ({"instability__spawn_steps": "0it,99ep"}, "must come before the end of training"),
        ({"instability__splits": ("test", "valid")}, "'valid'"),
        ({"instability__between_levels": True}, "need instability.source_workdir"),
    ],
)
def test_bad_instability_settings_are_refused(tmp_path, changes, fragment):
    with pytest.raises(UserError, match=fragment):
        config_lib.validate(tiny("instability", **changes))


def test_a_source_run_with_other_settings_is_refused(tmp_path, lottery_run):
    wider = instability_config(instability__source_workdir=lottery_run.workdir)
    wider.model.options.widths = (64, 16)
    with pytest.raises(UserError, match="model must equal the source run's"):
        config_lib.validate(wider)
    reseeded = instability_config(instability__source_workdir=lottery_run.workdir, seed=5)
    with pytest.raises(UserError, match="seed must equal"):
        config_lib.validate(reseeded)


def test_copies_of_an_imp_subnetwork_keep_its_mask(tmp_path, lottery_run):
    config = instability_config(
        instability__source_workdir=lottery_run.workdir, instability__level=2, instability__spawn_steps="3it"
    )
    run = run_instability(config, tmp_path / "inst")
    mask = lottery_run.mask(2)
    final = checkpoint.load_artifact(results.artifact_dir(run.workdir, "spawn_0000003/final"))
    for name in mask:
        kernel = final["params"][name]["kernel"]  # (replicates * copies, ...), copy c of r at r * 2 + c
        for r in range(2):
            for c in range(2):
                assert np.all(kernel[2 * r + c][~mask[name]["kernel"][r]] == 0.0)
    assert not np.allclose(final["params"]["hidden_0"]["kernel"][0], final["params"]["hidden_0"]["kernel"][1])
    table = run.table
    barriers = table[(table.arm == "copies") & (table.metric == "barrier_paul")]
    assert len(barriers) == 2 * 2  # replicates x splits, one pair
    kept = sum(int(mask[n]["kernel"][0].sum()) for n in mask)
    total = sum(mask[n]["kernel"][0].size for n in mask)
    expected_density = kept / total
    np.testing.assert_allclose(barriers[barriers.replicate == 0].density, expected_density, rtol=1e-6)


def test_between_levels_measures_each_pair_of_successive_levels_and_matching(tmp_path, lottery_run):
    config = instability_config(
        instability__source_workdir=lottery_run.workdir,
        instability__spawn_steps="",
        instability__between_levels=True,
        instability__matching_epsilon=1.0,
    )
    run = run_instability(config, tmp_path / "levels")
    table = run.table
    curve = table[(table.arm == "between_levels") & (table.metric == "error") & (table.split == "test")]
    assert sorted(curve.pair.unique()) == ["0-1", "1-2"] and len(curve) == 2 * 2 * 5  # pairs x replicates x alphas
    # The path's ends are the trained networks of the two levels: alpha=1 of pair 1-2 is level 2's test error.
    source = lottery_run.table
    final = source[
        (source.arm == "imp") & (source.level == 2) & (source.split == "test") & (source.metric == "accuracy")
    ]
    final = final[final.step == final.step.max()].sort_values("replicate")
    end = curve[(curve.pair == "1-2") & (curve.alpha == 1.0)].sort_values("replicate")
    np.testing.assert_allclose(end.value.to_numpy(), 1.0 - final.value.to_numpy(), atol=1e-6)
    matching = table[table.metric == "matching"]
    assert sorted(matching.level.unique()) == [1, 2] and set(matching.value) == {1.0}  # eps = 100% error


def test_perturbing_the_rewind_point_of_a_level(tmp_path, lottery_run):
    config = instability_config(
        instability__source_workdir=lottery_run.workdir,
        instability__level=1,
        instability__spawn_steps="",
        instability__perturb_scales=(0.25, 4.0),
    )
    run = run_instability(config, tmp_path / "perturb")
    final = checkpoint.load_artifact(results.artifact_dir(run.workdir, "perturb/final"))
    kernel = final["params"]["hidden_0"]["kernel"]  # (replicates * 3, ...): unperturbed, 0.25, 4.0
    mask = lottery_run.mask(1)["hidden_0"]["kernel"]
    for r in range(2):
        for g in range(3):
            assert np.all(kernel[3 * r + g][~mask[r]] == 0.0)
    barrier = run.table[
        (run.table.arm == "perturb") & (run.table.metric == "barrier_frankle") & (run.table.split == "test")
    ]
    assert sorted(barrier.noise_scale.unique()) == [0.25, 4.0] and len(barrier) == 4 and barrier.pair.isna().all()
    assert set(run.table[run.table.split == "test"].arm) == {"perturb"}  # training rows and paths: one arm name


@pytest.mark.slow
def test_kill_during_the_copies_resumes_bitwise(tmp_path):
    args = [
        "--config",
        f"{TINY}:instability",
        "--config.train.steps=8ep",
        "--config.checkpoint_every=8it",
        "--config.replicates=2",
    ]
    run_cli(*args, "--workdir", str(tmp_path / "reference"), check=True)
    workdir = tmp_path / "killed"
    target = workdir / "checkpoints" / "spawn_0000004"
    start_and_kill([*args, "--workdir", str(workdir)], lambda: checkpoint_steps(target)[-1:] >= [40])
    run_cli(*args, "--workdir", str(workdir), check=True)
    a, b = results.load(str(tmp_path / "reference")), results.load(str(workdir))
    for name in ("spawn_0000000/final", "spawn_0000004/final"):
        x = checkpoint.load_artifact(results.artifact_dir(a.workdir, name))
        y = checkpoint.load_artifact(results.artifact_dir(b.workdir, name))
        for u, v in zip(jax.tree.leaves(x), jax.tree.leaves(y)):
            np.testing.assert_array_equal(u, v)
    cols = ["arm", "spawn_step", "pair", "alpha", "step", "replicate", "split", "metric", "value"]
    assert_same_rows(a.table, b.table, cols)


def test_perturbation_noise_is_scaled_by_each_layers_norm():
    params = {
        "a": {"kernel": jax.random.normal(jax.random.PRNGKey(0), (300, 100)), "bias": np.ones(100, np.float32)},
        "b": {"kernel": 5.0 * jax.random.normal(jax.random.PRNGKey(1), (100, 10))},
    }
    noisy = perturb_lib.perturb(params, jax.random.PRNGKey(2), [("a", "kernel"), ("b", "kernel")], 0.5)
    for name in ("a", "b"):
        w, v = np.asarray(params[name]["kernel"]), np.asarray(noisy[name]["kernel"])
        assert np.linalg.norm(v - w) / np.linalg.norm(w) == pytest.approx(0.5, rel=0.1)
    np.testing.assert_array_equal(noisy["a"]["bias"], params["a"]["bias"])
    only_a = perturb_lib.perturb(params, jax.random.PRNGKey(2), [("a", "kernel")], 0.5)
    np.testing.assert_array_equal(only_a["b"]["kernel"], params["b"]["kernel"])


def test_spawn_steps_can_be_added_to_a_finished_run(tmp_path, monkeypatch):
    workdir = tmp_path / "grow"
    first = run_instability(tiny("instability", instability__spawn_steps="8it", instability__splits=("test",)), workdir)
    before = first.table
    recorded = record_trainings(monkeypatch)
    grown_config = tiny("instability", instability__spawn_steps="0it,4it,8it", instability__splits=("test",))
    grown = run_instability(grown_config, workdir).table
    trained = [start["name"] for start in recorded]
    assert "spawn_0000008" not in trained and {"spawn_0000000", "spawn_0000004"} <= set(trained)
    widest = max(jax.tree.leaves(start["state"].params)[0].shape[0] for start in recorded)
    assert widest == grown_config.replicates * registry.get("instability").widths(grown_config)[0]
    barrier = grown[grown.metric == "barrier_frankle"]
    assert sorted(barrier.spawn_step.unique()) == [0, 4, 8]
    cols = ["arm", "spawn_step", "step", "replicate", "split", "metric", "alpha", "value"]
    old = before[cols].fillna("").sort_values(cols[:-1]).reset_index(drop=True)
    kept = grown[cols].fillna("").merge(old, how="inner")
    assert len(kept) == len(old)  # every earlier row (trunk training up to 8 included) is still there


def test_results_api_gives_the_spawned_copies(tmp_path):
    run = run_instability(
        tiny("instability", instability__spawn_steps="4it", instability__splits=("test",), instability__copies=3),
        tmp_path / "copies",
    )
    every = run.copies(4)
    assert every["params"]["hidden_0"]["kernel"].shape[0] == 2 * 3
    one = run.copies(4, replicate=1, copy=2)
    np.testing.assert_array_equal(one["params"]["hidden_0"]["kernel"], every["params"]["hidden_0"]["kernel"][5])
    assert run.copies(4, replicate=1)["params"]["output"]["bias"].shape[0] == 3
    assert run.copies(4, copy=0)["params"]["output"]["bias"].shape[0] == 2
    with pytest.raises(UserError, match="not finished"):
        run.copies(5)
    with pytest.raises(UserError, match="copy must be"):
        run.copies(4, copy=3)
