"""Averaging inside IMP (lottery.average_copies): particles, their average, pruning the average."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlth import checkpoint, experiments, results
from jaxlth.errors import UserError
from jaxlth.pruning import imp
from tests.conftest import TINY, assert_same_rows, checkpoint_steps, run_cli, start_and_kill, tiny_config

ARGS = [
    "--config",
    f"{TINY}:lottery",
    "--config.replicates=2",
    "--config.lottery.levels=2",
    "--config.lottery.branches=()",
    "--config.lottery.average_copies=3",
    "--config.checkpoint_every=2it",
    "--config.lottery.average_swa_start=4it",
]  # each particle: the mean of its iterates at steps 8 and 16


def artifact(run, name):
    return checkpoint.load_artifact(results.artifact_dir(run.workdir, name))


@pytest.fixture(scope="module")
def averaged(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("avg") / "run"
    run_cli(*ARGS, "--workdir", str(workdir), check=True)
    return results.load(str(workdir))


def test_each_level_continues_from_the_average_of_its_particles(averaged):
    for level in (0, 1, 2):
        particles = artifact(averaged, f"particles/level_{level:02d}/final")
        average = artifact(averaged, f"imp/level_{level:02d}/final")
        for p, a in zip(jax.tree.leaves(particles["params"]), jax.tree.leaves(average["params"])):
            assert p.shape[0] == 6 and a.shape[0] == 2
            np.testing.assert_array_equal(np.asarray(jnp.mean(jnp.asarray(p).reshape(2, 3, *p.shape[1:]), axis=1)), a)
            assert not np.array_equal(p[0], p[1])  # the particles saw different SGD noise
    for level in (1, 2):
        previous = jax.tree.map(jnp.asarray, artifact(averaged, f"imp/level_{level - 1:02d}/final"))
        expected = imp.prune(previous["params"], jax.tree.map(jnp.asarray, averaged.mask(level - 1)), 0.2, "global")
        for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(averaged.mask(level))):
            np.testing.assert_array_equal(np.asarray(a), b)


def test_particle_rows_and_the_averages_rows(averaged):
    table = averaged.table
    test = table[(table["split"] == "test") & (table["metric"] == "accuracy")]
    particles = test[test["arm"] == "particles"]
    assert sorted(set(particles["particle"].dropna().astype(int))) == [0, 1, 2]
    imp_rows = test[test["arm"] == "imp"]
    assert len(imp_rows) == 3 * 2 and set(imp_rows["step"]) == {int(test["step"].max())}
    swa_rows = test[test["arm"] == "swa"]  # every particle's own average, evaluated once per level
    assert len(swa_rows) == 3 * 2 * 3 and set(swa_rows["step"]) == {int(test["step"].max())}
    assert sorted(set(swa_rows["particle"].astype(int))) == [0, 1, 2]
    last = particles[particles["step"] == particles["step"].max()].set_index(["level", "replicate", "particle"])
    assert not np.allclose(
        swa_rows.set_index(["level", "replicate", "particle"])["value"].sort_index(), last["value"].sort_index()
    )  # the averages are not the last iterates
    from jaxlth import plots

    summary = plots.summary(table).set_index(["arm", "level"])
    for arm, rows in (("particles", last.reset_index()), ("swa", swa_rows)):
        for level in (0, 1, 2):  # the summary averages every particle, not the last of each replicate
            expected = rows[rows["level"] == level]["value"].mean()
            assert summary.loc[(arm, level), "mean"] == pytest.approx(expected)


def test_one_copy_is_plain_imp_bitwise(tmp_path):
    config = tiny_config("lottery", **{"lottery.levels": 1, "lottery.branches": ()})
    experiments.run(config, str(tmp_path / "plain"))
    experiments.run(
        tiny_config("lottery", **{"lottery.levels": 1, "lottery.branches": (), "lottery.average_copies": 1}),
        str(tmp_path / "one"),
    )
    plain, one = results.load(str(tmp_path / "plain")), results.load(str(tmp_path / "one"))
    for a, b in zip(jax.tree.leaves(plain.network(1)), jax.tree.leaves(one.network(1))):
        np.testing.assert_array_equal(a, b)
    assert "particles" not in set(one.table["arm"])


def test_a_killed_averaged_run_resumes_bitwise(tmp_path, averaged):
    workdir = tmp_path / "killed"
    start_and_kill(
        [*ARGS, "--workdir", str(workdir)],
        lambda: checkpoint_steps(workdir / "checkpoints" / "particles" / "level_01")[-1:] >= [7],
    )
    run_cli(*ARGS, "--workdir", str(workdir), check=True)
    killed = results.load(str(workdir))
    for name in ("imp/level_02/final", "particles/level_02/final"):
        for a, b in zip(jax.tree.leaves(artifact(averaged, name)), jax.tree.leaves(artifact(killed, name))):
            np.testing.assert_array_equal(a, b)
    assert_same_rows(averaged.table, killed.table, ["arm", "level", "step", "replicate", "split", "metric", "value"])


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"lottery.average_copies": 0}, "lottery.average_copies must be an integer >= 1"),
        ({"lottery.average_copies": 2, "lottery.prune_fraction": (0.2, 0.5)}, "need one lottery.prune_fraction"),
        ({"lottery.average_bn_batches": -1}, "lottery.average_bn_batches must be an integer >= 0"),
        ({"lottery.average_swa_start": "2ep"}, "must come before the end of training"),
        ({"lottery.average_swa_start": "often"}, "lottery.average_swa_start"),
        ({"lottery.average_swa_lr": -0.1}, "lottery.average_swa_lr must be a number >= 0"),
        ({"lottery.average_swa_start": "1ep", "lottery.prune_fraction": (0.2, 0.5)}, "need one lottery.prune_fraction"),
    ],
)
def test_bad_averaging_settings_are_refused(changes, fragment):
    with pytest.raises(UserError, match=fragment):
        tiny_config("lottery", **changes)


def test_the_average_of_a_batchnorm_network_gets_its_own_statistics(tmp_path):
    from jaxlth.analysis import interpolation as interp
    from jaxlth.training import setup as setup_lib

    config = tiny_config(
        "lottery",
        **{
            "data.synthetic_image_shape": (32, 32, 3),
            "data.synthetic_train_size": 64,
            "lottery.levels": 0,
            "lottery.branches": (),
            "lottery.average_copies": 2,
            "lottery.average_bn_batches": 2,
            "lottery.layers_to_ignore": (),
        },
    )
    config.model.name = "resnet_cifar"
    config.model.options = {"depth": 8, "width": 4}
    experiments.run(config, str(tmp_path / "bn"))
    run = results.load(str(tmp_path / "bn"))
    average = jax.tree.map(jnp.asarray, artifact(run, "imp/level_00/final"))
    particles = artifact(run, "particles/level_00/final")
    setup = setup_lib.build(config)
    batches = interp.bn_batches_from(setup.data.train_images, 2, config.train.batch_size)
    expected = jax.vmap(lambda p, s: interp.recompute_batch_stats(setup.program, p, s, batches))(
        average["params"], average["batch_stats"]
    )
    for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(average["batch_stats"])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    mean_of_particles = jax.tree.map(lambda x: np.mean(x.reshape(1, 2, *x.shape[1:]), axis=1), particles["batch_stats"])
    assert not all(
        np.allclose(a, b) for a, b in zip(jax.tree.leaves(mean_of_particles), jax.tree.leaves(average["batch_stats"]))
    )
