"""The one_shot experiment end to end: densities, retraining from the rewind point, rows, figure."""

import os

import jax
import numpy as np
import pytest

from jaxlth import config as config_lib
from jaxlth import experiments, results
from jaxlth.errors import UserError
from jaxlth.experiments import context as context_lib
from tests.conftest import TINY, run_cli


@pytest.fixture(scope="module")
def one_shot_run(tmp_path_factory):
    """A tiny one_shot run (densities 0.5 and 0.2, rewind step 3, 2 replicates) and the initial
    states of every training it ran, recorded as they started."""
    workdir = str(tmp_path_factory.mktemp("one_shot") / "run")
    starts = {}
    original = context_lib.Context.train

    def recording(self, name, segment, mask, initial_state, labels, **kwargs):
        starts[name] = (segment.start, jax.tree.map(np.asarray, initial_state()))
        return original(self, name, segment, mask, initial_state, labels, **kwargs)

    context_lib.Context.train = recording
    try:
        experiments.run(config_lib.from_file(f"{TINY}:one_shot", replicates=2), workdir)
    finally:
        context_lib.Context.train = original
    return results.load(workdir), starts


def test_masks_have_the_target_densities(one_shot_run):
    run, _ = one_shot_run
    assert run.levels("one_shot") == [1, 2] and run.levels("dense") == [0]
    total = 784 * 32 + 32 * 16  # the prunable kernels (the output layer is ignored)
    for level, target in ((1, 0.5), (2, 0.2)):
        mask = run.mask(level, arm="one_shot")
        kept = sum(m.reshape(2, -1).sum(axis=1) for m in jax.tree.leaves(mask))
        np.testing.assert_array_equal(kept, [np.floor(target * total)] * 2)
        assert "output" not in mask
    # One-shot masks are magnitude masks of the trained dense network: the kept weights are the largest.
    dense = run.params(0, arm="dense", replicate=0)
    mask = run.mask(2, arm="one_shot", replicate=0)
    kept = np.concatenate([np.abs(dense[k]["kernel"])[mask[k]["kernel"]] for k in mask])
    dropped = np.concatenate([np.abs(dense[k]["kernel"])[~mask[k]["kernel"]] for k in mask])
    assert kept.min() >= dropped.max()


def test_every_density_is_retrained_from_the_rewind_point_in_one_program(one_shot_run):
    run, starts = one_shot_run
    assert sorted(starts) == ["dense/level_00", "one_shot", "pretrain/level_00"]
    start_step, state = starts["one_shot"]
    assert start_step == 3
    rewind = run.params(0, arm="dense", which="rewind")  # the dense mask keeps everything
    kernel = state.params["hidden_0"]["kernel"]  # (replicates * densities, ...): density d of r at r * 2 + d
    assert kernel.shape[0] == 4
    for r in range(2):
        for d, level in enumerate((1, 2)):
            keep = run.mask(level, arm="one_shot", replicate=r)["hidden_0"]["kernel"]
            np.testing.assert_array_equal(kernel[2 * r + d][keep], rewind["hidden_0"]["kernel"][r][keep])
            assert np.all(kernel[2 * r + d][~keep] == 0)
            np.testing.assert_array_equal(state.data_key[2 * r + d], starts["dense/level_00"][1].data_key[r])
    assert all(np.all(m == 0) for m in jax.tree.leaves(state.opt_state))


def test_rows_carry_the_target_density_and_the_figure_is_written(one_shot_run):
    run, _ = one_shot_run
    table = run.table
    final = table[
        (table.arm == "one_shot")
        & (table.split == "test")
        & (table.metric == "accuracy")
        & (table.step == table.step.max())
    ]
    assert sorted(zip(final.level, final.replicate, final.target_density)) == [
        (1, 0, 0.5),
        (1, 1, 0.5),
        (2, 0, 0.2),
        (2, 1, 0.2),
    ]
    np.testing.assert_allclose(
        final.sort_values(["level", "replicate"]).density, np.floor(np.array([0.5, 0.5, 0.2, 0.2]) * 25600) / 25600
    )
    assert "spawn_step" not in table.columns  # only the coordinates this experiment declares
    assert os.path.getsize(os.path.join(run.workdir, "plots", "accuracy_vs_weights.png")) > 10_000


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("--config.one_shot.densities=(0.5, 1.5)", "one_shot.densities must lie in (0, 1)"),
        ("--config.one_shot.densities=()", "one_shot.densities is empty"),
        ("--config.one_shot.densities=(0.5, 0.5)", "lists a density twice"),
        ("--config.one_shot.scope=sideways", "unknown one_shot.scope"),
        ("--config.one_shot.retrain=again", "unknown one_shot.retrain"),
        ("--config.one_shot.rewind=9ep", "one_shot.rewind (9ep) must come before the end of training"),
    ],
)
def test_bad_one_shot_settings_are_refused_before_anything_is_written(tmp_path, override, fragment):
    workdir = tmp_path / "refused"
    proc = run_cli("--config", f"{TINY}:one_shot", "--workdir", str(workdir), override)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert fragment in proc.stderr, proc.stderr
    assert not workdir.exists()


def test_validation_runs_before_any_data_is_loaded(monkeypatch):
    from jaxlth import data

    monkeypatch.setattr(data, "load_dataset", lambda *a: pytest.fail("data loaded before validation"))
    config = config_lib.from_file(f"{TINY}:one_shot")
    config.one_shot.densities = (2.0,)
    with pytest.raises(UserError, match="one_shot.densities"):
        experiments.run(config, "/nonexistent/never/written")


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_all_densities_in_one_call_equal_pruning_to_each(scope):
    from jaxlth.pruning import imp
    from jaxlth.pruning import masks as mask_lib

    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    params = {
        "a": {"kernel": jax.random.normal(keys[0], (2, 30, 20))},
        "b": {"kernel": jax.random.normal(keys[1], (2, 20, 7)), "bias": np.zeros((2, 7))},
    }
    mask = jax.vmap(mask_lib.ones_like)(params)
    densities = [0.5, 0.2, 0.03]
    together = imp.prune_to_densities(params, mask, jax.numpy.asarray(densities), scope)
    for i, d in enumerate(densities):
        alone = imp.prune(params, mask, 1.0 - d, scope)
        for x, y in zip(jax.tree.leaves(alone), jax.tree.leaves(jax.tree.map(lambda m: m[i], together))):
            np.testing.assert_array_equal(x, y)
