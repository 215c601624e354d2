import pytest

from jaxlth import steps
from jaxlth.errors import UserError


@pytest.mark.parametrize(
    "spec, epochs, iterations",
    [("40ep", 40, 0), ("1000it", 0, 1000), ("2ep100it", 2, 100), (" 3ep ", 3, 0), ("0it", 0, 0), (7, 0, 7)],
)
def test_parse(spec, epochs, iterations):
    assert steps.parse(spec) == steps.StepSpec(epochs, iterations)


def test_to_steps_uses_steps_per_epoch():
    assert steps.to_steps("2ep100it", 468) == 2 * 468 + 100
    assert steps.to_steps("40ep", 468) == 18720


def test_str_round_trip():
    for spec in ("40ep", "1000it", "2ep100it"):
        assert str(steps.parse(spec)) == spec


@pytest.mark.parametrize("bad", ["10xp", "", "ep", "it", "1.5ep", "-3it", "100", "3it2ep", "ep10"])
def test_malformed_specs_name_the_field_and_the_forms(bad):
    with pytest.raises(UserError) as e:
        steps.parse(bad, "train.steps")
    message = str(e.value)
    assert "train.steps" in message and repr(bad) in message and "'40ep'" in message


def test_negative_and_bool_ints_are_rejected():
    with pytest.raises(UserError):
        steps.parse(-1)
    with pytest.raises(UserError):
        steps.parse(True)


def test_parse_list_sorts_and_converts():
    assert steps.parse_list("120ep, 80ep", 10, "train.milestones") == [800, 1200]
    assert steps.parse_list("", 10, "train.milestones") == []
    with pytest.raises(UserError, match="train.milestones"):
        steps.parse_list("80ep,12x", 10, "train.milestones")
