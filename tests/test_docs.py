"""The user guide in docs/ cannot drift from the code.

* docs/experiments.md lists every field of ``jaxlth.config.base_config()`` with its default, and nothing else;
  the choices it enumerates (experiments, optimizers, branches, ...) are complete; its model table is the
  model registry; its recipe table is configs/.
* Every config field, ``--config.KEY`` flag, ``configs/`` file, ``jaxlth.*`` name, ``run.*`` method and
  ``jaxlth.plots`` signature the guide (and the notebooks' text) mentions exists; every relative link resolves.
* The model written out in docs/extending.md builds, registers and trains its BatchNorm statistics as described.

``python tests/test_docs.py`` prints a table row (default and the comment in jaxlth/config.py) for every
config field docs/experiments.md does not list yet.
"""

import ast
import glob
import importlib
import importlib.util
import inspect
import os
import re
import sys

import ml_collections
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # for `python tests/test_docs.py`

from jaxlth import config as config_lib  # noqa: E402
from jaxlth import fields as fields_lib  # noqa: E402
from jaxlth import models  # noqa: E402
from jaxlth.experiments import registry  # noqa: E402

DOCS = os.path.join(ROOT, "docs")
PAGES = sorted(glob.glob(os.path.join(DOCS, "*.md")))
EXPERIMENTS_MD = os.path.join(DOCS, "experiments.md")
# the blocks whose fields the guide names: the common ones and every experiment's
BLOCKS = tuple(k for k, v in fields_lib.common_config().items() if hasattr(v, "keys")) + registry.names()
# Files and modules docs/extending.md asks the reader to create: they do not exist in the repository.
EXAMPLE_FILES = {"jaxlth/models/mlp_bn.py", "configs/mlp_bn_fashion_mnist.py", "jaxlth/data/sources/my_data.py"}
EXAMPLE_MODULES = {"jaxlth.models.mlp_bn", "jaxlth.plots.early_prune_figure"}
EXAMPLE_BLOCKS = ("early_prune.",)  # the block of the experiment extending.md writes outside jaxlth


# ----- reading the docs --------------------------------------------------------------------------------
def read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def notebook_markdown() -> list[tuple[str, str]]:
    import nbformat

    out = []
    for path in sorted(glob.glob(os.path.join(ROOT, "colab", "*.ipynb"))):
        nb = nbformat.read(path, as_version=4)
        out.append((path, "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")))
    return out


def texts() -> list[tuple[str, str]]:
    """``(path, text)`` of every guide page and of the notebooks' markdown."""
    return [(p, read(p)) for p in PAGES] + notebook_markdown()


TEXTS = texts()
TEXT_IDS = [os.path.relpath(path, ROOT) for path, _ in TEXTS]


def split_code(text: str) -> tuple[str, list[str]]:
    """The text without fenced code blocks, and the blocks' contents."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.S | re.M)
    return prose, blocks


def inline_code(text: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", split_code(text)[0])


def tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Markdown tables as ``(header cells, rows of cells)``."""
    found, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and re.match(r"^\|[-| ]+\|$", lines[i + 1]):
            header = [c.strip() for c in lines[i].strip("|").split("|")]
            rows, i = [], i + 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append([c.strip() for c in re.split(r"(?<!\\)\|", lines[i].strip().strip("|"))])
                i += 1
            found.append((header, rows))
        else:
            i += 1
    return found


def ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def documented_fields() -> dict[str, tuple[str, str]]:
    """``{field: (default source, meaning)}`` from the field tables of experiments.md."""
    out = {}
    for header, rows in tables(read(EXPERIMENTS_MD)):
        if header[:3] != ["field", "default", "meaning"]:
            continue
        for row in rows:
            name, default = ticked(row[0])[0], ticked(row[1])[0]
            assert name not in out, f"experiments.md lists {name} twice"
            out[name] = (default, row[2])
    return out


def config_fields(node=None, prefix: str = "") -> dict:
    """``{dotted name: default}`` of every leaf of ``base_config()`` (an empty block counts as a leaf ``{}``)."""
    node = config_lib.base_config() if node is None else node
    out = {}
    for key in node.keys():
        value = node[key]
        if isinstance(value, ml_collections.ConfigDict) and len(value):
            out.update(config_fields(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value.to_dict() if isinstance(value, ml_collections.ConfigDict) else value
    return out


def same(documented, actual) -> bool:
    """Equal and of the same type, element by element (``0`` is not ``0.0``, a list is not a tuple)."""
    if type(documented) is not type(actual):
        return False
    if isinstance(actual, (tuple, list)):
        return len(documented) == len(actual) and all(same(d, a) for d, a in zip(documented, actual))
    return documented == actual


# ----- the field list ----------------------------------------------------------------------------------
def test_every_config_field_is_documented_with_its_default():
    documented, actual = documented_fields(), config_fields()
    missing = sorted(set(actual) - set(documented))
    assert not missing, f"docs/experiments.md lacks {missing}; `python tests/test_docs.py` prints their rows"
    unknown = sorted(set(documented) - set(actual))
    assert not unknown, f"docs/experiments.md documents fields base_config() does not have: {unknown}"
    for name, (default, _) in documented.items():
        assert same(ast.literal_eval(default), actual[name]), (
            f"docs/experiments.md gives {name} the default {default}; base_config() has {actual[name]!r}"
        )


def test_enumerated_choices_are_complete():
    from jaxlth import subsets
    from jaxlth.analysis import alignment, curvature, projections
    from jaxlth.data import selection, sources
    from jaxlth.experiments.data_diet import block as data_diet
    from jaxlth.experiments.instability import block as instability
    from jaxlth.experiments.prune_at_init import block as prune_at_init
    from jaxlth.pruning import at_init, branches, imp, scorers
    from jaxlth.pruning import prune as prune_lib
    from jaxlth.training import optim

    meaning = {name: set(ticked(text)) for name, (_, text) in documented_fields().items()}
    expected = {
        "experiment": config_lib.EXPERIMENTS,
        "on_nan": fields_lib.ON_NAN,
        "train.dtype": fields_lib.DTYPES,
        "data.name": sources.NAMES,
        "data.source": sources.SOURCES,
        "train.optimizer": optim.OPTIMIZERS,
        "train.schedule": optim.SCHEDULES,
        "lottery.retrain": imp.RETRAIN_MODES,
        "lottery.scope": imp.SCOPES,
        "one_shot.scope": imp.SCOPES,
        "lottery.branches": tuple(branches.BRANCHES),
        "lottery.random_prune_scope": ("layerwise", "global"),
        "landscape.bn_mode": curvature.BN_MODES,
        "landscape.subspace": projections.SUBSPACES,
        "data.subset.keep": selection.KEEPS,
        "lottery.pretrain_data.keep": selection.KEEPS,
        "data.subset.score": subsets.SCORE_KINDS,
        "scores.kinds": subsets.SCORE_KINDS,
        "data_diet.scores": data_diet.SCORES,
        "data_diet.budget": data_diet.BUDGETS,
        "instability.spawn_from": instability.SPAWN_FROM,
        "instability.align": alignment.ENTRIES,
        "prune_at_init.methods": tuple(at_init.METHODS),
        "prune_at_init.ablations": prune_at_init.ABLATIONS,
        "prune_at_init.scope": prune_lib.SCOPES,
        "prune_at_init.batchnorm": prune_at_init.BATCHNORM,
        "lottery.scorer": tuple(scorers.SCORERS),
    }
    for field, choices in expected.items():
        assert set(choices) <= meaning[field], f"experiments.md: {field} misses {set(choices) - meaning[field]}"
    # the in-memory names, ImageNet (always streamed) and the streamed source that takes any name
    assert meaning["data.name"] == set(sources.NAMES) | {"imagenet2012", "data.source=array_record"}


def test_model_table_is_the_registry():
    table = next(rows for header, rows in tables(read(EXPERIMENTS_MD)) if header[:2] == ["model", "options (defaults)"])
    documented = {ticked(row[0])[0]: dict(re.findall(r"`(\w+)` \(`([^`]*)`\)", row[1])) for row in table}
    assert set(documented) == set(models.names()), "the model table of experiments.md differs from jaxlth.models"
    for name, options in documented.items():
        signature = inspect.signature(models.MODELS[name]).parameters.values()
        actual = {p.name: p.default for p in signature if p.name != "num_classes" and p.kind != p.KEYWORD_ONLY}
        assert set(options) == set(actual), f"model {name}: documented options {set(options)}, actual {set(actual)}"
        for option, default in options.items():
            assert same(ast.literal_eval(default), actual[option]), f"model {name}: default of {option}"


def recipe_args(path: str):
    """The recipe module and the ``:ARG`` variants its docstring shows commands for."""
    spec = importlib.util.spec_from_file_location(f"recipe_{os.path.basename(path)[:-3]}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    name = os.path.basename(path)
    return module, set(re.findall(rf"configs/{re.escape(name)}:(\w+)", module.__doc__ or ""))


def test_recipe_table_matches_configs():
    table = next(rows for header, rows in tables(read(EXPERIMENTS_MD)) if header[0] == "recipe")
    rows = {ticked(row[0])[0]: row for row in table}
    files = sorted(
        os.path.relpath(p, ROOT)
        for p in glob.glob(os.path.join(ROOT, "configs", "*.py"))
        if not os.path.basename(p).startswith("_")
    )
    assert sorted(rows) == files, "the recipe table of experiments.md differs from configs/"
    for path, row in rows.items():
        module, args = recipe_args(os.path.join(ROOT, path))
        assert {a.lstrip(":") for a in ticked(row[1])} == args, f"{path}: arguments in its docstring are {args}"
        train, lottery = module.get_config(None), module.get_config("lottery")
        for arg in args:
            module.get_config(arg)
        assert ticked(row[2]) == [train.model.name] and ticked(row[3]) == [train.data.name], path
        assert ticked(row[4]) == [train.train.steps], path
        assert re.fullmatch(rf"`{re.escape(lottery.lottery.rewind)}`, {lottery.lottery.levels}", row[5]), path


# ----- everything the guide names exists ----------------------------------------------------------------
def field_references(text: str) -> list[str]:
    """Dotted config fields in inline code (``lottery.levels``, ``config.train.lr = 0.1``)."""
    out = []
    for code in inline_code(text):
        match = re.match(rf"(?:config\.)?((?:{'|'.join(BLOCKS)})\.[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?![\w.(])", code)
        if match:
            out.append(match.group(1))
    return out


@pytest.mark.parametrize("path,text", TEXTS, ids=TEXT_IDS)
def test_named_config_fields_exist(path, text):
    fields = config_fields()
    for name in field_references(text):
        block = any(f.startswith(name + ".") for f in fields)  # a nested block such as data.subset
        assert name in fields or block or name.startswith("model.options."), f"{path} names the unknown field {name}"
    for block in split_code(text)[1]:
        for key in re.findall(r"--config\.([a-z_][\w.]*)=", block):  # not the placeholder KEY
            assert key in fields or key.startswith(("model.options.", *EXAMPLE_BLOCKS)), (
                f"{path}: --config.{key} is not a field"
            )
        for path_, arg in re.findall(r"--config[ =](configs/[a-z0-9_]+\.py)(?::(\w+))?", block):  # not NAME.py
            full = os.path.join(ROOT, path_)
            assert os.path.isfile(full) or path_ in EXAMPLE_FILES, f"{path}: {path_} does not exist"
            if arg and os.path.isfile(full) and f"{arg}." not in EXAMPLE_BLOCKS:
                assert arg in recipe_args(full)[1], f"{path}: {path_} has no argument :{arg}"


@pytest.mark.parametrize("path,text", TEXTS, ids=TEXT_IDS)
def test_named_files_and_python_names_exist(path, text):
    _, blocks = split_code(text)
    spans = inline_code(text) + [line for block in blocks for line in block.splitlines()]
    for span in spans:
        for file in re.findall(r"\b((?:jaxlth|tests|configs|colab|docs|scripts)/[\w/.-]*\.(?:py|md|ipynb|sh))\b", span):
            if "NAME" in file:  # the placeholder of configs/NAME.py
                continue
            assert os.path.exists(os.path.join(ROOT, file)) or file in EXAMPLE_FILES, f"{path}: no file {file}"
        for dotted in re.findall(r"\bjaxlth(?:\.[A-Za-z_]\w*)+", span):
            if not any(dotted.startswith(m) for m in EXAMPLE_MODULES):
                resolve(dotted, path)


def resolve(dotted: str, where: str):
    """Imports the longest module prefix of ``dotted`` and gets the remaining attributes."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attr in parts[split:]:
            assert hasattr(obj, attr), f"{where} names {dotted}, but {attr} does not exist"
            obj = getattr(obj, attr)
        return obj
    raise AssertionError(f"{where} names {dotted}, which does not import")


def test_results_api_and_plots_signatures_in_results_md():
    from jaxlth import plots, results

    text = read(os.path.join(DOCS, "results.md"))
    attributes = set(re.findall(r"self\.(\w+)\b", inspect.getsource(results.Run.__init__)))
    readers = {e.reader for e in registry.all_experiments().values()}
    for block in split_code(text)[1]:
        for method in re.findall(r"\brun\.(\w+)", block):
            assert any(hasattr(r, method) for r in readers) or method in attributes, (
                f"results.md uses run.{method}, which no experiment's reader has"
            )
        for call in re.findall(r"\brun\.(\w+)\(([^)]*)\)", block):
            method, args = call
            if method in ("params", "mask", "network", "batch_stats", "levels"):
                parameters = inspect.signature(getattr(results.Run, method)).parameters
                columns = {c for e in registry.all_experiments().values() for c in e.columns}  # stacked coordinates
                for keyword in re.findall(r"(\w+)=", args):
                    assert keyword in parameters or "coordinates" in parameters and keyword in columns, (
                        f"results.md: run.{method} has no argument {keyword}"
                    )
    table = next(rows for header, rows in tables(text) if header[0] == "function")
    for row in table:
        for name, args in re.findall(r"`(\w+)\(([^)]*)\)`", row[0]):
            assert callable(getattr(plots, name, None)), f"results.md lists jaxlth.plots.{name}, which is missing"
            parameters = list(inspect.signature(getattr(plots, name)).parameters)
            for arg in (a.split("=")[0].strip() for a in args.split(",") if a.strip()):
                assert arg in parameters or arg == "dir" and "directory" in parameters, (
                    f"results.md: jaxlth.plots.{name} has no parameter {arg}"
                )
    assert set(re.findall(r"^\| `(\w+)` \|", text, re.M)) >= set(results.COLUMNS), "results.md misses a column"


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


@pytest.mark.parametrize("path", PAGES, ids=os.path.basename)
def test_links_resolve(path):
    prose, _ = split_code(read(path))
    for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", prose):
        if "://" in target:
            continue
        file = os.path.normpath(os.path.join(os.path.dirname(path), target)) if target else path
        assert os.path.exists(file), f"{path} links to missing {target}"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", split_code(read(file))[0], re.M)
            assert anchor in {slug(h) for h in headings}, f"{path} links to missing #{anchor} in {target or path}"


def test_the_index_links_every_page_and_notebook():
    index = read(os.path.join(DOCS, "README.md"))
    for page in PAGES:
        if not page.endswith("README.md"):
            assert f"]({os.path.basename(page)})" in index, f"docs/README.md does not link {os.path.basename(page)}"
    for notebook in glob.glob(os.path.join(ROOT, "colab", "*.ipynb")):
        assert f"](../colab/{os.path.basename(notebook)})" in index


# ----- the example model of extending.md ----------------------------------------------------------------
def test_the_model_example_in_extending_md_builds_and_registers(monkeypatch):
    import types

    import jax
    import jax.numpy as jnp

    from jaxlth.errors import UserError
    from jaxlth.pruning import masks

    section = read(os.path.join(DOCS, "extending.md")).split("## A dataset")[0]
    model_source, registration = split_code(section)[1][:2]
    module = types.ModuleType("jaxlth.models.mlp_bn")
    exec(compile(model_source, "extending.md", "exec"), module.__dict__)  # noqa: S102
    monkeypatch.setitem(sys.modules, "jaxlth.models.mlp_bn", module)
    namespace = dict(vars(models))
    exec(compile(re.sub(r"^MODELS = \{.*?^\}", "", registration, flags=re.S | re.M), "extending.md", "exec"), namespace)  # noqa: S102
    monkeypatch.setitem(models.MODELS, "mlp_bn", namespace["_mlp_bn"])

    model = models.get_model("mlp_bn", 10, width=32, depth=2)
    variables = model.init(jax.random.PRNGKey(0), jnp.zeros((4, 28, 28, 1)), train=False)
    logits, updates = model.apply(variables, jnp.ones((4, 28, 28, 1)), train=True, mutable=["batch_stats"])
    assert logits.shape == (4, 10) and set(updates["batch_stats"]) == {"bn_0", "bn_1"}
    assert [masks.layer_name(p) for p in masks.prunable_paths(variables["params"], ("output",))] == [
        "hidden_0/kernel",
        "hidden_1/kernel",
    ]
    with pytest.raises(UserError, match="has no option 'height'"):
        models.get_model("mlp_bn", 10, height=3)


# ----- a helper for writers ------------------------------------------------------------------------------
def missing_rows() -> list[str]:
    """Rows for experiments.md of the config fields it does not list, with the comments in config.py."""
    source = inspect.getsource(fields_lib.common_config) + inspect.getsource(fields_lib.pruning_config).replace(
        "c.", "c.pruning."
    )
    for name, experiment in registry.all_experiments().items():  # blocks: their fields as c.<name>.<field>
        if experiment.defaults is not None:
            source += inspect.getsource(experiment.defaults).replace("c.", f"c.{name}.")
    comments = dict(re.findall(r"c\.([\w.]+) = [^#\n]*#\s*(.*)", source))
    documented = documented_fields()
    rows = []
    for name, default in config_fields().items():
        if name not in documented:
            value = '"' + default + '"' if isinstance(default, str) else repr(default)
            rows.append(f"| `{name}` | `{value}` | {comments.get(name, '')} |")
    return rows


if __name__ == "__main__":
    print("\n".join(missing_rows()) or "docs/experiments.md lists every config field")
