"""Every recipe in configs/ loads, documents its command, and holds settings that can run.

Configs are loaded from their file path, as ``ml_collections.config_flags`` does; nothing trains.
"""

import glob
import importlib.util
import os

import pytest

from jaxlth import config as config_lib
from jaxlth import experiments, models, steps
from jaxlth.experiments.lottery import block as lottery_block

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_FILES = sorted(
    p for p in glob.glob(os.path.join(ROOT, "configs", "*.py")) if not os.path.basename(p).startswith("_")
)
NAMES = [os.path.basename(p) for p in CONFIG_FILES]

# Training-set sizes, to turn epoch specs into steps for the ordering checks below.
TRAIN_SIZES = {
    "mnist": 60_000,
    "fashion_mnist": 60_000,
    "cifar10": 50_000,
    "cifar100": 50_000,
    "imagenet2012": 1_281_167,
    # GLUE training sets (Hugging Face nyu-mll/glue) and WikiText-103 in 128-token blocks (about).
    **{"sst2": 67_349, "mrpc": 3_668, "qqp": 363_846, "stsb": 5_749, "cola": 8_551, "mnli": 392_702},
    **{"qnli": 104_743, "rte": 2_490, "wnli": 635, "text": 800_000},
}


def load_module(path):
    spec = importlib.util.spec_from_file_location(f"recipe_{os.path.basename(path)[:-3]}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(params=CONFIG_FILES, ids=NAMES)
def recipe(request):
    return request.param, load_module(request.param)


def test_there_are_recipes():
    assert "lenet_fashion_mnist.py" in NAMES and len(NAMES) >= 8


def test_docstring_shows_the_commands(recipe):
    path, module = recipe
    name = os.path.basename(path)
    assert module.__doc__, f"{name} has no docstring"
    assert f"python -m jaxlth.main --config configs/{name}" in module.__doc__
    assert f"--config configs/{name}:lottery" in module.__doc__


def test_train_config(recipe):
    _, module = recipe
    for c in (module.get_config(), module.get_config("train")):
        assert c.experiment == "train"
        check_config(c)
    assert module.get_config().to_dict() == module.get_config("train").to_dict()


def test_lottery_config(recipe):
    _, module = recipe
    c = module.get_config("lottery")
    assert c.experiment == "lottery"
    check_config(c)
    lot = c.lottery
    assert 0.0 < lot.get("prune_fraction", 0.2) < 1.0
    assert isinstance(lot.get("levels", 1), int) and lot.get("levels", 1) >= 1
    assert lot.get("scope", "global") in ("global", "layerwise")
    assert lot.get("retrain", "weight_rewind") in ("weight_rewind", "lr_rewind", "finetune")
    total, per_epoch = total_steps(c)
    assert 0 <= steps.to_steps(lottery_block.rewind_spec(lot.get("rewind", "0it")), per_epoch) < total
    # The train and lottery configs differ only in the experiment and the lottery block.
    train = module.get_config().to_dict()
    lottery = c.to_dict()
    for d in (train, lottery):
        del d["experiment"], d["lottery"]
    assert train == lottery


def test_unknown_argument_is_refused(recipe):
    _, module = recipe
    with pytest.raises(ValueError, match=r"unknown config argument 'bogus'; use 'train'(,| or) 'lottery'"):
        module.get_config("bogus")


INSTABILITY_RECIPES = ("lenet_fashion_mnist.py", "lenet_mnist.py", "resnet20_cifar10.py", "vgg16_cifar10.py")


@pytest.mark.parametrize("name", INSTABILITY_RECIPES)
def test_instability_config(name):
    module = load_module(os.path.join(os.path.dirname(CONFIG_FILES[0]), name))
    assert f"--config configs/{name}:instability" in module.__doc__
    c = module.get_config("instability")
    assert c.experiment == "instability"
    check_config(c)
    total, per_epoch = total_steps(c)
    spawn = steps.parse_list(c.instability.spawn_steps, per_epoch, "instability.spawn_steps")
    assert spawn[0] == 0 and all(k < total for k in spawn) and c.instability.copies >= 2
    assert c.instability.alphas == 30  # Frankle et al. 2020: 30 evenly spaced alphas
    # Same training as the train recipe, so a lottery run of the recipe can be its source_workdir.
    train = module.get_config().to_dict()
    ours = c.to_dict()
    for d in (train, ours):
        del d["experiment"], d["instability"]
    assert train == ours


def total_steps(c):
    per_epoch = TRAIN_SIZES[c.data.name] // c.train.batch_size
    return steps.to_steps(c.train.steps, per_epoch), per_epoch


def check_config(c):
    """Step specs parse and fit in training; the model exists and takes the options given."""
    config_lib.validate(c)
    assert c.model.name in models.MODELS
    options = c.model.get("options")
    models.get_model(c.model.name, 10, **(options.to_dict() if options is not None else {}))
    assert c.data.name in TRAIN_SIZES
    for field in ("train.steps", "train.warmup", "eval_every", "checkpoint_every"):
        node = c
        for part in field.split("."):
            node = node.get(part, "0it")
        steps.parse(node, field)
    total, per_epoch = total_steps(c)
    assert total > 0
    milestones = steps.parse_list(c.train.get("milestones", ""), per_epoch, "train.milestones")
    assert all(0 < m < total for m in milestones)
    assert steps.to_steps(c.train.get("warmup", "0it"), per_epoch) < total
    assert c.train.get("schedule", "constant") != "step" or milestones


def test_a_config_json_from_before_a_field_existed_still_matches(tmp_path):
    import json

    from jaxlth.errors import UserError
    from jaxlth.experiments import recipes, registry

    config = config_lib.from_file(os.path.join(ROOT, "configs", "lenet_fashion_mnist.py:lottery"))
    experiments.claim(str(tmp_path), config)
    path = tmp_path / "config.json"
    saved = json.loads(path.read_text())
    del saved["lottery"]["random_prune_scope"], saved["data"]["synthetic_seed"], saved["train"]["beta1"]
    path.write_text(json.dumps(saved))  # as an older jaxlth wrote it
    assert experiments.claim(str(tmp_path), config)  # the same experiment: a resume
    assert recipes.rerun_differences(saved, config_lib.to_dict(config), registry.get("lottery")) == []
    config.instability.copies = 3  # another experiment's block: a lottery run does not read it
    assert experiments.claim(str(tmp_path), config)
    config.lottery.random_prune_scope = "global"  # not the default an older run had
    with pytest.raises(UserError, match="lottery.random_prune_scope"):
        experiments.claim(str(tmp_path), config)


def test_from_file_applies_overrides_and_model_options():
    config = config_lib.from_file(
        os.path.join(ROOT, "configs", "resnet20_cifar10.py:lottery"),
        **{"lottery.levels": 3, "model.options.width": 64, "replicates": 2},
    )
    assert (config.lottery.levels, config.model.options.width, config.replicates) == (3, 64, 2)
    lenet = config_lib.from_file(
        os.path.join(ROOT, "configs", "lenet_fashion_mnist.py"),
        **{"model.name": "lenet", "model.options.widths": [64, 32]},
    )
    assert tuple(lenet.model.options.widths) == (64, 32)
    from jaxlth.errors import UserError

    with pytest.raises(UserError, match=r"unknown config field lottery.levelz \(did you mean lottery.levels\?\)"):
        config_lib.from_file(os.path.join(ROOT, "configs", "lenet_fashion_mnist.py"), **{"lottery.levelz": 3})
    with pytest.raises(UserError, match="does not exist"):
        config_lib.from_file(os.path.join(ROOT, "configs", "nope.py"))
    with pytest.raises(UserError, match="train.steps"):
        config_lib.from_file(os.path.join(ROOT, "configs", "lenet_fashion_mnist.py"), **{"train.steps": "10xp"})


# ----- staged recipes (configs/<folder>/<name>.py): one stage per argument ----------------------------------
STAGED_FILES = sorted(p for p in glob.glob(os.path.join(ROOT, "configs", "*", "*.py")) if "/sweeps/" not in p)


@pytest.mark.parametrize("path", STAGED_FILES, ids=[os.path.relpath(p, ROOT) for p in STAGED_FILES])
def test_every_stage_of_a_staged_recipe_builds_and_its_command_is_shown(path):
    module, relative = load_module(path), os.path.relpath(path, ROOT)
    stages = getattr(module, "ARGS", None) or module.STAGES
    assert len(stages) >= 2
    for stage in stages:
        c = module.get_config(stage)
        assert c.experiment in experiments.registry.names(), (relative, stage)
        options = c.model.get("options")
        models.get_model(c.model.name, 10, **(options.to_dict() if options is not None else {}))
        if "," not in stage:
            assert f"python -m jaxlth.main --config {relative}:{stage} " in module.__doc__, (relative, stage)
    with pytest.raises(ValueError, match="unknown config argument"):
        module.get_config("no_such_stage")
