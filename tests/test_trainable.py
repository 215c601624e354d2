"""train.trainable: only the parameters it names train; the others stay bitwise at their start, keep no
optimizer state, and compose with masks (Frankle, Schwab & Morcos 2021: "BatchNorm only")."""

import jax
import numpy as np
import optax
import pytest

from jaxlth import checkpoint, fields
from jaxlth.errors import UserError
from jaxlth.experiments import recipes
from jaxlth.models import get_model
from jaxlth.pruning import masks
from jaxlth.training import optim, trainable
from jaxlth.training import setup as setup_lib
from tests.conftest import run_cli, tiny_config

OUTPUT = ("^output/",)  # the tiny LeNet trains its output layer only; hidden_0 and hidden_1 are frozen


def build(replicates=1, **changes):
    config = tiny_config(**changes)  # SGD, momentum 0.9, weight decay 1e-4
    config.replicates = replicates
    return setup_lib.build(config)


def flat(tree) -> dict:
    """``{"hidden_0/kernel": array}`` of a parameter tree (numpy)."""
    return {"/".join(k.key for k in path): np.asarray(x) for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def state_arrays(opt_state) -> list[str]:
    """The key paths of the arrays an optimizer state holds, but its step counts."""
    paths = [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_flatten_with_path(opt_state)[0]]
    return [p for p in paths if not p.endswith(".count")]


def init_of(model, image_shape):
    """``key -> (params, batch_stats)`` of ``model`` on images of ``image_shape``."""

    def init(key):
        variables = model.init(key, np.zeros((1, *image_shape), np.float32), train=False)
        return variables["params"], variables.get("batch_stats", {})

    return init


@pytest.mark.parametrize("changes", [{}, {"train.optimizer": "adamw", "train.lr": 1e-3, "train.weight_decay": 0.1}])
def test_frozen_parameters_stay_bitwise_and_keep_no_optimizer_state(changes):
    setup = build(replicates=2, **{"train.trainable": OUTPUT, **changes})
    state = setup.init_state()
    start = flat(state.params)
    arrays = state_arrays(state.opt_state)
    assert len(arrays) == (4 if changes else 2), arrays  # SGD's momentum, or Adam's two moments, of output/* only
    assert all("'output'" in path for path in arrays), arrays
    state, _ = setup.program.train_chunk(state, {}, setup.data, 0, num_steps=20)
    end = flat(state.params)
    for name in ("hidden_0/kernel", "hidden_0/bias", "hidden_1/kernel", "hidden_1/bias"):
        assert end[name].tobytes() == start[name].tobytes(), name
    for name in ("output/kernel", "output/bias"):
        assert not np.allclose(end[name], start[name]), name
    assert all("'output'" in path for path in state_arrays(state.opt_state))


def test_a_sweep_of_weight_decay_moves_no_frozen_parameter():
    setup = build(**{"train.trainable": OUTPUT, "train.weight_decay": (0.0, 0.5)})  # inject_hyperparams around it
    state = setup.init_state()
    start = flat(state.params)
    state, _ = setup.program.train_chunk(state, {}, setup.data, 0, num_steps=10)
    end = flat(state.params)
    for name in ("hidden_0/kernel", "hidden_0/bias", "hidden_1/kernel", "hidden_1/bias"):
        assert end[name].tobytes() == start[name].tobytes(), name
    decayed = end["output/kernel"]
    assert not np.allclose(decayed[0], decayed[1])  # the two settings trained the output layer apart


def test_masked_entries_stay_zero_whether_frozen_or_trained():
    setup = build(**{"train.trainable": ("^hidden_1/", "^output/"), "pruning.layers_to_ignore": ()})
    state = setup.init_state()
    keep = jax.tree.map(
        lambda m: jax.random.bernoulli(jax.random.PRNGKey(m.size), 0.5, m.shape), masks.ones_like(state.params)
    )
    start = flat(masks.apply(state.params, keep))  # a level starts from masked weights
    state, _ = setup.program.train_chunk(state, keep, setup.data, 0, num_steps=20)
    end, kept = flat(state.params), flat(keep)
    for name in ("hidden_0/kernel", "hidden_1/kernel", "output/kernel"):  # frozen, trained, trained
        assert np.all(end[name][~kept[name]] == 0.0), name
    assert end["hidden_0/kernel"].tobytes() == start["hidden_0/kernel"].tobytes()
    trained = kept["hidden_1/kernel"]
    assert np.all(end["hidden_1/kernel"][trained] != start["hidden_1/kernel"][trained])


def test_the_default_trains_everything_with_the_optimizer_unchanged():
    default = build()
    everything = build(**{"train.trainable": (".*",)})  # the same leaves, through the partition
    plain = optax.chain(optax.add_decayed_weights(1e-4), optax.trace(decay=0.9))
    params = default.init_state().params
    assert jax.tree.structure(default.program.tx.init(params)) == jax.tree.structure(plain.init(params))
    a, _ = default.program.train_chunk(default.init_state(), {}, default.data, 0, num_steps=20)
    b, _ = everything.program.train_chunk(everything.init_state(), {}, everything.data, 0, num_steps=20)
    for name, value in flat(a.params).items():
        assert value.tobytes() == flat(b.params)[name].tobytes(), name


def test_batchnorm_names_the_scale_and_bias_of_every_batchnorm_layer():
    network = trainable.network_for({"trainable": ("batchnorm",)}, init_of(get_model("resnet20", 10), (32, 32, 3)))
    trained = trainable.trained({"trainable": ("batchnorm",)}, network)
    layers = {name.rpartition("/")[0] for name in trained}
    assert len(trained) == 2 * len(layers) == 2 * 21  # the stem, 18 in the blocks, 2 shortcuts
    assert all(name.rpartition("/")[2] in ("scale", "bias") and "bn" in name for name in trained)
    both = trainable.trained({"trainable": ("batchnorm", "^output/")}, network)
    assert both == trained | {"output/kernel", "output/bias"}
    shapes = trainable.network_for({"trainable": ("x",)}, init_of(get_model("vit_tiny", 10, patch_size=8), (32, 32, 3)))
    with pytest.raises(UserError, match="no BatchNorm layer"):
        trainable.trained({"trainable": ("batchnorm",)}, shapes)


def test_a_partitioned_optimizer_state_survives_a_checkpoint(tmp_path):
    setup = build(**{"train.trainable": OUTPUT})
    state, _ = setup.program.train_chunk(setup.init_state(), {}, setup.data, 0, num_steps=3)
    saved = checkpoint.Checkpoints(str(tmp_path))
    saved.save(3, state)
    saved.close()
    restored, _ = checkpoint.Checkpoints(str(tmp_path)).restore(3, jax.eval_shape(setup.init_state))
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state)):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()


@pytest.mark.parametrize(
    "value, message",
    [
        (("(",), "invalid regular expression '\\('"),
        ((3,), "must be a tuple of regular expressions"),
    ],
)
def test_bad_values_are_refused_when_the_config_is_read(value, message):
    with pytest.raises(UserError, match=message):
        tiny_config(**{"train.trainable": value})


def test_a_pattern_that_matches_nothing_is_refused_in_one_sentence(tmp_path):
    with pytest.raises(UserError, match=r"pattern '\^bn' matches no parameter of this model \(hidden_0/bias, "):
        build(**{"train.trainable": ("^output/", "^bn")})
    workdir = tmp_path / "run"
    proc = run_cli("--config", "tests/configs/tiny.py", "--workdir", str(workdir), "--config.train.trainable=('^bn',)")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "train.trainable pattern '^bn' matches no parameter" in proc.stderr
    assert not (workdir / "config.json").exists()  # refused before the workdir was claimed


def test_a_rerun_may_not_change_what_trains():
    config = tiny_config(**{"train.trainable": OUTPUT})
    saved, current = fields.to_dict(tiny_config()), fields.to_dict(config)
    differences = recipes.rerun_differences(saved, current, recipes.validate(config))
    assert differences == ["train.trainable: [] there, ['^output/'] here"]
    del saved["train"]["trainable"]  # a workdir written before the field existed trained everything
    assert recipes.rerun_differences(saved, fields.to_dict(tiny_config()), recipes.validate(config)) == []


def test_make_optimizer_needs_the_shapes_to_freeze_anything():
    with pytest.raises(ValueError, match="needs the network's parameter shapes"):
        optim.make_optimizer(tiny_config(**{"train.trainable": OUTPUT}).train)


def test_frozen_kernels_stay_at_their_start_on_their_mask_through_imp_levels(tmp_path):
    from jaxlth import experiments, results

    changes = {"train.trainable": OUTPUT, "lottery.branches": (), "lottery.levels": 1, "train.steps": "1ep"}
    config = tiny_config("lottery", **changes, eval_every="8it")  # prunes hidden_* (output ignored), rewinds to 3it
    experiments.run(config, str(tmp_path))
    run = results.load(str(tmp_path))
    init = flat(run.params(which="init"))
    for level in (0, 1):
        final, rewind, kept = flat(run.params(level)), flat(run.params(level, which="rewind")), flat(run.mask(level))
        for name in ("hidden_0/kernel", "hidden_1/kernel"):
            assert final[name].tobytes() == rewind[name].tobytes() == np.where(kept[name], init[name], 0).tobytes()
        assert final["hidden_0/bias"].tobytes() == init["hidden_0/bias"].tobytes()
        assert not np.allclose(final["output/kernel"], init["output/kernel"])
    assert 0.7 < np.mean(kept["hidden_0/kernel"]) < 0.9  # level 1 pruned frozen kernels by their random magnitudes
