"""docs/design.md holds: layers import only downward, experiments follow the protocol, RNG streams
are created in one place, modules stay small, nothing points outside the repository."""

import ast
import glob
import os
import re

import pytest

from jaxlth.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "jaxlth")

# Rank of each top-level part of jaxlth (docs/design.md, "Layers"); higher ranks sit above.
LAYERS = {
    "errors": 0, "rng": 0, "arms": 0, "layout": 0, "steps": 0, "records": 0, "storage": 0, "processes": 0,
    "data": 1, "models": 1, "sharding": 1,
    "pruning": 2, "training": 2, "lottery": 2, "checkpoint": 2, "subsets": 2,
    "results": 3, "config": 3, "workdir": 3,
    "analysis": 4, "plots": 4,
    "experiments": 5,
    "main": 6, "bench": 6, "compare": 6, "sweep": 6,
}


def modules() -> list[str]:
    return sorted(p for p in glob.glob(os.path.join(PACKAGE, "**", "*.py"), recursive=True))


def part(path: str) -> str:
    relative = os.path.relpath(path, PACKAGE)
    return relative.split(os.sep)[0].removesuffix(".py")


def imports(path: str, top_level_only: bool):
    """``(line, imported top-level part of jaxlth)`` of a module's imports."""
    tree = ast.parse(open(path).read())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("jaxlth"):
            names = node.module.split(".")
            if len(names) > 1:
                yield node.lineno, names[1]
            else:
                for alias in node.names:
                    yield node.lineno, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("jaxlth."):
                    yield node.lineno, alias.name.split(".")[1]


def test_every_part_of_jaxlth_has_a_layer():
    parts = {part(p) for p in modules()} - {"__init__"}
    assert parts <= set(LAYERS), f"parts without a layer in docs/design.md: {parts - set(LAYERS)}"


@pytest.mark.parametrize("path", modules(), ids=lambda p: os.path.relpath(p, ROOT))
def test_module_imports_only_downward(path):
    source = part(path)
    if source == "__init__":
        return
    for line, target in imports(path, top_level_only=True):
        assert LAYERS[target] <= LAYERS[source], \
            f"{os.path.relpath(path, ROOT)}:{line} imports jaxlth.{target} (layer {LAYERS[target]}) from layer {LAYERS[source]}"


def test_analysis_and_plots_never_import_experiments():
    for path in modules():
        if part(path) in ("analysis", "plots", "training", "lottery", "pruning", "data", "models"):
            for line, target in imports(path, top_level_only=False):
                assert target != "experiments", f"{os.path.relpath(path, ROOT)}:{line} imports experiments"


def test_the_training_loop_knows_no_workdir_or_csv():
    import inspect  # noqa: PLC0415

    from jaxlth.training import loop  # noqa: PLC0415

    assert "workdir" not in inspect.signature(loop.run_segment).parameters
    imported = {target for _, target in imports(os.path.join(PACKAGE, "training", "loop.py"), False)}
    assert not imported & {"records", "results", "layout", "workdir"}
    assert "import csv" not in open(os.path.join(PACKAGE, "training", "loop.py")).read()


def test_modules_stay_small():
    big = [os.path.relpath(p, ROOT) for p in modules() if len(open(p).read().splitlines()) > 320]
    assert not big, f"modules over ~300 lines: {big}"


def test_random_keys_from_constants_are_made_only_in_rng():
    pattern = re.compile(r"PRNGKey\(\s*\d|fold_in\([^)]*,\s*\d")
    offenders = []
    for path in modules():
        if path.endswith(os.path.join("jaxlth", "rng.py")) or part(path) == "bench":  # benchmarks: any data
            continue
        for number, line in enumerate(open(path), 1):
            if pattern.search(line):
                offenders.append(f"{os.path.relpath(path, ROOT)}:{number}")
    assert not offenders, f"random streams outside jaxlth/rng.py: {offenders}"


def test_nothing_refers_to_files_outside_the_repository():
    files = modules() + glob.glob(os.path.join(ROOT, "configs", "*.py")) + glob.glob(os.path.join(ROOT, "docs", "*.md"))
    files += [os.path.join(ROOT, "README.md")]
    for path in files:
        text = open(path).read()
        for name in ("PAPERS.md", "DESIGN.md", "../shared"):
            assert name not in text, f"{os.path.relpath(path, ROOT)} refers to {name}, which is not in the repository"


def test_every_experiment_follows_the_protocol():
    from jaxlth import config as config_lib  # noqa: PLC0415
    from jaxlth.experiments import registry  # noqa: PLC0415

    experiments = registry.all_experiments()
    assert list(experiments) == ["train", "lottery", "instability", "one_shot", "landscape", "retraining", "scores",
                                 "data_diet", "prune_at_init"]
    base = config_lib.base_config()
    for name, experiment in experiments.items():
        assert experiment.run is not None and experiment.summary
        if experiment.defaults is not None:
            assert base[name].to_dict() == experiment.defaults().to_dict()
        for dotted in (*experiment.may_change, *experiment.reads):
            block, field = dotted.split(".")
            assert field in base[block], f"{name} declares {dotted}, which base_config() lacks"
    assert config_lib.EXPERIMENTS == tuple(experiments)


def test_recipes_select_any_experiment_without_knowing_it():
    from jaxlth import config as config_lib  # noqa: PLC0415

    for path in glob.glob(os.path.join(ROOT, "configs", "*.py")):
        text = open(path).read()
        assert "return choose(c, arg)" in text and "arg ==" not in text, path
        for name in config_lib.EXPERIMENTS:
            try:
                assert config_lib.from_file(f"{path}:{name}").experiment == name
            except UserError as e:  # selected, but its own block needs an input (a source workdir) ...
                streamed = f"the {name} experiment needs the whole dataset in memory" in str(e)  # ... or ImageNet
                assert f"{name}." in str(e) or streamed, (path, name, str(e))
