"""README.md's commands are the ones the project runs: CI's test command, the quickstart, and
command lines that name real configs, recipe arguments and config fields."""

import importlib.util
import os
import re
import shlex

import pytest

from jaxlth import config as config_lib
from jaxlth.errors import UserError
from tests.conftest import ROOT

README = open(os.path.join(ROOT, "README.md")).read()


def code_blocks(text: str, language: str = "bash") -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def commands(text: str) -> list[list[str]]:
    """Shell commands of the bash blocks, continuation lines joined, comments dropped."""
    out = []
    for block in code_blocks(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                out.append(shlex.split(line))
    return out


def main_commands(text: str) -> list[list[str]]:
    """The ``python -m jaxlth.main`` commands of the bash blocks and of inline code spans."""
    inline = [shlex.split(span) for span in re.findall(r"`(python -m jaxlth\.main [^`]*)`", text)]
    return [c for c in commands(text) + inline if c[:3] == ["python", "-m", "jaxlth.main"]]


def test_setup_block_is_the_run_and_test_commands_and_ci_runs_the_test_command():
    first = commands(README)[:2]
    assert first == [["./run.sh"], ["./test.sh"]]
    ci = [line.strip() for line in open(os.path.join(ROOT, ".ci", "run")) if line.strip() and not line.startswith("#")]
    assert ci[-1] == "./test.sh"
    assert os.access(os.path.join(ROOT, "run.sh"), os.X_OK) and os.access(os.path.join(ROOT, "test.sh"), os.X_OK)


def test_the_quickstart_command_in_readme_is_what_run_sh_runs():
    script = open(os.path.join(ROOT, "run.sh")).read()
    line = re.sub(r"\\\n\s*", " ", script[script.index("exec .venv/bin/python -m jaxlth.main") :]).splitlines()[0]
    ran = shlex.split(line.replace('"${WORKDIR:-runs/quickstart}"', "runs/quickstart").replace(' "$@"', ""))[4:]
    shown = [c for c in main_commands(README) if "runs/quickstart" in c]
    assert len(shown) == 1 and shown[0][3:] == ran


@pytest.mark.parametrize("command", main_commands(README), ids=lambda c: " ".join(c[3:7]))
def test_every_command_names_a_real_config_recipe_and_fields(command):
    args = command[3:]
    spec = args[args.index("--config") + 1]
    overrides = {}
    for arg in args:
        if arg.startswith("--config."):
            key, _, value = arg[len("--config.") :].partition("=")
            overrides[key] = value
    try:
        config = config_lib.from_file(os.path.join(ROOT, spec))  # the recipe and its argument exist
    except UserError as e:  # a run reading another run that is not on this machine: the recipe is still real
        assert re.search(r"\w+_workdir|model\.pretrained|transfer\.sources", str(e)), str(e)
        path, _, arg = spec.partition(":")
        module_spec = importlib.util.spec_from_file_location("readme_recipe", os.path.join(ROOT, path))
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        config = module.get_config(arg or None)
    for key in overrides:
        node = config
        for part in key.split("."):
            assert part in node, f"{key} is not a config field"
            node = node[part]
    assert "--workdir" in args


def test_every_sweep_command_names_a_sweep_file_or_a_recipe_that_plans():
    from jaxlth import sweep

    found = [c for c in commands(README) if c[:3] == ["python", "-m", "jaxlth.sweep"]]
    assert found
    for command in found:
        args = command[3:]
        if "--config" in args:
            grids = [args[i + 1] for i, a in enumerate(args) if a == "--grid"]
            config, overrides = os.path.join(ROOT, args[args.index("--config") + 1]), sweep.parse_grid(grids)
        else:
            config, overrides = sweep.load_sweep_file(os.path.join(ROOT, args[0]))
            config = os.path.join(ROOT, config)
        assert sweep.plan(config, overrides, "/nonexistent")
