"""Start-up imports only what a run uses (docs/design.md, "The declaration"): reading and checking a
config, from Python and on the command line, loads neither Orbax, matplotlib nor pandas, nor any
experiment's run, reader or figures; an experiment's own modules load when it is used, without SciPy's
optimize. The first two checks start a fresh Python each (what the test process has imported proves nothing)."""

import json
import re
import subprocess
import sys
import types

import pytest

from jaxlth import runs
from jaxlth.errors import UserError
from jaxlth.experiments import registry
from jaxlth.experiments.protocol import Experiment, Lazy, lazy
from tests.conftest import ROOT, run_cli

HEAVY = ("orbax", "matplotlib", "pandas")  # what only checkpoints, figures and tables need
PARTS = re.compile(r"jaxlth\.experiments\.(\w+)\.(run|figures|reader)")  # what only running or reading a kind needs


def unwanted(modules) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or PARTS.fullmatch(m))


# The command line's parsing (a renamed field, tuple overrides, an experiment selected), the check
# --fit makes before it compiles anything, the experiments --help lists, and both recipes built from
# Python; then one experiment used.
READ_CONFIGS = """
import json, sys
from jaxlth import config as config_lib
from jaxlth import fields, main
from jaxlth.experiments import recipes, registry

main.parse_flags(["jaxlth.main", "--config", "tests/configs/tiny.py:lottery", "--fit", "--config.replicates=2",
                  "--config.lottery.prune_fraction=0.2,0.4", "--config.train.lr=0.01,0.02",
                  "--config.lottery.layers_to_ignore=('output',)"])
config = main._CONFIG.value
for field, value in main._TUPLE_OVERRIDES.items():
    fields.set_field(config, field, value)
assert recipes.validate(config).name == "lottery" and config.lottery.prune_fraction == (0.2, 0.4)
assert "lottery" in main._experiment_listing()
config_lib.from_file("configs/lenet_fashion_mnist.py")
config_lib.from_file("tests/configs/tiny.py", **{"train.steps": "1ep"})
read = sorted(sys.modules)
lottery = registry.get("lottery")
assert callable(lottery.run) and lottery.reader.__name__ == "LotteryRun"
print(json.dumps({"read": read, "used": sorted(sys.modules)}))
"""


def test_reading_a_config_imports_no_experiment_and_no_heavy_library():
    proc = subprocess.run([sys.executable, "-c", READ_CONFIGS], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    modules = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "jaxlth.experiments.lottery.block" in modules["read"]  # the config was built with every block
    assert not unwanted(modules["read"]), unwanted(modules["read"])
    used = set(modules["used"]) - set(modules["read"])
    assert {"jaxlth.experiments.lottery.run", "jaxlth.experiments.lottery.reader"} <= used
    others = [m for m in unwanted(used) if PARTS.fullmatch(m) and PARTS.fullmatch(m).group(1) != "lottery"]
    assert not others, f"using the lottery experiment imported other experiments' parts: {others}"
    assert "scipy.optimize" not in used  # ~0.8 s; only weight matching (averaging with alignment) needs it


def test_the_command_line_checks_a_config_before_importing_what_runs_it():
    # Stopped at the missing --workdir: after the config is parsed and validated, before anything runs.
    proc = run_cli(
        "--config",
        "configs/lenet_fashion_mnist.py:lottery",
        "--config.lottery.prune_fraction=0.2,0.4",
        "--config.train.steps=1ep",
        env={"PYTHONPROFILEIMPORTTIME": "1"},  # python -X importtime: every module imported, on stderr
    )
    assert proc.returncode == 2 and "--workdir is required" in proc.stderr, proc.stderr[-2000:]
    imported = [line.rpartition("|")[2].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    assert "jaxlth.experiments.lottery.block" in imported  # the config was built (jaxlth.main runs as __main__)
    assert not unwanted(imported), unwanted(imported)


def test_every_kind_names_parts_that_import():
    for experiment in registry.builtin():
        assert callable(experiment.run) and callable(experiment.check), experiment.name
        assert isinstance(experiment.reader, type) and issubclass(experiment.reader, runs.Run), experiment.name
        assert experiment.report is None or callable(experiment.report), experiment.name
        if experiment.figures is not None:
            assert isinstance(experiment.figures, types.ModuleType) and experiment.figure_names(), experiment.name


def test_lazy_parts_resolve_once_and_name_what_is_missing():
    def run(context):
        return None

    own = Experiment(name="own", summary="real callables, as a researcher's module may give them", run=run)
    assert own.run is run and own.reader is runs.Run
    named = Experiment(name="named", summary="s", run=lazy("jaxlth.runs:Run.levels"), figures=lazy("jaxlth.runs"))
    assert isinstance(object.__getattribute__(named, "run"), Lazy)
    assert named.run is runs.Run.levels and named.figures is runs
    assert object.__getattribute__(named, "run") is runs.Run.levels  # kept: resolved once
    missing = Experiment(name="missing", summary="s", run=lazy("jaxlth.nowhere:run"), reader=lazy("jaxlth.runs:Nope"))
    with pytest.raises(UserError, match=r"'missing' declares run=lazy\('jaxlth.nowhere:run'\)"):
        missing.run
    with pytest.raises(UserError, match="declares reader=lazy.*AttributeError"):
        missing.reader
    for bad in ("", "jaxlth.runs:", "jaxlth/runs.py:Run", "a b"):
        with pytest.raises(ValueError, match="package.module"):
            lazy(bad)
