"""Weight matching's objective, returned and recorded, and its restarts from several orders of the groups."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from jaxlth import experiments, results, rng
from jaxlth.analysis import alignment, matching, permutations
from jaxlth.errors import UserError
from jaxlth.experiments.instability.streams import ALIGN_RESTART
from jaxlth.training import setup as setup_lib
from tests.conftest import tiny_config

SHAPE = (8, 8, 1)


@pytest.fixture(scope="module")
def mlp():
    """Two independently initialised MLPs (three hidden layers of 16, random biases), their symmetry."""
    from jaxlth import models

    model = models.get_model("lenet", 10, widths=(16, 16, 16))

    def params(seed):
        variables = model.init(jax.random.PRNGKey(seed), jnp.zeros((1, *SHAPE)), train=False)
        flat = traverse_util.flatten_dict(variables["params"])
        for i, path in enumerate(sorted(flat)):
            if path[-1] == "bias":
                flat[path] = 0.1 * jax.random.normal(jax.random.PRNGKey(100 * seed + i), flat[path].shape)
        return traverse_util.unflatten_dict(flat)

    def apply(p, b, x):
        return model.apply({"params": p}, x, train=False)

    pa, pb = params(0), params(1)
    symmetry = permutations.analyze(apply, pa, {}, SHAPE)
    return symmetry, permutations.sizes(symmetry.spec, pa, {}), pa, pb


def inner_product(a, b) -> float:
    """``<a, b>`` over every leaf, in float64."""
    return sum(
        float(np.vdot(np.asarray(x, np.float64), np.asarray(y, np.float64)))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


def test_the_returned_objective_is_the_inner_product_of_a_and_permuted_b(mlp):
    symmetry, sizes, pa, pb = mlp
    perms, objective = matching.weight_matching(symmetry.spec, sizes, pa, pb, seed=0)
    permuted, _ = permutations.permute(symmetry.spec, perms, pb, {})
    np.testing.assert_allclose(objective, inner_product(pa, permuted), rtol=1e-12)
    assert objective > inner_product(pa, pb)  # matching raised it from the identity's

    x = jax.random.normal(jax.random.PRNGKey(2), (32, *SHAPE))
    perms, objective = matching.activation_matching(symmetry, pa, {}, pb, {}, x, chunk=32)
    permuted, _ = permutations.permute(symmetry.spec, perms, pb, {})
    acts_a = permutations.activations(symmetry, pa, {}, x)
    acts_b = permutations.activations(symmetry, permuted, {}, x)
    recomputed = sum(inner_product(acts_a[g], acts_b[g]) for g in symmetry.spec)
    np.testing.assert_allclose(objective, recomputed, rtol=1e-6)


def test_restarts_keep_the_best_order_and_one_restart_is_the_single_order(mlp):
    symmetry, sizes, pa, pb = mlp
    single, single_objective = matching.weight_matching(symmetry.spec, sizes, pa, pb, seed=0)
    by_seed = [matching.weight_matching(symmetry.spec, sizes, pa, pb, seed=s)[1] for s in range(8)]
    assert by_seed[0] == single_objective and len(set(np.round(by_seed, 6))) > 1  # the order matters here
    best, best_objective = matching.weight_matching(symmetry.spec, sizes, pa, pb, seed=0, restart_seeds=range(1, 8))
    assert best_objective == max(by_seed) > single_objective  # strictly better than the single order
    permuted, _ = permutations.permute(symmetry.spec, best, pb, {})
    np.testing.assert_allclose(best_objective, inner_product(pa, permuted), rtol=1e-12)
    again, again_objective = matching.weight_matching(symmetry.spec, sizes, pa, pb, seed=0, restart_seeds=())
    assert again_objective == single_objective
    assert all(np.array_equal(again[g], single[g]) for g in single)
    worse = [s for s in range(1, 8) if by_seed[s] < single_objective]
    kept, kept_objective = matching.weight_matching(symmetry.spec, sizes, pa, pb, seed=0, restart_seeds=worse)
    assert kept_objective == single_objective and all(np.array_equal(kept[g], single[g]) for g in single)


def test_match_is_per_replicate_and_takes_each_replicates_keys(mlp):
    symmetry, sizes, pa, pb = mlp
    stack = lambda *trees: jax.tree.map(lambda *xs: jnp.stack(xs), *trees)  # noqa: E731
    net_a = {"params": stack(pa, pb), "batch_stats": {}}
    net_b = {"params": stack(pb, pa), "batch_stats": {}}
    keys = jnp.stack([rng.replicate_keys(3, 2, ALIGN_RESTART.at(i)) for i in range(1, 5)], axis=1)  # (2, 4, 2)
    assert keys.shape == (2, 4, 2)
    aligned, objectives = alignment.match(None, net_a, net_b, "weights", symmetry, seed=3, restart_keys=keys)
    assert objectives.shape == (2,) and objectives.dtype == np.float64
    for r in range(2):
        one = lambda net: jax.tree.map(lambda x: x[r : r + 1], net)  # noqa: E731
        alone, objective = alignment.match(
            None, one(net_a), one(net_b), "weights", symmetry, seed=3, restart_keys=keys[r : r + 1]
        )
        assert objective[0] == objectives[r]
        for x, y in zip(jax.tree.leaves(alone), jax.tree.leaves(one(aligned))):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    plain, plain_objectives = alignment.match(None, net_a, net_b, "weights", symmetry, seed=3)
    assert np.all(objectives >= plain_objectives)
    no_keys = alignment.match(None, net_a, net_b, "weights", symmetry, seed=3, restart_keys=keys[:, :0])[1]
    np.testing.assert_array_equal(no_keys, plain_objectives)
    assert alignment.match(None, net_a, net_b, "none")[1] is None


def objective_rows(table):
    rows = table[table["metric"] == "matching_objective"]
    return rows.sort_values(["arm", "pair", "replicate"]).reset_index(drop=True)


def test_an_instability_run_records_the_objective_of_every_aligned_path(tmp_path):
    workdir = str(tmp_path / "run")
    changes = {"instability.align": ("none", "weights"), "instability.spawn_steps": "4it"}
    config = tiny_config("instability", replicates=2, **changes)
    experiments.run(config, workdir)
    run = results.load(workdir)
    rows = objective_rows(run.table)
    assert len(rows) == 2 and set(rows["align"]) == {"weights"} and set(rows["split"]) == {"params"}
    assert list(rows["replicate"]) == [0, 1] and set(rows["pair"]) == {"0-1"} and rows["alpha"].isna().all()
    setup = setup_lib.build(config)
    a = jax.tree.map(jnp.asarray, run.copies(4, copy=0))
    b = jax.tree.map(jnp.asarray, run.copies(4, copy=1))
    _, expected = alignment.match(setup.program, a, b, "weights", seed=config.seed)
    np.testing.assert_allclose(rows["value"], expected, rtol=1e-6)  # one CSV cell: 7 significant digits at least
    barriers = run.table[run.table["metric"] == "barrier_frankle"]
    assert set(barriers["align"]) == {"none", "weights"}

    # more restarts: the paths are measured again (may change), their rows replaced, never worse
    more = tiny_config("instability", replicates=2, **changes, **{"instability.align_restarts": 4})
    experiments.run(more, workdir)
    table = results.load(workdir).table
    rerun = objective_rows(table)
    assert len(rerun) == 2 and np.all(rerun["value"].to_numpy() >= rows["value"].to_numpy() - 1e-9)
    assert len(table[table["metric"] == "barrier_frankle"]) == len(barriers)
    keys = jnp.stack([rng.replicate_keys(config.seed, 2, ALIGN_RESTART.at(i)) for i in range(1, 4)], axis=1)
    _, restarted = alignment.match(setup.program, a, b, "weights", seed=config.seed, restart_keys=keys)
    np.testing.assert_allclose(rerun["value"], restarted, rtol=1e-6)


@pytest.mark.parametrize("restarts", [0, 1001, True])
def test_bad_restart_counts_are_refused(restarts):
    with pytest.raises(UserError, match="align_restarts must be an integer from 1 to 1000"):
        tiny_config("instability", **{"instability.align_restarts": restarts})
