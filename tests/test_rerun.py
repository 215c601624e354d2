"""What a rerun on an existing workdir may change: every field a run reads is compared (the common
fields and blocks, ``train`` included, its own block and its ``reads``), a refused rerun changes no byte
of the workdir, and the renamed ``lottery.layers_to_ignore`` keeps working everywhere it was written."""

import json
import os

import pytest

from jaxlth import config as config_lib
from jaxlth import fields
from jaxlth.errors import UserError
from jaxlth.experiments import recipes, registry
from tests.conftest import TINY, run_cli, tiny_config

# One field of every common block and a top-level one: each must be compared for every experiment.
COMMON_CHANGES = {
    "train": ("lr", 0.05),
    "data": ("subsample_fraction", 0.5),
    "model": ("name", "conv2"),
    "pruning": ("layers_to_ignore", ["hidden_0"]),
    "seed": (None, 7),
}


@pytest.mark.parametrize("name", registry.names())
def test_every_field_an_experiment_reads_is_compared_on_a_rerun(name):
    experiment = registry.get(name)
    saved = fields.to_dict(config_lib.base_config())
    saved["experiment"] = name
    for block, (field, value) in COMMON_CHANGES.items():
        current = json.loads(json.dumps(saved))
        if field is None:
            current[block] = value
        else:
            current[block][field] = value
        differ = recipes.rerun_differences(saved, current, experiment)
        assert differ and differ[0].startswith(block), (name, block, differ)
    for other in registry.names():  # another experiment's block is not read ...
        if other != name and registry.get(other).defaults is not None:
            current = json.loads(json.dumps(saved))
            first = next(iter(current[other]))
            current[other][first] = "changed"
            expected = [f for f in experiment.reads if f.startswith(other + ".")]
            assert bool(recipes.rerun_differences(saved, current, experiment)) == bool(expected)
    if experiment.defaults is not None:  # ... its own is, except what may change
        for field in saved[name]:
            current = json.loads(json.dumps(saved))
            current[name][field] = "changed"
            differ = recipes.rerun_differences(saved, current, experiment)
            assert bool(differ) == (f"{name}.{field}" not in experiment.may_change), (name, field)


def test_no_block_can_shadow_an_experiment_name():
    from jaxlth.experiments.protocol import Experiment

    for name in ("data", "pruning", "seed"):
        shadow = Experiment(
            name=name,
            summary="a block named like a common field",
            run=lambda ctx: None,
            defaults=lambda: config_lib.common_config().train,
        )
        with pytest.raises(UserError, match=f"named like the common field '{name}'"):
            registry.check_together((*registry.builtin(), shadow))
    names = set(registry.names())
    assert not {n for n in names if registry.get(n).defaults is not None} & set(fields.COMMON)


def test_a_refused_rerun_changes_no_byte_of_the_workdir(tmp_path):
    workdir = tmp_path / "w"
    common = [
        "--config",
        f"{TINY}:lottery",
        "--workdir",
        str(workdir),
        "--config.lottery.levels=1",
        "--config.lottery.branches=()",
        "--config.train.steps=1ep",
    ]
    run_cli(*common, check=True)
    before = snapshot(workdir)
    for change in (
        "--config.train.lr=0.05",
        "--config.train.batch_size=16",
        "--config.pruning.layers_to_ignore=()",
        "--config.data.synthetic_seed=3",
        "--config.model.options.widths=(8, 8)",
    ):
        proc = run_cli(*common, change)
        assert proc.returncode == 2 and "holds a different experiment" in proc.stderr, (change, proc.stderr)
        assert snapshot(workdir) == before, change


def snapshot(folder) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes."""
    return {os.path.join(d, f): open(os.path.join(d, f), "rb").read() for d, _, files in os.walk(folder) for f in files}


def test_the_old_name_of_layers_to_ignore_works_everywhere(tmp_path, capsys):
    # from_file overrides
    config = tiny_config("lottery", **{"lottery.layers_to_ignore": ("hidden_0",)})
    assert tuple(config.pruning.layers_to_ignore) == ("hidden_0",) and "layers_to_ignore" not in config.lottery
    assert "lottery.layers_to_ignore is now pruning.layers_to_ignore" in capsys.readouterr().err
    # a recipe that still sets it
    recipe = tmp_path / "old_recipe.py"
    recipe.write_text(
        "from jaxlth.config import base_config, choose\n\n\ndef get_config(arg=None):\n"
        "    c = base_config()\n    c.lottery.layers_to_ignore = ('output',)\n    return choose(c, arg)\n"
    )
    config = config_lib.from_file(f"{recipe}:lottery")
    assert tuple(config.pruning.layers_to_ignore) == ("output",)
    assert "is now pruning.layers_to_ignore" in capsys.readouterr().err
    # a config.json written before the pruning block: read in today's names, and a rerun is accepted
    saved = fields.to_dict(config)
    saved["lottery"]["layers_to_ignore"] = saved.pop("pruning")["layers_to_ignore"]
    assert fields.migrate_saved(saved)["pruning"]["layers_to_ignore"] == ["output"]
    assert recipes.rerun_differences(fields.migrate_saved(saved), fields.to_dict(config), registry.get("lottery")) == []
