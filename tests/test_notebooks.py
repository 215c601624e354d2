"""The Colab notebooks in colab/: stored without outputs, one parameter cell on top, and each runs end to end.

Execution runs every notebook top to bottom with nbclient in a fresh ``python3`` kernel of this interpreter,
from the colab/ folder, with a cell of small settings injected right after the parameter cell (as papermill
does), on the real Fashion-MNIST files and on the CPU, simulated as two devices so that the notebooks' "one
replicate per device" path shards replicates. Those tests are marked slow.
"""

import ast
import contextlib
import glob
import importlib.machinery
import importlib.util
import os
import re
import shutil
import subprocess
import sys

import nbformat
import pandas as pd
import pytest

import jaxlth
from jaxlth import results
from jaxlth.data.sources.places import find_local
from tests.conftest import xla_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLAB = os.path.join(ROOT, "colab")
NOTEBOOKS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(COLAB, "*.ipynb")))
QUICKSTART, INSTABILITY, RESULTS_API = "01_lottery_quickstart.ipynb", "02_instability.ipynb", "03_results_api.ipynb"
PRUNE_AT_INIT, ALIGNMENT = "04_prune_at_init.ipynb", "05_alignment.ipynb"
LANDSCAPE, DATA_DIET = "06_landscape.ipynb", "07_data_diet.ipynb"
BERT_TICKETS, REWINDING = "08_bert_tickets.ipynb", "09_rewinding.ipynb"

# Small settings for CI (on top of each notebook's parameter cell; workdirs are added per test).
SMALL = {"STEPS": "200it", "LEVELS": 2, "EVAL_EVERY": "100it", "PROGRESS": False}
CI_SETTINGS = {
    QUICKSTART: dict(SMALL),
    INSTABILITY: dict(SMALL, BRANCHES=(), SPAWN_STEPS="0it,100it", ALPHAS=5, TRAIN_EXAMPLES=1000),
    RESULTS_API: dict(SMALL),
    PRUNE_AT_INIT: dict(
        STEPS="100it",
        EVAL_EVERY="100it",
        PROGRESS=False,
        METHODS=("random", "snip", "synflow"),
        DENSITIES=(0.5, 0.1),
        ABLATIONS=("shuffle",),
    ),
    ALIGNMENT: dict(
        STEPS="300it",
        EVAL_EVERY="300it",
        PROGRESS=False,
        SPAWN_STEPS="100it",
        ALPHAS=3,
        ALIGN=("none", "weights", "activations+repair"),
    ),
    LANDSCAPE: dict(
        STEPS="100it",
        EVAL_EVERY="100it",
        PROGRESS=False,
        LEVELS=1,
        PRUNE_FRACTIONS=(0.2, 0.8),
        EXAMPLES=256,
        TOP_K=2,
        LANCZOS_ITERATIONS=6,
        TRACE_PROBES=2,
        PROJECTION_FRACTIONS=(0.5,),
        ALPHAS=3,
        REPLICATES=1,
    ),
    DATA_DIET: dict(
        STEPS="100it",
        EVAL_EVERY="100it",
        PROGRESS=False,
        SCORE_AT="0it,50it",
        SCORES=("el2n", "random"),
        KINDS=("el2n", "forgetting"),
        PRUNED_FRACTIONS=(0.5,),
        REPLICATES=1,
    ),
    BERT_TICKETS: dict(  # a tiny random BERT and a few dozen SST-2 rows (CHECKPOINT_DIR, GLUE_DIR: per test)
        MODEL="bert",
        STEPS="1ep",
        LEVELS=2,
        PRUNE_FRACTION=0.3,
        REPLICATES=2,
        MAX_LENGTH=16,
        BATCH_SIZE=8,
        PROGRESS=False,
    ),
    REWINDING: dict(  # a ResNet-8 of width 4 on 8x8 synthetic images: the notebook's ResNet-20 path, small
        STEPS="20it",
        EVAL_EVERY="10it",
        PROGRESS=False,
        SPAWN_STEPS="0it,5it",
        ALPHAS=3,
        TRAIN_EXAMPLES=64,
        LEVELS=1,
        REWINDS=("5it", "0it"),
        REPLICATES=2,
        MEASURE_STEPS=1,
        CONFIG={
            "data.name": "synthetic",
            "data.source": "synthetic",
            "data.synthetic_image_shape": (8, 8, 3),
            "data.synthetic_train_size": 256,
            "data.synthetic_test_size": 64,
            "model.name": "resnet_cifar",
            "model.options.depth": 8,
            "model.options.width": 4,
            "train.batch_size": 32,
            "checkpoint_every": "10it",
        },
    ),
}
# Cell metadata Jupyter or Colab write when a notebook is saved after running.
OUTPUT_METADATA = ("execution", "executionInfo", "outputId", "collapsed", "scrolled")

needs_fashion_mnist = pytest.mark.skipif(
    find_local("fashion_mnist") is None,
    reason="real Fashion-MNIST IDX files are not installed (apt-get install dataset-fashion-mnist, or "
    "$JAXLTH_DATA_DIR)",
)


def read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(os.path.join(COLAB, name), as_version=4)


def code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def parameters(nb) -> dict:
    """The parameter cell's assignments as ``{name: value}``."""
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    tree = ast.parse(cell.source)
    return {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body}


def test_the_notebooks_exist():
    assert NOTEBOOKS == [
        QUICKSTART,
        INSTABILITY,
        RESULTS_API,
        PRUNE_AT_INIT,
        ALIGNMENT,
        LANDSCAPE,
        DATA_DIET,
        BERT_TICKETS,
        REWINDING,
    ]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_outputs_are_stripped(name):
    nb = read(name)
    nbformat.validate(nb)
    for cell in code_cells(nb):
        assert cell.outputs == [], f"{name}: cell {cell.id} is stored with outputs"
        assert cell.execution_count is None, f"{name}: cell {cell.id} is stored with an execution count"
    for cell in nb.cells:
        assert not set(cell.metadata) & set(OUTPUT_METADATA), f"{name}: cell {cell.id} has run metadata"
    assert "widgets" not in nb.metadata


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_a_single_parameter_cell_of_plain_assignments_comes_first(name):
    nb = read(name)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{name} needs exactly one cell tagged 'parameters'"
    assert code_cells(nb)[0] is tagged[0], f"{name}: the parameter cell must be the first code cell"
    tree = ast.parse(tagged[0].source)
    for node in tree.body:  # overridable by a later cell, or by papermill -p NAME VALUE
        assert isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name), (
            f"{name}: the parameter cell holds a statement that is not NAME = literal: {ast.unparse(node)}"
        )
        ast.literal_eval(node.value)
    names = [node.targets[0].id for node in tree.body]
    assert len(names) == len(set(names)), f"{name}: a parameter is assigned twice"
    assert {"WORKDIR", "USE_DRIVE", "REPO_URL", "REPO_DIR", "STEPS", "REPLICATES"} <= set(names)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_ci_settings_name_real_parameters(name):
    assert set(CI_SETTINGS[name]) <= set(parameters(read(name))), "CI overrides a name the notebook does not use"


def test_every_notebook_installs_from_the_same_repository():
    assert len({(parameters(read(n))["REPO_URL"], parameters(read(n))["REPO_DIR"]) for n in NOTEBOOKS}) == 1
    setups = {next(c.source for c in read(n).cells if c.id == "setup") for n in NOTEBOOKS}
    assert len(setups) == 1, "the setup cells of the notebooks differ"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_relative_links_resolve(name):
    for cell in read(name).cells:
        if cell.cell_type != "markdown":
            continue
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", cell.source):
            if "://" not in target:
                assert os.path.exists(os.path.join(COLAB, target)), f"{name} links to missing {target}"


def setup_source() -> str:
    return next(c.source for c in read(QUICKSTART).cells if c.id == "setup")


def test_setup_cell_without_jaxlth_or_repo_url_says_what_to_set(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jaxlth" else real(name, *a))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RuntimeError, match="set REPO_URL"):
        exec(setup_source(), {"REPO_URL": "", "REPO_DIR": str(tmp_path / "clone")})  # noqa: S102


@pytest.mark.parametrize("gpu,tpu,extra", [(True, False, "[cuda]"), (False, True, "[tpu]"), (False, False, "")])
def test_setup_cell_in_colab_clones_and_installs_jax_for_the_accelerator(tmp_path, monkeypatch, gpu, tpu, extra):
    """Where jaxlth is missing (a fresh Colab runtime): git clone REPO_URL, pip install it with the right extra."""
    real = importlib.util.find_spec
    calls = []

    def find_spec(name, *args):  # jaxlth is importable only once pip has run
        pip_ran = any(command[1:3] == ["-m", "pip"] for command in calls)
        return None if name == "jaxlth" and not pip_ran else real(name, *args)

    def fake_run(command, check):
        calls.append(command)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/nvidia-smi" if gpu and name == "nvidia-smi" else None)
    monkeypatch.setattr(glob, "glob", lambda pattern: [])
    if tpu:
        monkeypatch.setenv("COLAB_TPU_ADDR", "10.0.0.2:8470")
    else:
        monkeypatch.delenv("COLAB_TPU_ADDR", raising=False)
    monkeypatch.chdir(tmp_path)
    clone = str(tmp_path / "jaxlth")
    namespace = {"REPO_URL": "https://example.org/jaxlth.git", "REPO_DIR": clone}
    exec(setup_source(), namespace)  # noqa: S102
    assert calls == [
        ["git", "clone", "--depth", "1", "https://example.org/jaxlth.git", clone],
        [sys.executable, "-m", "pip", "install", "--quiet", clone + extra],
    ]
    assert namespace["CONFIGS"] == os.path.join(clone, "configs")


@pytest.mark.parametrize("upload", ["jaxlth-0.1.0-py3-none-any.whl", "jaxlth.zip"])
def test_setup_cell_without_repo_url_installs_an_uploaded_wheel_or_archive(tmp_path, monkeypatch, upload):
    """No REPO_URL: a wheel uploaded to the runtime's folder is pip-installed (its recipes come from
    <sys.prefix>/share/jaxlth/configs, where pyproject's data-files put them); a repository archive is
    unpacked into REPO_DIR and installed from there."""
    real = importlib.util.find_spec
    calls = []

    site = tmp_path / "site-packages" / "jaxlth"  # where pip puts a wheel's package: no recipes beside it

    def find_spec(name, *args):
        pip_ran = any(command[1:3] == ["-m", "pip"] for command in calls)
        if name == "jaxlth":
            return importlib.machinery.ModuleSpec("jaxlth", None, origin=str(site / "__init__.py")) if pip_ran else None
        return real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(subprocess, "run", lambda command, check: calls.append(command))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("COLAB_TPU_ADDR", raising=False)
    prefix = tmp_path / "prefix"
    monkeypatch.setattr(sys, "prefix", str(prefix))
    uploads = tmp_path / "content"
    uploads.mkdir()
    monkeypatch.chdir(uploads)
    clone = tmp_path / "clone"
    if upload.endswith(".whl"):
        (uploads / upload).write_bytes(b"a wheel")
        (prefix / "share" / "jaxlth" / "configs").mkdir(parents=True)  # as the wheel installs them
        shutil.copy(os.path.join(ROOT, "configs", "lenet_fashion_mnist.py"), prefix / "share" / "jaxlth" / "configs")
    else:
        archive = tmp_path / "repo"
        (archive / "configs").mkdir(parents=True)
        (archive / "pyproject.toml").write_text("")
        shutil.copy(os.path.join(ROOT, "configs", "lenet_fashion_mnist.py"), archive / "configs")
        shutil.make_archive(str(uploads / "jaxlth"), "zip", archive)
    namespace = {"REPO_URL": "", "REPO_DIR": str(clone), "USE_DRIVE": False}
    exec(setup_source(), namespace)  # noqa: S102
    if upload.endswith(".whl"):
        assert calls == [[sys.executable, "-m", "pip", "install", "--quiet", str(uploads / upload)]]
        assert namespace["CONFIGS"] == str(prefix / "share" / "jaxlth" / "configs")
    else:
        assert calls == [[sys.executable, "-m", "pip", "install", "--quiet", str(clone)]]
        assert namespace["CONFIGS"] == str(clone / "configs")


# ----- execution ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def environment(**changes):
    saved = dict(os.environ)
    os.environ.update(changes)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def execute(name: str, **settings) -> nbformat.NotebookNode:
    """Runs the notebook with ``settings`` injected after its parameter cell; returns it with outputs."""
    from nbclient import NotebookClient  # only the slow tests need a kernel

    nb = read(name)
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    injected = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in settings.items()))
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(index + 1, injected)
    flags = xla_flags("--xla_force_host_platform_device_count=2")
    with environment(JAX_PLATFORMS="cpu", XLA_FLAGS=flags):
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": COLAB}}).execute()
    return nb


def output(nb, cell_id: str) -> str:
    """Everything a cell printed or returned, as text."""
    cell = next(c for c in nb.cells if c.get("id") == cell_id)
    parts = []
    for out in cell.outputs:
        parts.append(out.get("text", "") if out.output_type == "stream" else out.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def images(nb) -> int:
    return sum("image/png" in out.get("data", {}) for c in code_cells(nb) for out in c.outputs)


def check_installed_nothing(nb):
    text = output(nb, "setup")
    assert "pip installed" not in text
    assert f"jaxlth {jaxlth.__version__} from {os.path.dirname(jaxlth.__file__)}" in text  # this interpreter's
    assert f"recipes in {os.path.join(ROOT, 'configs')}" in text


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    """Notebook 01 executed once with CI settings; its workdir is reused by notebook 03."""
    workdir = str(tmp_path_factory.mktemp("colab") / "quickstart")
    return execute(QUICKSTART, WORKDIR=workdir, **CI_SETTINGS[QUICKSTART]), workdir


@pytest.mark.slow
@needs_fashion_mnist
def test_quickstart_notebook_runs_imp_with_two_branches_sharded_over_the_devices(quickstart):
    nb, workdir = quickstart
    check_installed_nothing(nb)
    assert "2 x cpu (cpu); 2 replicates asked for" in output(nb, "devices")
    # the memory check lets the 2 asked for through: LeNet-300-100 needs a few MiB a replicate
    assert re.search(
        r"^2 replicate\(s\); the 2 device\(s\) hold up to \d{3,} \(a network: [\d.,]+ MiB in training",
        output(nb, "data"),
        re.M,
    )
    assert "2 replicates in one compiled program, replicates sharded over 2 devices" in output(nb, "data")
    assert "fashion_mnist: 60000 train / 10000 test images" in output(nb, "data")
    assert "final test accuracy (%)" in output(nb, "run")
    assert images(nb) == 2  # the data and the results figure
    run = results.load(workdir)
    assert run.config["replicates"] == 2 and run.config["lottery"]["levels"] == 2
    assert run.config["train"]["steps"] == "200it" and run.config["data"]["source"] == "auto"
    assert run.levels() == [0, 1, 2]
    assert run.levels("random_prune") == run.levels("random_reinit") == [1, 2]
    for figure in ("accuracy_vs_weights.png", "layer_density.png"):
        assert os.path.getsize(os.path.join(workdir, "plots", figure)) > 5000
    assert "imp" in output(nb, "results") and "random_reinit" in output(nb, "results")


@pytest.mark.slow
@needs_fashion_mnist
def test_quickstart_notebook_run_again_resumes_and_more_levels_extend(quickstart, tmp_path):
    _, first = quickstart
    workdir = str(tmp_path / "again")
    shutil.copytree(first, workdir)
    before = results.load(workdir).table
    nb = execute(QUICKSTART, WORKDIR=workdir, **dict(CI_SETTINGS[QUICKSTART], LEVELS=3))
    after = results.load(workdir)
    assert after.levels() == [0, 1, 2, 3] and after.levels("random_prune") == [1, 2, 3]
    pd.testing.assert_frame_equal(after.table.iloc[: len(before)], before)  # nothing redone, nothing lost
    assert set(after.table.iloc[len(before) :]["level"]) == {3}
    assert re.search(r"^\s*3\s+51\.20\s", output(nb, "run"), re.M)  # level 3 in the summary: 0.8**3 = 51.2%


@pytest.mark.slow
@needs_fashion_mnist
def test_instability_notebook_on_a_fresh_short_lottery_run(tmp_path):
    lottery, workdir = str(tmp_path / "lottery"), str(tmp_path / "instability")
    nb = execute(INSTABILITY, LOTTERY_WORKDIR=lottery, WORKDIR=workdir, **CI_SETTINGS[INSTABILITY])
    check_installed_nothing(nb)
    assert "a short lottery run first" in output(nb, "lottery")
    assert results.load(lottery).levels() == [0, 1, 2]
    table = results.load(workdir).table
    copies = table[(table.arm == "copies") & (table.metric == "barrier_frankle")]
    assert sorted(copies.spawn_step.unique()) == [0, 100] and set(copies.split) == {"test", "train"}
    between = table[(table.arm == "between_levels") & (table.metric == "barrier_paul") & (table.split == "test")]
    assert sorted(between.level.unique()) == [1, 2]
    curve = table[(table.arm == "copies") & (table.metric == "error") & (table.split == "test")]
    assert sorted(curve.alpha.unique()) == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert "barrier between successive IMP levels" in output(nb, "instability")
    assert set(table[table.metric == "matching"].value) <= {0.0, 1.0} and len(table[table.metric == "matching"])
    for figure in ("barrier_vs_spawn_step.png", "interpolation_curves.png", "barrier_between_levels.png"):
        assert os.path.getsize(os.path.join(workdir, "plots", figure)) > 5000
    assert images(nb) == 2  # the three-panel figure and the hand-made interpolation
    # Two initialisations are far less connected than two copies of one trunk (the notebook's point).
    by_hand = float(re.search(r"test error barrier ([\d.]+)% \(Frankle\)", output(nb, "by-hand")).group(1))
    spawned = copies[(copies.split == "test") & (copies.spawn_step == 100)].value.mean()
    assert by_hand > 100 * spawned


@pytest.mark.slow
@needs_fashion_mnist
def test_results_api_notebook_on_the_quickstart_workdir(quickstart):
    _, workdir = quickstart
    nb = execute(RESULTS_API, WORKDIR=workdir, **CI_SETTINGS[RESULTS_API])
    check_installed_nothing(nb)
    assert f"reading the run in {workdir}" in output(nb, "make-run")
    assert "finished IMP levels [0, 1, 2]" in output(nb, "load")
    assert "hidden_0/kernel" in output(nb, "density")
    overlap = output(nb, "overlap")
    assert "IoU across replicates" in overlap and "IoU with random_prune" in overlap
    assert images(nb) == 3  # overlaps, weights, the custom figure


@pytest.mark.slow
@needs_fashion_mnist
def test_prune_at_init_notebook_trains_every_method_and_its_shuffled_mask(tmp_path):
    workdir = str(tmp_path / "pai")
    nb = execute(PRUNE_AT_INIT, WORKDIR=workdir, **CI_SETTINGS[PRUNE_AT_INIT])
    check_installed_nothing(nb)
    table = results.load(workdir).table
    final = table[(table.split == "test") & (table.metric == "accuracy") & (table.step == table.step.max())]
    assert set(final.method) == {"random", "snip", "synflow"}
    assert set(final[final.method != "random"].ablation) == {"none", "shuffle"}
    assert sorted(final.density.round(2).unique()) == [0.1, 0.5]
    assert images(nb) == 1
    assert "accuracy lost by shuffling the mask within each layer" in output(nb, "shuffle-gap")


@pytest.mark.slow
@needs_fashion_mnist
def test_alignment_notebook_lowers_the_barrier_between_seeds(tmp_path):
    workdir = str(tmp_path / "align")
    nb = execute(ALIGNMENT, WORKDIR=workdir, **CI_SETTINGS[ALIGNMENT])
    check_installed_nothing(nb)
    from jaxlth import plots

    frame = plots.alignment_table(results.load(workdir).table)
    assert set(frame["path"]) == {"copies k=100", "seeds"}
    assert set(frame["align"]) == {"none", "weights", "activations+repair"}
    seeds = frame[frame["path"] == "seeds"].set_index("align")["mean"]
    assert seeds["weights"] < seeds["none"] and seeds["activations+repair"] < seeds["none"]
    assert images(nb) == 1


@pytest.mark.slow
@needs_fashion_mnist
def test_landscape_notebook_measures_every_level_of_a_sweep(tmp_path):
    sweep, workdir = str(tmp_path / "sweep"), str(tmp_path / "landscape")
    nb = execute(LANDSCAPE, SWEEP_WORKDIR=sweep, WORKDIR=workdir, **CI_SETTINGS[LANDSCAPE])
    check_installed_nothing(nb)
    from jaxlth import plots

    curvature = plots.curvature_table(results.load(workdir).table)
    assert len(curvature) >= 3  # the dense level and the first level of each fraction
    assert images(nb) == 1


@pytest.mark.slow
@needs_fashion_mnist
def test_data_diet_notebook_trains_on_pruned_training_sets(tmp_path):
    scores, workdir = str(tmp_path / "scores"), str(tmp_path / "diet")
    nb = execute(DATA_DIET, SCORES_WORKDIR=scores, WORKDIR=workdir, **CI_SETTINGS[DATA_DIET])
    check_installed_nothing(nb)
    from jaxlth import plots

    final = plots.diet_final(results.load(workdir).table)
    assert {"el2n", "random"} <= set(final["score"])
    assert images(nb) == 1


def write_tiny_bert(root: str) -> tuple[str, str]:
    """``(checkpoint folder, GLUE folder)``: a tiny random BERT as a Hugging Face folder (model.safetensors
    with the public key names, config.json, vocab.txt) and SST-2 rows in the Hub's parquet layout."""
    from tests.test_bert_tickets import write_checkpoint
    from tests.test_text_data import write_glue

    folder = write_checkpoint(root)
    write_glue(root, "sst2", sizes=(40, 16, 16))
    return folder, os.path.join(root, "glue")


@pytest.mark.slow
def test_bert_tickets_notebook_finds_matching_levels_of_a_local_checkpoint(tmp_path):
    folder, glue = write_tiny_bert(str(tmp_path))
    workdir = str(tmp_path / "bert")
    settings = dict(CI_SETTINGS[BERT_TICKETS], WORKDIR=workdir, CHECKPOINT_DIR=folder, GLUE_DIR=glue)
    with environment(JAXLTH_CACHE_DIR=str(tmp_path / "cache"), HF_HUB_CACHE=str(tmp_path / "hub")):
        nb = execute(BERT_TICKETS, **settings)
    check_installed_nothing(nb)
    assert "text libraries: tokenizers " in output(nb, "text-extra")
    download = output(nb, "download")
    assert f"the checkpoint in {folder}" in download and "downloading" not in download  # the local folders
    config_text = output(nb, "config")
    assert "2 replicates in one compiled program, replicates sharded over 2 devices" in config_text
    assert "sst2: 40 train / 16 dev examples of 16 tokens" in config_text
    assert "the first training example: [CLS] the cat sat [SEP]" in config_text
    run = results.load(workdir)
    assert run.config["model"]["pretrained"] == folder and run.config["lottery"]["rewind"] == "pretrained"
    assert run.levels() == [0, 1, 2] and run.levels("random_prune") == [1, 2]
    assert re.search(r"^IMP levels matching the dense network: \[[\d, ]*\]", output(nb, "matching"), re.M)
    assert images(nb) == 1
    assert os.path.getsize(os.path.join(workdir, "plots", "accuracy_vs_weights.png")) > 5000


@pytest.mark.slow
def test_rewinding_notebook_runs_instability_and_imp_from_two_rewind_points(tmp_path):
    workdir = str(tmp_path / "rewinding")
    nb = execute(REWINDING, WORKDIR=workdir, **CI_SETTINGS[REWINDING])
    check_installed_nothing(nb)
    config_text = output(nb, "config")
    assert "2 replicates in one compiled program, replicates sharded over 2 devices" in config_text
    assert "synthetic: 256 train / 64 test images" in config_text and "(milestones 10it,15it)" in config_text
    timing = output(nb, "timing")
    assert re.search(r"^one epoch: [\d.]+ s per replicate \(measured here: 1 steps of 2 replicates", timing, re.M)
    # 8 steps per epoch: the trunk's 20 steps and 2 copies from 0 and from 5 (2 x 35): 90 steps, 11.25 epochs
    about = r"about (< 1 min|\d+ min|[\d.]+ h) for 2 replicates"
    assert re.search(rf"^instability: 11 epochs per replicate, {about}$", timing, re.M)
    assert re.search(rf"^IMP rewound to 5it: 6 epochs per replicate, {about}$", timing, re.M)  # 20 + 2 x 15 steps
    instability = results.load(os.path.join(workdir, "instability"))
    assert instability.config["train"]["milestones"] == "10it,15it"
    table = instability.table
    copies = table[(table.arm == "copies") & (table.metric == "barrier_frankle")]
    assert sorted(copies.spawn_step.unique()) == [0, 5] and set(copies.split) == {"test", "train"}
    for rewind in ("5it", "0it"):
        run = results.load(os.path.join(workdir, f"rewind_{rewind}"))
        assert run.config["lottery"]["rewind"] == rewind and run.config["model"]["name"] == "resnet_cifar"
        assert run.levels() == [0, 1] and run.levels("random_reinit") == [1]
    assert re.search(r"^stable \(below 2%\) from k = ", output(nb, "figures"), re.M)
    accuracy = output(nb, "accuracy")
    assert "final IMP test accuracy (%)" in accuracy and "rewind 5it" in accuracy and "rewind 0it" in accuracy
    assert re.search(r"^IMP rewind 0it: matching levels \[[\d, ]*\]; the sparsest keeps ", accuracy, re.M)
    assert images(nb) == 2  # the instability figures and the accuracy figures
