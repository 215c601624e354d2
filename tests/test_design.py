"""docs/design.md holds: layers import only downward (lazy imports too), no import circles, no private
names across modules, experiments are folders that follow the protocol, random streams are declared
and checked in one table, one file name per module, modules stay small, nothing points outside the
repository, ruff's lint and format pass."""

import ast
import glob
import os
import re
import shutil
import subprocess
import sys

import pytest

from jaxlth.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "jaxlth")
EXPERIMENTS = os.path.join(PACKAGE, "experiments")

# Rank of each top-level part of jaxlth (docs/design.md, "Layers"); higher ranks sit above.
LAYERS = {
    "errors": 0,
    "rng": 0,
    "legend": 0,
    "layout": 0,
    "steps": 0,
    "records": 0,
    "nested": 0,
    "storage": 0,
    "arrays_file": 0,
    "checkpoint_files": 0,
    "event_files": 0,
    "processes": 0,
    "timing": 0,
    "data": 1,
    "models": 1,
    "sharding": 1,
    "pruning": 2,
    "training": 2,
    "distillation": 2,
    "weights": 2,
    "checkpoint": 2,
    "subsets": 2,
    "fields": 3,
    "field_names": 3,
    "runs": 3,
    "export": 3,
    "workdir": 3,
    "watching": 3,
    "analysis": 4,
    "tables": 4,
    "drawing": 4,
    "experiments": 5,
    "main": 6,
    "bench": 6,
    "compare": 6,
    "sweep": 6,
    "config": 6,
    "results": 6,
    "plots": 6,
}
# Shared code that names no experiment kind (issue: an experiment is a folder).
KIND_FREE = (
    "config.py",
    "fields.py",
    "results.py",
    "runs.py",
    "main.py",
    "legend.py",
    "plots.py",
    "tables.py",
    "drawing.py",
    "rng.py",
    "training",
    "distillation",
    "analysis",
    "pruning",
    "data",
    "models",
    "experiments/protocol.py",
    "experiments/registry.py",
    "experiments/recipes.py",
    "experiments/context.py",
    "experiments/__init__.py",
    "experiments/networks.py",
    "experiments/replicates.py",
    "experiments/scoring.py",
    "experiments/run_costs.py",
)


def modules() -> list[str]:
    return sorted(p for p in glob.glob(os.path.join(PACKAGE, "**", "*.py"), recursive=True))


def part(path: str) -> str:
    relative = os.path.relpath(path, PACKAGE)
    return relative.split(os.sep)[0].removesuffix(".py")


def module_name(path: str) -> str:
    relative = os.path.relpath(path, ROOT).removesuffix(".py").replace(os.sep, ".")
    return relative.removesuffix(".__init__")


def imports(path: str, top_level_only: bool = False):
    """``(line, imported module of jaxlth, imported names)`` of a module's imports (lazy ones too)."""
    tree = ast.parse(open(path).read())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    package = module_name(path) if path.endswith("__init__.py") else module_name(path).rpartition(".")[0]
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            if base == "jaxlth" or base.startswith("jaxlth."):
                yield node.lineno, base, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("jaxlth."):
                    yield node.lineno, alias.name, []


def targets(module: str, names: list[str]) -> list[str]:
    """The modules an import reaches: ``from jaxlth.x import y`` is ``jaxlth.x.y`` when that is a module."""
    out = []
    for name in names or [""]:
        candidate = f"{module}.{name}" if name else module
        path = os.path.join(ROOT, *candidate.split("."))
        out.append(candidate if os.path.isfile(path + ".py") or os.path.isdir(path) else module)
    return out


def top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_part_of_jaxlth_has_a_layer():
    parts = {part(p) for p in modules()} - {"__init__"}
    assert parts <= set(LAYERS), f"parts without a layer in docs/design.md: {parts - set(LAYERS)}"


@pytest.mark.parametrize("path", modules(), ids=lambda p: os.path.relpath(p, ROOT))
def test_module_imports_only_downward_lazy_ones_too(path):
    source = part(path)
    if source == "__init__":
        return
    for line, module, names in imports(path):
        for target in targets(module, names):
            rank = LAYERS.get(top(target), 0)
            assert rank <= LAYERS[source], (
                f"{os.path.relpath(path, ROOT)}:{line} imports {target} (layer {rank}) from layer {LAYERS[source]}"
            )


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for path in modules():
        graph[module_name(path)] = {t for _, m, n in imports(path) for t in targets(m, n)} - {module_name(path)}
    return graph


def test_no_import_circles_between_parts_or_modules():
    graph = import_graph()
    parts: dict[str, set[str]] = {}
    for module, reached in graph.items():
        parts.setdefault(top(module), set()).update(top(t) for t in reached if top(t) != top(module))
    circles = [(a, b) for a, reached in parts.items() for b in reached if a in parts.get(b, ())]
    assert not circles, f"parts of jaxlth that import each other: {circles}"
    # modules: a depth-first search for a cycle (a package's __init__ importing its own parts is no circle)
    state, path = {}, []

    def visit(module):
        state[module] = "open"
        path.append(module)
        for target in graph.get(module, ()):
            if target.startswith(module + "."):
                continue
            if state.get(target) == "open":
                raise AssertionError(f"an import circle: {' -> '.join(path[path.index(target) :] + [target])}")
            if target not in state:
                visit(target)
        path.pop()
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module)


def test_no_private_names_cross_modules():
    offenders = []
    for path in modules():
        tree = ast.parse(open(path).read())
        aliases = {}
        for line, module, names in imports(path):
            offenders += [
                f"{os.path.relpath(path, ROOT)}:{line} imports {n} from {module}"
                for n in names
                if n.startswith("_") and n != "__version__"
            ]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jaxlth"):
                aliases.update({a.asname or a.name: a.name for a in node.names})
            elif isinstance(node, ast.Import):
                aliases.update({a.asname or a.name: a.name for a in node.names if a.name.startswith("jaxlth")})
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                offenders.append(f"{os.path.relpath(path, ROOT)}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not offenders, offenders


def test_the_training_loop_knows_no_workdir_or_csv():
    import inspect

    from jaxlth.training import loop

    assert "workdir" not in inspect.signature(loop.run_segment).parameters
    imported = {top(t) for _, m, n in imports(os.path.join(PACKAGE, "training", "loop.py")) for t in targets(m, n)}
    assert not imported & {"records", "results", "layout", "workdir", "runs"}
    assert "import csv" not in open(os.path.join(PACKAGE, "training", "loop.py")).read()


def test_modules_stay_small():
    big = [os.path.relpath(p, ROOT) for p in modules() if len(open(p).read().splitlines()) > 320]
    assert not big, f"modules over ~300 lines: {big}"


def kinds_on_disk() -> list[str]:
    return sorted(d for d in os.listdir(EXPERIMENTS) if os.path.isfile(os.path.join(EXPERIMENTS, d, "__init__.py")))


def test_one_file_name_per_module_except_the_parts_of_experiments():
    """Two modules share a file name only when both are parts of experiment folders (each kind's
    ``block.py``, ``run.py``, ``figures.py``, ...); no part of a kind is named like shared code."""
    shared, parts = {}, {}
    for path in modules():
        relative = os.path.relpath(path, PACKAGE).split(os.sep)
        name = relative[-1].removesuffix(".py")
        if name == "__init__":
            name, relative = relative[-2] if len(relative) > 1 else "jaxlth", relative[:-1]
        inside_kind = len(relative) > 2 and relative[0] == "experiments"
        (parts if inside_kind else shared).setdefault(name, []).append("/".join(relative))
    twice = {n: p for n, p in shared.items() if len(p) > 1}
    assert not twice, f"modules that share a file name: {twice}"
    clashing = {n: p + shared[n] for n, p in parts.items() if n in shared and n not in kinds_on_disk()}
    assert not clashing, f"parts of experiments named like shared modules: {clashing}"


def test_random_keys_from_constants_are_made_only_in_rng():
    pattern = re.compile(r"PRNGKey\(|random\.key\(|fold_in\([^)]*,\s*\d")
    offenders = []
    for path in modules():
        if path.endswith(os.path.join("jaxlth", "rng.py")) or part(path) == "bench":  # benchmarks: any data
            continue
        for number, line in enumerate(open(path), 1):
            if pattern.search(line):
                offenders.append(f"{os.path.relpath(path, ROOT)}:{number}")
    assert not offenders, f"random keys made outside jaxlth/rng.py: {offenders}"


def test_every_stream_is_declared_once_and_listed_in_the_design():
    from jaxlth import rng
    from jaxlth.experiments import registry
    from jaxlth.pruning import at_init, branches

    streams = registry.streams()
    rng.check(streams)
    design = open(os.path.join(ROOT, "docs", "design.md")).read()
    section = design[design.index("## Random streams") :]
    for stream in streams:
        assert f"| {stream.name} | `{stream.describe()}` |" in section, f"docs/design.md misses the stream {stream}"
    # the hashed streams of every branch, ablation and method lie above every declared offset
    names = [
        *branches.BRANCHES,
        *(f"prune:{m}" for m in at_init.METHODS),
        *(f"{m}_{a}" for m in at_init.METHODS for a in ("shuffle", "reinit", "invert")),
    ]
    assert min(rng.branch_stream(n, level) for n in names for level in range(100)) >= rng.HASHED_FLOOR
    with pytest.raises(ValueError, match="overlap"):
        rng.check([*streams, rng.Stream("a copy of the copies", rng.DATA_KEY, 1500)])


def test_nothing_refers_to_files_outside_the_repository():
    files = modules() + glob.glob(os.path.join(ROOT, "configs", "*.py")) + glob.glob(os.path.join(ROOT, "docs", "*.md"))
    files += [os.path.join(ROOT, "README.md")]
    for path in files:
        text = open(path).read()
        for name in ("PAPERS.md", "DESIGN.md", "../shared"):
            assert name not in text, f"{os.path.relpath(path, ROOT)} refers to {name}, which is not in the repository"


def test_every_folder_of_experiments_is_a_kind_that_follows_the_protocol():
    from jaxlth import config as config_lib
    from jaxlth import fields
    from jaxlth.experiments import registry

    experiments = registry.all_experiments()
    builtin = [e.name for e in registry.builtin()]
    assert sorted(builtin) == kinds_on_disk()  # the folders, and nothing else
    base = config_lib.base_config()
    for name, experiment in experiments.items():
        assert experiment.run is not None and experiment.summary
        if experiment.defaults is not None:
            assert base[name].to_dict() == experiment.defaults().to_dict()
            assert name not in fields.COMMON  # no block is named like a common field
        for dotted in (*experiment.may_change, *experiment.reads, *experiment.tuple_fields):
            block, field = dotted.split(".")
            assert field in base[block], f"{name} declares {dotted}, which base_config() lacks"
        assert experiment.arms.main in experiment.arms.labels or experiment.arms.main == "main"
    assert config_lib.EXPERIMENTS == tuple(experiments)


def test_shared_code_names_no_experiment_kind():
    from jaxlth import fields
    from jaxlth.experiments import registry

    kinds = [k for k in registry.all_experiments() if k != "train"]  # "train" is also a split and the common block
    offenders = []
    for entry in KIND_FREE:
        path = os.path.join(PACKAGE, entry)
        paths = glob.glob(os.path.join(path, "**", "*.py"), recursive=True) if os.path.isdir(path) else [path]
        for file in paths:
            tree = ast.parse(open(file).read())
            strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
            code = [
                s
                for s in strings
                if (s in kinds or s.startswith(tuple(f"{k}." for k in kinds))) and s not in fields.RENAMED
            ]  # old names of common fields are history, not knowledge of a kind
            imported = [
                m
                for _, m, _ in imports(file)
                if m.split(".")[:3][-1] in kinds and m.count(".") >= 2 and m.startswith("jaxlth.experiments.")
            ]
            offenders += [f"{os.path.relpath(file, ROOT)}: {x}" for x in code + imported]
    assert not offenders, f"shared code naming an experiment kind: {offenders}"


def test_recipes_select_any_experiment_without_knowing_it():
    from jaxlth import config as config_lib

    for path in glob.glob(os.path.join(ROOT, "configs", "*.py")):
        text = open(path).read()
        assert "return choose(c, arg)" in text and "arg ==" not in text, path
        for name in config_lib.EXPERIMENTS:
            try:
                assert config_lib.from_file(f"{path}:{name}").experiment == name
            except UserError as e:  # selected, but its own block needs an input (a source workdir) ...
                streamed = f"the {name} experiment needs the whole dataset in memory" in str(e)  # ... or ImageNet
                assert f"{name}." in str(e) or streamed, (path, name, str(e))


@pytest.mark.skipif(
    shutil.which("ruff") is None and not os.path.exists(os.path.join(os.path.dirname(sys.executable), "ruff")),
    reason="ruff is installed with the test extras",
)
@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_lint_and_format_pass(command):
    ruff = os.path.join(os.path.dirname(sys.executable), "ruff")
    ruff = ruff if os.path.exists(ruff) else shutil.which("ruff")
    proc = subprocess.run([ruff, *command, "jaxlth", "tests", "configs"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
