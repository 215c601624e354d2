import jax.numpy as jnp
import numpy as np
import pytest

from jaxlth.config import base_config
from jaxlth.errors import UserError
from jaxlth.training import optim


def train_cfg(**overrides):
    c = base_config().train
    for k, v in overrides.items():
        c[k] = v
    return c


def test_constant_schedule():
    lr = optim.make_schedule(train_cfg(lr=0.1), 10, 100)
    np.testing.assert_allclose(lr(jnp.arange(100)), 0.1)


def test_step_schedule_drops_at_milestones():
    lr = optim.make_schedule(train_cfg(lr=0.1, schedule="step", milestones="8ep,12ep", gamma=0.1), 10, 160)
    values = np.asarray(lr(jnp.array([0, 79, 80, 119, 120, 159])))
    np.testing.assert_allclose(values, [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)


def test_linear_warmup_then_constant():
    lr = optim.make_schedule(train_cfg(lr=0.4, warmup="10it"), 10, 100)
    values = np.asarray(lr(jnp.arange(12)))
    np.testing.assert_allclose(values[:10], 0.4 * np.arange(1, 11) / 10, rtol=1e-6)
    np.testing.assert_allclose(values[10:], 0.4)


def test_cosine_decays_to_zero():
    lr = optim.make_schedule(train_cfg(lr=1.0, schedule="cosine"), 10, 100)
    np.testing.assert_allclose(lr(jnp.array([0, 50, 100])), [1.0, 0.5, 0.0], atol=1e-6)


def test_linear_decay_follows_the_warmup_and_reaches_zero_at_decay_steps():
    # Hugging Face's get_linear_schedule_with_warmup: step/warmup up to the warmup, then (T - step)/(T - warmup).
    lr = optim.make_schedule(train_cfg(lr=2e-5, schedule="linear", warmup="10it"), 10, 110)
    steps = np.array([0, 4, 9, 10, 60, 109, 110, 200])
    hf = np.where(steps < 10, (steps + 1) / 10, np.clip((110 - steps) / 100, 0, 1)) * 2e-5
    np.testing.assert_allclose(lr(jnp.asarray(steps)), hf, rtol=1e-6, atol=1e-12)
    longer = optim.make_schedule(train_cfg(lr=1.0, schedule="linear", decay_steps="30ep"), 10, 30)
    np.testing.assert_allclose(longer(jnp.array([0, 30, 150, 300])), [1.0, 0.9, 0.5, 0.0], atol=1e-6)


@pytest.mark.parametrize("field, value", [("schedule", "exp"), ("optimizer", "lamb"), ("lr", 0.0)])
def test_bad_choices_raise(field, value):
    cfg = train_cfg(**{field: value})
    with pytest.raises(UserError, match=field.split("_")[0]):
        optim.make_optimizer(cfg)
        optim.make_schedule(cfg, 10, 100)


def test_sgd_weight_decay_is_added_to_the_gradient_before_momentum():
    tx = optim.make_optimizer(train_cfg(momentum=0.9, weight_decay=0.5))
    params = {"w": jnp.array([2.0])}
    state = tx.init(params)
    updates, state = tx.update({"w": jnp.array([1.0])}, state, params)
    np.testing.assert_allclose(updates["w"], [2.0])  # g + wd * w
    updates, state = tx.update({"w": jnp.array([1.0])}, state, params)
    np.testing.assert_allclose(updates["w"], [2.0 * 0.9 + 2.0])  # momentum buffer


def test_adamw_decay_is_decoupled():
    tx = optim.make_optimizer(train_cfg(optimizer="adamw", weight_decay=0.1))
    params = {"w": jnp.array([3.0])}
    updates, _ = tx.update({"w": jnp.array([0.0])}, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], [0.3])
