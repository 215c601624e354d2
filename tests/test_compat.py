"""Nothing a user relies on changed: runs are bitwise those of the release before the experiment
protocol, and workdirs that release wrote still load, resume and extend.

``tests/fixtures/v1`` holds three tiny workdirs written by commit 9689c42
(``tests/fixtures/make_v1_workdirs.sh``): a lottery run, an instability run analysing it
(copies of level 1, successive levels, perturbation) and a dense instability run.
``tests/fixtures/v2`` holds the rows and the artifacts' digests of a small run of every experiment
kind (14 runs: sweeps, averaging, SNIP-scored levels, pretraining on a data diet, alignment, REPAIR,
...) recorded by commit 2ba803e, before experiments became folders (``tests/fixtures/make_v2_digests.py``);
runs whose numbers a later change meant to change were recorded again (``versions.json`` says which and why).
Both were recorded on an Intel CPU with AVX-512: on another kind of CPU (an AVX2-only AMD EPYC; an AMD EPYC with
AVX-512) or jax release, XLA may add in another order, so there artifacts and rows are compared to float tolerance
(v2: each leaf's statistics).
"""

import json
import os
import shutil

import jax
import numpy as np
import pytest

from jaxlth import checkpoint, experiments, results
from jaxlth import config as config_lib
from tests.conftest import TINY, assert_same_rows, same_xla

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "v1")
with open(os.path.join(FIXTURES, "versions.json")) as f:
    VERSIONS = json.load(f)
# Bitwise equality holds for the same XLA on the same kind of CPU; another jax release or CPU may add in
# another order.
SAME_XLA = same_xla(VERSIONS)

COMMON = {
    "data.synthetic_image_shape": (8, 8, 1),
    "model.options.widths": (16, 8),
    "replicates": 2,
    "keep_checkpoints": 1,
    "progress": False,
}


def fixture_config(name: str, lottery_dir: str = ""):
    """The config the fixture's workdir ``name`` was written with (see make_v1_workdirs.sh)."""
    if name == "lottery":
        return config_lib.from_file(f"{TINY}:lottery", **COMMON)
    if name == "instability_source":
        return config_lib.from_file(
            f"{TINY}:instability",
            **COMMON,
            **{
                "instability.source_workdir": lottery_dir,
                "instability.level": 1,
                "instability.spawn_steps": "3it",
                "instability.between_levels": True,
                "instability.perturb_scales": (0.5,),
            },
        )
    return config_lib.from_file(
        f"{TINY}:instability", **COMMON, **{"instability.perturb_scales": (0.5,), "instability.perturb_step": "4it"}
    )


def artifacts(workdir: str) -> list[str]:
    """Names of the saved artifacts of a workdir (``imp/level_01/mask``, ...)."""
    base = os.path.join(workdir, "artifacts")
    return sorted(os.path.relpath(d, base) for d, _, _ in os.walk(base) if checkpoint.artifact_exists(d))


def assert_trees_equal(a, b, exact: bool):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        if exact:
            np.testing.assert_array_equal(x, y)
        else:
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def rerun(tmp_path_factory):
    """The fixture's three runs made again by today's code."""
    base = tmp_path_factory.mktemp("rerun")
    for name in ("lottery", "instability_source", "instability"):
        experiments.run(fixture_config(name, str(base / "lottery")), str(base / name))
    return base


@pytest.mark.parametrize("name", ["lottery", "instability_source", "instability"])
def test_runs_are_bitwise_those_of_the_previous_release(rerun, name):
    old, new = os.path.join(FIXTURES, name), str(rerun / name)
    assert set(artifacts(new)) - set(artifacts(old)) <= {"init"}  # instability runs keep their init since issue 25
    assert set(artifacts(old)) <= set(artifacts(new))
    for artifact in artifacts(old):
        assert_trees_equal(
            checkpoint.load_artifact(os.path.join(old, "artifacts", artifact)),
            checkpoint.load_artifact(os.path.join(new, "artifacts", artifact)),
            exact=SAME_XLA,
        )
    a, b = results.load(old).table, results.load(new).table
    assert len(a) == len(b)
    columns = [c for c in a.columns if c in b.columns and c != "value"] + ["value"]
    if SAME_XLA:
        assert_same_rows(a, b, columns)
    else:
        keys = columns[:-1]
        tidy = [t[columns].fillna("").sort_values(keys).reset_index(drop=True) for t in (a, b)]
        np.testing.assert_allclose(tidy[0]["value"].astype(float), tidy[1]["value"].astype(float), rtol=1e-4, atol=1e-5)


def copy_fixtures(tmp_path) -> str:
    target = tmp_path / "v1"
    shutil.copytree(FIXTURES, target)
    path = target / "instability_source" / "config.json"
    saved = json.loads(path.read_text())
    saved["instability"]["source_workdir"] = str(target / "lottery")
    path.write_text(json.dumps(saved, indent=2, sort_keys=True))
    return str(target)


def test_old_workdirs_load_in_the_results_api(tmp_path):
    base = copy_fixtures(tmp_path)
    lottery = results.load(os.path.join(base, "lottery"))
    assert lottery.levels() == [0, 1, 2] and lottery.levels("random_prune") == [1, 2]
    assert lottery.mask(2, replicate=1)["hidden_0"]["kernel"].shape == (64, 16)
    assert lottery.params(1, which="rewind")["hidden_0"]["kernel"].shape == (2, 64, 16)
    perturb = results.load(os.path.join(base, "instability")).table
    perturb = perturb[(perturb.arm == "perturb") & (perturb.metric == "barrier_frankle")]
    assert len(perturb) == 4 and set(perturb.noise_scale) == {0.5} and perturb.pair.isna().all()
    assert "perturbed" not in set(results.load(os.path.join(base, "instability")).table.arm)
    copies = results.load(os.path.join(base, "instability_source")).copies(3, replicate=1, copy=0)
    assert copies["params"]["hidden_0"]["kernel"].shape == (64, 16)


def test_old_workdirs_resume_and_extend(tmp_path):
    base = copy_fixtures(tmp_path)
    before = {
        a: checkpoint.load_artifact(os.path.join(base, "lottery", "artifacts", a))
        for a in artifacts(os.path.join(base, "lottery"))
    }
    rows_before = len(results.load(os.path.join(base, "lottery")).table)

    longer = fixture_config("lottery")
    longer.lottery.levels = 3
    experiments.run(longer, os.path.join(base, "lottery"))
    run = results.load(os.path.join(base, "lottery"))
    assert run.levels() == [0, 1, 2, 3] and run.levels("random_reinit") == [1, 2, 3]
    for name, tree in before.items():
        assert_trees_equal(tree, checkpoint.load_artifact(os.path.join(base, "lottery", "artifacts", name)), True)
    assert len(run.table[run.table.level < 3]) == rows_before
    np.testing.assert_allclose(
        run.table[(run.table.level == 3) & (run.table.arm == "imp")].density.max(), 0.8**3, atol=2 / (64 * 16 + 16 * 8)
    )

    grown = fixture_config("instability")
    grown.instability.spawn_steps = "0it,4it,8it"
    experiments.run(grown, os.path.join(base, "instability"))
    table = results.load(os.path.join(base, "instability")).table
    assert sorted(table[(table.metric == "barrier_paul") & (table.arm == "copies")].spawn_step.unique()) == [0, 4, 8]
    experiments.run(
        fixture_config("instability_source", os.path.join(base, "lottery")), os.path.join(base, "instability_source")
    )  # all done: no work


# ----- v2: a small run of every experiment kind, recorded before experiments became folders -------------
@pytest.fixture(scope="module")
def made_again(tmp_path_factory):
    """The runs of tests/fixtures/v2 made again by today's code (tests/compat_v2.py)."""
    from tests import compat_v2

    base = str(tmp_path_factory.mktemp("v2"))
    compat_v2.make(base)
    return base


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", [name for name, _, _ in json.load(open(os.path.join(os.path.dirname(FIXTURES), "v2", "runs.json")))["runs"]]
)
def test_every_kind_is_bitwise_what_it_was_before_the_folders(made_again, name):
    from tests import compat_v2

    assert compat_v2.differences(name, os.path.join(made_again, name)) == []
