"""Aligned linear mode connectivity: networks permuted to match before interpolating."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlth import experiments, results
from jaxlth.analysis import alignment, barriers, connectivity, permutations
from jaxlth.errors import UserError
from jaxlth.training import setup as setup_lib
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def aligned_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("aligned") / "run")
    config = tiny_config(
        "instability",
        replicates=2,
        **{
            "instability.align": ("none", "weights", "activations", "activations+repair"),
            "instability.seed_pairs": True,
            "instability.spawn_steps": "4it",
        },
    )
    experiments.run(config, workdir)
    return results.load(workdir), config


def test_a_network_and_its_own_permutation_have_no_barrier_once_aligned(aligned_run):
    run, config = aligned_run
    setup = setup_lib.build(config)
    network = jax.tree.map(jnp.asarray, run.copies(4, copy=0))
    symmetry = alignment.symmetry_of(setup.program, network)
    one = jax.tree.map(lambda x: x[0], network)
    sizes = permutations.sizes(symmetry.spec, one["params"], one["batch_stats"])
    perms = permutations.random_permutations(symmetry.spec, sizes, jax.random.PRNGKey(0))
    params, stats = permutations.permute(symmetry.spec, perms, one["params"], one["batch_stats"])
    shuffled = jax.tree.map(lambda x: x[None], {"params": params, "batch_stats": stats})
    single = jax.tree.map(lambda x: x[:1], network)
    sets = {"test": (setup.data.test_images, setup.data.test_labels)}
    alphas = barriers.alpha_grid(7)
    before = connectivity.path(setup.program, single, shuffled, alphas, sets)["test"]
    assert before["barrier_frankle"][0] > 0.05  # permuted units: the straight line leaves the mode
    for mode in ("weights", "activations"):
        aligned = alignment.align(setup.program, single, shuffled, mode, symmetry, setup.data.train_images[:64])
        after = connectivity.path(setup.program, single, aligned, alphas, sets)["test"]
        assert after["barrier_frankle"][0] == 0.0
        np.testing.assert_array_equal(after["error"][0], np.full(7, after["error"][0, 0]))


def test_every_path_is_measured_under_every_alignment_and_seeds_connect_once_aligned(aligned_run):
    run, _ = aligned_run
    table = run.table
    barrier = table[(table["metric"] == "barrier_frankle") & (table["split"] == "test")]
    assert set(barrier["align"]) == {"none", "weights", "activations", "activations+repair"}
    assert set(barrier["arm"]) == {"copies", "seeds"}
    seeds = barrier[barrier["arm"] == "seeds"].set_index("align")["value"]
    assert seeds["weights"] < seeds["none"] and seeds["activations"] < seeds["none"]
    from jaxlth import plots

    text = plots.format_barriers(table)
    assert "before and after aligning" in text and "seeds" in text
    unaligned = plots.barriers(table)  # the figures of earlier releases read the unaligned rows only
    assert len(unaligned[unaligned["metric"] == "barrier_frankle"]) == 2  # one per split


def test_repair_keeps_the_endpoints_and_changes_the_path_between(aligned_run):
    table = aligned_run[0].table
    errors = table[(table["metric"] == "error") & (table["split"] == "test") & (table["arm"] == "seeds")]
    plain = errors[errors["align"] == "activations"].set_index("alpha")["value"]
    repaired = errors[errors["align"] == "activations+repair"].set_index("alpha")["value"]
    np.testing.assert_allclose(repaired[[0.0, 1.0]], plain[[0.0, 1.0]], atol=0.011)  # one test example at most
    assert not np.allclose(repaired.values[1:-1], plain.values[1:-1])


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"instability.align": ("weights+rescale",)}, "unknown instability.align entry 'weights\\+rescale'"),
        ({"instability.align": ("none", "procrustes")}, "unknown instability.align entry 'procrustes'"),
        ({"instability.align": ("weights", "weights")}, "at most once"),
        ({"instability.seed_pairs": True}, "needs at least 2 replicates"),
    ],
)
def test_bad_alignment_settings_are_refused(changes, fragment):
    with pytest.raises(UserError, match=fragment):
        tiny_config("instability", **changes)


def test_an_imp_ticket_against_its_random_reinitialisation(tmp_path):
    lottery = str(tmp_path / "lottery")
    experiments.run(tiny_config("lottery", **{"lottery.levels": 1, "lottery.branches": ("random_reinit",)}), lottery)
    config = tiny_config(
        "instability",
        **{
            "instability.source_workdir": lottery,
            "instability.spawn_steps": "",
            "instability.ticket_vs_reinit": True,
            "instability.align": ("none", "weights"),
            "instability.splits": ("test",),
        },
    )
    experiments.run(config, str(tmp_path / "inst"))
    table = results.load(str(tmp_path / "inst")).table
    rows = table[(table["arm"] == "ticket_vs_reinit") & (table["metric"] == "barrier_frankle")]
    assert set(rows["align"]) == {"none", "weights"} and set(rows["level"]) == {1}
    with pytest.raises(UserError, match="need instability.source_workdir"):
        tiny_config("instability", **{"instability.ticket_vs_reinit": True})


def test_the_analysis_api_aligns_and_repairs_a_path(aligned_run):
    from jaxlth import analysis

    run, _ = aligned_run
    analyzer = analysis.for_run(run)
    a, b = run.copies(4, copy=0), run.copies(4, copy=1)
    plain = analyzer.interpolate(a, b, alphas=5)
    aligned = analyzer.interpolate(a, b, alphas=5, align="weights")
    repaired = analyzer.interpolate(a, b, alphas=5, align="activations+repair", align_examples=64, repair_examples=64)
    for curve in (plain, aligned, repaired):
        assert curve["error"].shape == (2, 5)
    np.testing.assert_allclose(repaired["error"][:, [0, -1]], plain["error"][:, [0, -1]], atol=0.011)
    with pytest.raises(ValueError, match="alignment must be one of"):
        analyzer.interpolate(a, b, align="sideways")
