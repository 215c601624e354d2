"""A researcher's own experiment, outside jaxlth, with no edit of jaxlth: the walk-through of
docs/extending.md ("An experiment") written to a temporary package exactly as the page shows it,
then registered (by ``experiment_module`` and by an entry point), validated, run, killed and
resumed bitwise, reported and loaded through ``jaxlth.results``. Everything runs in subprocesses,
so the experiment never joins the registry of the test process."""

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT, TINY, assert_same_rows, checkpoint_steps, run_cli, start_and_kill

pytestmark = pytest.mark.slow
PAGE = os.path.join(ROOT, "docs", "extending.md")
MODULE = "--config.experiment_module=mypkg.early_prune"
SMALL = ["--config.replicates=2", "--config.early_prune.at=4it", "--config.early_prune.densities=(0.5, 0.2)"]


def files_of_the_page() -> dict[str, str]:
    """``{path: source}`` of every file the experiment section shows (a bold path, then its code)."""
    section = open(PAGE, encoding="utf-8").read().split("## An experiment", 1)[1]
    found = dict(re.findall(r"\*\*`(mypkg/[\w/]+\.py)`\*\*(?:(?!\*\*`).)*?```python\n(.*?)```", section, flags=re.S))
    assert set(found) == {f"mypkg/early_prune/{n}.py" for n in ("__init__", "block", "run", "reader", "figures")}
    return found


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """The page's package, importable from ``PYTHONPATH``."""
    base = tmp_path_factory.mktemp("outside")
    for path, source in files_of_the_page().items():
        target = base / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source)
    (base / "mypkg" / "__init__.py").write_text("")
    return base


@pytest.fixture
def outside(package, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(package))
    return package


def cli(*args, check=True):
    return run_cli("--config", f"{TINY}:early_prune", *args, check=check)


def python(code: str, *paths: str) -> str:
    """Runs ``code`` in a fresh Python (``PYTHONPATH`` from the environment); returns its stdout."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def finished(package, tmp_path_factory):
    """An uninterrupted run of the page's experiment, and what it printed."""
    workdir = tmp_path_factory.mktemp("early") / "run"
    env = {"PYTHONPATH": str(package)}
    proc = run_cli("--config", f"{TINY}:early_prune", MODULE, "--workdir", str(workdir), *SMALL, env=env, check=True)
    return workdir, proc


def test_it_runs_reports_and_loads_through_the_results_api(finished, outside):
    workdir, proc = finished
    assert "figures:" in proc.stdout and (workdir / "plots" / "early_prune.png").exists()
    assert "magnitude" in proc.stdout and "random" in proc.stdout  # its summary table
    assert json.loads((workdir / "config.json").read_text())["experiment_module"] == "mypkg.early_prune"
    out = python(
        """
        import sys
        import numpy as np
        import jaxlth.plots, jaxlth.results
        from jaxlth.pruning import masks

        run = jaxlth.results.load(sys.argv[1])
        print(type(run).__name__, run.densities)
        accuracy = run.final_accuracy()
        print(sorted(set(accuracy.arm)), sorted(set(accuracy.level)))
        for level, density in ((1, 0.5), (2, 0.2)):
            for arm in ("magnitude", "random"):
                kept = masks.density(run.mask(level, arm=arm), replicate_axis=True)
                assert np.allclose(kept, density, atol=0.01), (arm, level, kept)
        print(run.params(level=2, arm="random")["hidden_0"]["kernel"].shape)
        print(callable(jaxlth.plots.early_prune_figure), set(run.table.experiment))
        """,
        str(workdir),
    )
    lines = out.splitlines()
    assert lines[0] == "EarlyPruneRun (0.5, 0.2)"
    assert lines[1] == "['magnitude', 'random', 'trunk'] [0, 1, 2]"
    assert lines[2] == "(2, 784, 32)" and lines[3] == "True {'early_prune'}"


def test_a_killed_run_resumes_bitwise(finished, outside, tmp_path):
    reference, _ = finished
    workdir = tmp_path / "killed"
    folder = workdir / "checkpoints" / "pruned" / "level_01"
    start_and_kill(
        ["--config", f"{TINY}:early_prune", MODULE, "--workdir", str(workdir), *SMALL],
        lambda: bool(checkpoint_steps(folder)),
    )
    assert not (workdir / "artifacts" / "magnitude" / "level_02" / "final").exists()  # killed in the middle
    cli(MODULE, "--workdir", str(workdir), *SMALL)
    out = python(
        """
        import sys
        import jax, numpy as np
        import jaxlth.results
        from jaxlth import checkpoint
        a, b = jaxlth.results.load(sys.argv[1]), jaxlth.results.load(sys.argv[2])
        for arm in ("magnitude", "random"):
            for level in (1, 2):
                for x, y in zip(jax.tree.leaves(a.network(level, arm=arm)), jax.tree.leaves(b.network(level, arm=arm))):
                    np.testing.assert_array_equal(x, y)
        print("bitwise")
        """,
        str(reference),
        str(workdir),
    )
    assert out.strip() == "bitwise"
    import pandas as pd

    a, b = (pd.read_csv(w / "results.csv") for w in (reference, workdir))
    assert len(a) == len(b)
    assert_same_rows(a, b, [c for c in a.columns if c != "value"] + ["value"])


def test_bad_input_and_other_settings_are_one_sentence(finished, outside, tmp_path):
    reference, _ = finished
    proc = cli(MODULE, "--workdir", str(tmp_path / "w"), "--config.early_prune.densities=(1.5,)", check=False)
    assert (
        proc.returncode == 2
        and proc.stderr.strip() == "jaxlth: error: early_prune.densities must lie in (0, 1), got (1.5,)"
    )
    before = (reference / "config.json").read_bytes()
    for change in ("--config.early_prune.at=5it", "--config.train.lr=0.05"):
        proc = cli(MODULE, "--workdir", str(reference), *SMALL, change, check=False)
        assert proc.returncode == 2 and "holds a different experiment" in proc.stderr, proc.stderr
        assert (reference / "config.json").read_bytes() == before
    proc = run_cli("--config", f"{TINY}:early_prune", "--workdir", str(tmp_path / "v"))  # the module not named
    assert proc.returncode == 2 and "unknown config argument 'early_prune'" in proc.stderr
    proc = run_cli("--config", TINY, "--workdir", str(tmp_path / "v"), "--config.experiment_module=mypkg.nothing")
    assert (
        proc.returncode == 2
        and proc.stderr.startswith("jaxlth: error: experiment_module mypkg.nothing cannot be imported")
        and "Traceback" not in proc.stderr
    )


def test_help_lists_it(outside):
    proc = run_cli(MODULE, "--help")
    assert "early_prune: prune once at step k" in proc.stdout + proc.stderr


def test_an_entry_point_adds_it_without_naming_the_module(package, tmp_path, monkeypatch):
    site = tmp_path / "site"
    info = site / "mypkg-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mypkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[jaxlth.experiments]\nearly_prune = mypkg.early_prune\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), str(package)]))
    out = python("""
        from jaxlth import config
        print(config.EXPERIMENTS[-1], config.base_config().early_prune.densities)
        """)
    assert out.strip() == "early_prune (0.5, 0.2)"
    cli("--workdir", str(tmp_path / "w"), *SMALL, "--config.train.steps=1ep")
    assert (tmp_path / "w" / "plots" / "early_prune.png").exists()


def test_the_python_of_the_page_runs(finished, outside):
    workdir, _ = finished
    block = re.search(r"```python\n(import jaxlth\.plots.*?)```", open(PAGE, encoding="utf-8").read(), flags=re.S)
    code = block.group(1).replace('"runs/early_prune"', "sys.argv[1]")
    python("import sys\n" + code, str(workdir))
