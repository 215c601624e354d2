"""The prune_at_init experiment end to end: masks, ablations, training starts, rows, references, resume."""

import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlth import checkpoint, experiments, results, rng
from jaxlth.errors import UserError
from jaxlth.experiments import context as context_lib
from jaxlth.experiments import registry, scoring
from jaxlth.pruning import at_init, scorers
from jaxlth.pruning import masks as mask_lib
from jaxlth.training import setup as setup_lib
from tests.conftest import TINY, assert_same_rows, checkpoint_steps, run_cli, start_and_kill, tiny_config

METHODS = ("magnitude", "snip", "synflow", "erk")


@pytest.fixture(scope="module")
def pai_run(tmp_path_factory):
    """A tiny run: 4 methods, densities 0.5 and 0.1, all three ablations, 2 replicates; and the
    initial states of every training, recorded as they started."""
    workdir = str(tmp_path_factory.mktemp("pai") / "run")
    starts = {}
    original = context_lib.Context.train

    def recording(self, name, segment, mask, initial_state, labels, **kwargs):
        starts[name] = (segment.start, jax.tree.map(np.asarray, initial_state()), kwargs.get("coordinates"))
        return original(self, name, segment, mask, initial_state, labels, **kwargs)

    config = tiny_config("prune_at_init", replicates=2, **{"prune_at_init.methods": METHODS})
    context_lib.Context.train = recording
    try:
        experiments.run(config, workdir)
    finally:
        context_lib.Context.train = original
    return results.load(workdir), starts, config


def kept(mask):
    return {name: np.asarray(v) for name, v in mask_lib.layer_density(mask, replicate_axis=True).items()}


def test_masks_reach_the_target_densities_and_equal_the_scorers_called_directly(pai_run):
    run, _, config = pai_run
    setup = setup_lib.build(config)
    init = run.network(which="init")
    dense = setup.dense_mask(init["params"])
    data = scoring.batches(setup, 4)
    total = mask_lib.num_prunable(dense, replicate_axis=True)
    for method in ("magnitude", "snip", "synflow"):
        how = scoring.pruning(setup, at_init.METHODS[method].scorer, "global")
        direct = scoring.masks_at_densities(
            how, jax.tree.map(jnp.asarray, init), dense, data, scoring.method_keys(config, method), (0.5, 0.1)
        )
        for level, d in ((1, 0.5), (2, 0.1)):
            mask = run.mask(level, arm=method)
            counts = sum(np.sum(m, axis=tuple(range(1, m.ndim))) for m in jax.tree.leaves(mask))
            np.testing.assert_array_equal(counts, np.floor(d * total))
            for a, b in zip(jax.tree.leaves(mask), jax.tree.leaves(jax.tree.map(lambda m: m[:, level - 1], direct))):
                np.testing.assert_array_equal(a, b)


def test_snip_scores_on_balanced_unaugmented_examples_of_each_replicate(pai_run):
    _, _, config = pai_run
    setup = setup_lib.build(config)
    x, y = scoring.batches(setup, 4)
    assert x.shape[:3] == (2, 1, 4 * setup.dataset.num_classes) and not np.array_equal(x[0], x[1])
    for r in range(2):
        assert (
            np.bincount(np.asarray(y[r, 0]), minlength=setup.dataset.num_classes).tolist()
            == [4] * setup.dataset.num_classes
        )


def test_ablations_keep_each_layers_density_and_start_from_the_right_weights(pai_run):
    run, starts, config = pai_run
    init = run.network(which="init")
    for method in ("magnitude", "snip", "synflow"):
        for level in (1, 2):
            base = run.mask(level, arm=method)
            for ablation in ("shuffle", "reinit", "invert"):
                mask = run.mask(level, arm=f"{method}_{ablation}")
                for name, density in kept(mask).items():
                    np.testing.assert_allclose(density, kept(base)[name], atol=0 if ablation != "invert" else 1.0)
            assert all(
                np.array_equal(a, b)
                for a, b in zip(jax.tree.leaves(run.mask(level, arm=f"{method}_reinit")), jax.tree.leaves(base))
            )
            shuffled = run.mask(level, arm=f"{method}_shuffle")
            assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(shuffled), jax.tree.leaves(base)))
            inverted = run.mask(level, arm=f"{method}_invert")
            assert (
                mask_lib.density(inverted, replicate_axis=True).tolist()
                == mask_lib.density(base, replicate_axis=True).tolist()
            )
    # the inverted magnitude mask keeps the smallest initial weights
    inv = run.mask(1, arm="magnitude_invert")
    weights = np.concatenate([np.abs(init["params"][n]["kernel"][0]).ravel() for n in inv])
    chosen = np.concatenate([inv[n]["kernel"][0].ravel() for n in inv])
    assert weights[chosen].max() <= weights[~chosen].min()
    # starts: init weights on each mask; reinit from a fresh initialisation of its own stream
    step, state, coordinates = starts["magnitude"]
    assert step == 0
    order = [(c["arm"], c["level"]) for c in coordinates[: len(coordinates) // 2]]
    assert order == [(f"magnitude{s}", level) for s in ("", "_shuffle", "_reinit", "_invert") for level in (1, 2)]
    kernel, first = state.params["hidden_0"]["kernel"], init["params"]["hidden_0"]["kernel"][0]
    for i, (name, level) in enumerate(order):
        mask = run.mask(level, arm=name)["hidden_0"]["kernel"][0]
        source = run.network(level, 0, which="rewind", arm=name)["params"]["hidden_0"]["kernel"]
        np.testing.assert_array_equal(kernel[i], source)
        if name.endswith("reinit"):
            assert not np.allclose(kernel[i][mask], first[mask])
        else:
            np.testing.assert_array_equal(kernel[i], np.where(mask, first, 0))


def test_the_widths_replicate_counts_use_are_the_widest_training_here(pai_run):
    _, starts, config = pai_run
    widest = max(jax.tree.leaves(state.params)[0].shape[0] for _, state, _ in starts.values())
    assert widest == config.replicates * registry.get("prune_at_init").widths(config)[0] == 2 * 2 * 4


def test_random_methods_take_no_ablations_and_erk_masks_follow_erk(pai_run):
    run, _, _ = pai_run
    arms = set(run.table["arm"])
    assert "erk" in arms and not any(a.startswith("erk_") for a in arms)
    from jaxlth.pruning import prune as prune_lib

    mask = run.mask(2, arm="erk")
    shapes = [m.shape[1:] for m in jax.tree.leaves(mask)]
    expected = prune_lib.erk_densities(shapes, 0.1)
    for got, want, shape in zip(jax.tree.leaves(mask), np.asarray(expected), shapes):
        assert got[0].sum() == int(np.floor(np.float32(want) * np.prod(shape)))


def test_rows_carry_method_ablation_and_target_density_and_the_figures_are_written(pai_run):
    run, _, _ = pai_run
    test = run.table[(run.table["split"] == "test") & (run.table["metric"] == "accuracy")]
    final = test[test["step"] == test["step"].max()]
    assert len(final) == 2 * (3 * 4 * 2 + 2)  # replicates x (3 methods x 4 variants + erk) x densities
    assert set(final["ablation"]) == {"none", "shuffle", "reinit", "invert"}
    assert sorted(set(final["target_density"])) == [0.1, 0.5]
    from jaxlth import plots

    text = plots.format_prune_at_init(run.table)
    assert "SNIP, layerwise shuffled" in text and "random, ERK" in text
    written = plots.save_prune_at_init_figures(run.table, os.path.join(run.workdir, "plots"))
    assert [os.path.basename(p) for p in written] == ["prune_at_init.png", "prune_at_init_ablations.png"]


def test_a_lottery_run_gives_the_reference_lines_and_its_densities(tmp_path):
    lottery = str(tmp_path / "lottery")
    experiments.run(
        tiny_config("lottery", **{"lottery.branches": (), "lottery.levels": 2, "lottery.rewind": "0it"}), lottery
    )
    workdir = str(tmp_path / "pai")
    config = tiny_config(
        "prune_at_init",
        **{
            "prune_at_init.methods": ("random",),
            "prune_at_init.densities": (),
            "prune_at_init.source_workdir": lottery,
        },
    )
    assert registry.get("prune_at_init").widths(config) == (2, 2)  # the source's two pruned levels, no ablations
    experiments.run(config, workdir)
    run, source = results.load(workdir), results.load(lottery)
    imp = run.table[run.table["arm"] == "imp"]
    assert sorted(set(imp["level"])) == [0, 1, 2]
    source_densities = sorted(
        set(
            source.table[
                (source.table["arm"] == "imp") & (source.table["level"] > 0) & (source.table["split"] == "test")
            ]["density"]
        )
    )
    random_densities = sorted(
        set(run.table[(run.table["arm"] == "random") & (run.table["split"] == "test")]["density"])
    )
    np.testing.assert_allclose(random_densities, source_densities, atol=1e-6)
    from jaxlth import plots

    assert "IMP, weight rewinding" in plots.format_prune_at_init(run.table)


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"prune_at_init.methods": ("snip", "bogus")}, "unknown prune_at_init.methods entry 'bogus'"),
        ({"prune_at_init.densities": (0.5, 1.0)}, "must lie in (0, 1)"),
        ({"prune_at_init.densities": (0.0,)}, "must lie in (0, 1)"),
        ({"prune_at_init.densities": (0.5, 0.5)}, "lists a density twice"),
        ({"prune_at_init.densities": ()}, "no prune_at_init.source_workdir"),
        ({"prune_at_init.examples_per_class": 0}, "score on training examples"),
        ({"prune_at_init.ablations": ("flip",)}, "unknown prune_at_init.ablations entry 'flip'"),
        ({"prune_at_init.scope": "blockwise"}, "unknown prune_at_init.scope"),
        ({"prune_at_init.rounds": -1}, "non-negative integer"),
        ({"prune_at_init.batchnorm": "frozen"}, "unknown prune_at_init.batchnorm"),
        ({"prune_at_init.source_workdir": "('/a',"}, "is not a path or a tuple of paths"),
    ],
)
def test_bad_settings_are_refused_before_any_data(changes, fragment):
    with pytest.raises(UserError, match=re.escape(fragment)):
        tiny_config("prune_at_init", **changes)


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("--config.prune_at_init.source_workdir=/nonexistent", "prune_at_init.source_workdir"),
        ("--config.prune_at_init.examples_per_class=1000", "has only"),
    ],
)
def test_bad_settings_give_one_sentence_and_write_nothing(tmp_path, override, fragment):
    workdir = tmp_path / "run"
    proc = run_cli("--config", f"{TINY}:prune_at_init", "--workdir", str(workdir), override)
    assert proc.returncode != 0 and fragment in proc.stderr and "Traceback" not in proc.stderr
    assert not (workdir / "results.csv").exists() or fragment == "has only"


def test_a_scorer_that_needs_data_on_a_data_free_path_is_refused():
    params = {"Dense_0": {"kernel": jnp.ones((3, 2))}}
    mask = mask_lib.ones_like(params)
    model = scorers.Model(lambda p, bs, x, train: x @ p["Dense_0"]["kernel"], (3,))
    key = jax.random.PRNGKey(0)
    network = {"params": params, "batch_stats": {}}
    with pytest.raises(UserError, match="snip scores on training examples"):
        at_init.masks_at_densities(
            at_init.Pruning(scorers.SCORERS["snip"], model, "global"), network, mask, None, key, jnp.asarray([0.5])
        )
    with pytest.raises(UserError, match="grasp scores on training examples"):
        at_init.prune_fraction(
            at_init.Pruning(scorers.SCORERS["grasp"], model, "global"), network, mask, None, key, 0.5
        )
    kept = at_init.masks_at_densities(
        at_init.Pruning(scorers.SCORERS["synflow"], model, "global", 3), network, mask, None, key, jnp.asarray([0.5])
    )
    assert int(jnp.sum(kept["Dense_0"]["kernel"])) == 3


def test_a_killed_run_resumes_bitwise(tmp_path):
    args = [
        "--config",
        f"{TINY}:prune_at_init",
        "--config.prune_at_init.methods=('snip','synflow')",
        "--config.prune_at_init.ablations=('shuffle',)",
        "--config.checkpoint_every=2it",
    ]
    run_cli(*args, "--workdir", str(tmp_path / "reference"), check=True)
    workdir = tmp_path / "killed"
    start_and_kill(
        [*args, "--workdir", str(workdir)], lambda: checkpoint_steps(workdir / "checkpoints" / "synflow")[-1:] >= [6]
    )
    run_cli(*args, "--workdir", str(workdir), check=True)
    reference, killed = results.load(str(tmp_path / "reference")), results.load(str(workdir))
    for name in ("snip/level_02/final", "synflow_shuffle/level_01/final", "synflow/level_02/mask"):
        a = checkpoint.load_artifact(results.artifact_dir(reference.workdir, name))
        b = checkpoint.load_artifact(results.artifact_dir(killed.workdir, name))
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            np.testing.assert_array_equal(u, v)
    assert_same_rows(reference.table, killed.table, ["arm", "level", "step", "replicate", "split", "metric", "value"])
    assert rng.method_stream("snip") != rng.method_stream("synflow")


def test_imp_with_another_scorer_prunes_each_level_by_it_for_every_fraction_of_a_sweep(tmp_path):
    config = tiny_config(
        "lottery",
        replicates=2,
        **{
            "lottery.scorer": "snip",
            "lottery.scorer_examples_per_class": 3,
            "lottery.branches": (),
            "lottery.prune_fraction": (0.3, 0.6),
        },
    )
    experiments.run(config, str(tmp_path / "snip"))
    run = results.load(str(tmp_path / "snip"))
    setup = setup_lib.build(config)
    data = scoring.batches(setup, 3)
    for level in (1, 2):
        previous = jax.tree.map(
            jnp.asarray, checkpoint.load_artifact(results.artifact_dir(run.workdir, f"imp/level_{level - 1:02d}/final"))
        )
        previous_mask = jax.tree.map(jnp.asarray, run.mask(level - 1))
        expected = scoring.prune_each(
            scoring.pruning(setup, "snip", "global"),
            previous,
            previous_mask,
            data,
            scoring.method_keys(config, "snip", level),
            jnp.asarray([0.3, 0.6, 0.3, 0.6]),
            copies=2,
        )
        for a, b in zip(jax.tree.leaves(run.mask(level)), jax.tree.leaves(expected)):
            np.testing.assert_array_equal(a, b)
        remaining = [int(sum(np.sum(m[i]) for m in jax.tree.leaves(previous_mask))) for i in range(4)]
        now = [int(sum(np.sum(m[i]) for m in jax.tree.leaves(run.mask(level)))) for i in range(4)]
        assert now == [r - int(np.ceil(p * r - 1e-9)) for r, p in zip(remaining, (0.3, 0.6, 0.3, 0.6))]
    magnitude = tiny_config("lottery", replicates=2, **{"lottery.branches": (), "lottery.prune_fraction": (0.3, 0.6)})
    experiments.run(magnitude, str(tmp_path / "magnitude"))
    by_magnitude = results.load(str(tmp_path / "magnitude")).mask(1)
    assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(by_magnitude), jax.tree.leaves(run.mask(1))))


def test_bad_lottery_scorer_settings_are_refused():
    with pytest.raises(UserError, match="unknown lottery.scorer 'fisher'"):
        tiny_config("lottery", **{"lottery.scorer": "fisher"})
    with pytest.raises(UserError, match="lottery.scorer grasp scores on training examples"):
        tiny_config("lottery", **{"lottery.scorer": "grasp", "lottery.scorer_examples_per_class": 0})


def test_scorers_on_a_batchnorm_residual_network_of_32x32_images():
    """The conv/BatchNorm path of the CIFAR recipes: SNIP and GraSP in train mode (the batch's own
    statistics, Frankle et al. 2021's code) differ from eval mode; SynFlow rounds keep every layer."""
    config = tiny_config(
        "prune_at_init",
        **{"data.synthetic_image_shape": (32, 32, 3), "data.synthetic_train_size": 64, "lottery.layers_to_ignore": ()},
    )
    config.model.name = "resnet_cifar"
    config.model.options = {"depth": 8, "width": 4}
    setup = setup_lib.build(config)
    state = setup.init_state()
    network = {"params": state.params, "batch_stats": state.batch_stats}
    assert jax.tree.leaves(state.batch_stats)
    dense = setup.dense_mask(state.params)
    data = scoring.batches(setup, 2)
    total = mask_lib.num_prunable(dense, replicate_axis=True)
    found = {}
    for method, statistics in (("snip", True), ("snip", False), ("grasp", True), ("synflow", True)):
        how = scoring.pruning(setup, method, "global", 5 if method == "synflow" else 0, batch_statistics=statistics)
        masks = scoring.masks_at_densities(how, network, dense, data, scoring.method_keys(config, method), (0.2,))
        counts = sum(int(np.sum(m)) for m in jax.tree.leaves(masks))
        assert counts == int(np.floor(0.2 * total))
        found[method, statistics] = masks
        if method == "synflow":
            assert min(float(d) for d in mask_lib.layer_density(jax.tree.map(lambda m: m[0, 0], masks)).values()) > 0
    assert not all(
        np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(found["snip", True]), jax.tree.leaves(found["snip", False]))
    )


def test_pruning_at_step_k_scores_and_trains_from_the_network_at_k(tmp_path):
    starts = {}
    original = context_lib.Context.train

    def recording(self, name, segment, mask, initial_state, labels, **kwargs):
        starts[name] = (segment.start, jax.tree.map(np.asarray, initial_state()))
        return original(self, name, segment, mask, initial_state, labels, **kwargs)

    config = tiny_config(
        "prune_at_init",
        **{
            "prune_at_init.methods": ("magnitude",),
            "prune_at_init.at": "3it",
            "prune_at_init.densities": (0.3,),
            "prune_at_init.ablations": (),
        },
    )
    context_lib.Context.train = recording
    try:
        experiments.run(config, str(tmp_path / "at3"))
    finally:
        context_lib.Context.train = original
    run = results.load(str(tmp_path / "at3"))
    rewind = checkpoint.load_artifact(results.artifact_dir(run.workdir, "rewind"))
    init = run.network(which="init")
    assert not np.array_equal(rewind["params"]["hidden_0"]["kernel"], init["params"]["hidden_0"]["kernel"])
    mask = run.mask(1, arm="magnitude")
    weights = np.concatenate([np.abs(rewind["params"][n]["kernel"][0]).ravel() for n in mask])
    chosen = np.concatenate([mask[n]["kernel"][0].ravel() for n in mask])
    assert weights[chosen].min() >= weights[~chosen].max()  # the largest weights at step 3 are kept
    step, state = starts["magnitude"]
    assert step == 3
    np.testing.assert_array_equal(
        state.params["hidden_0"]["kernel"][0],
        np.where(mask["hidden_0"]["kernel"][0], rewind["params"]["hidden_0"]["kernel"][0], 0),
    )
    assert run.table[run.table["arm"] == "magnitude"]["step"].min() == 3
