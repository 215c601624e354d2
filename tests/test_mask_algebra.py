"""Masks that compose: intersection and union of k masks, their overlap against chance
(jaxlth.pruning.mask_algebra), the results API over runs, and lottery.mask_source compositions."""

import os

import numpy as np
import pytest
from flax import traverse_util

from jaxlth import experiments, results
from jaxlth.errors import UserError
from jaxlth.pruning import mask_algebra
from jaxlth.pruning import masks as mask_lib
from tests.conftest import TINY, run_cli, tiny_config
from tests.test_cli import assert_clear_error

SHAPES = {("Dense_0", "kernel"): (12, 7), ("Conv_0", "kernel"): (3, 3, 2, 4)}
TINY_LOTTERY = {"train.steps": "1ep", "replicates": 2, "lottery.branches": ()}


def flat(tree) -> dict:
    return {"/".join(k): np.asarray(v) for k, v in traverse_util.flatten_dict(dict(tree)).items()}


def random_masks(rng, k: int, lead: tuple = ()) -> list[dict]:
    """``k`` masks over :data:`SHAPES` of random densities, with leading axes ``lead``."""
    return [
        traverse_util.unflatten_dict({p: rng.random((*lead, *s)) < rng.uniform(0.2, 0.8) for p, s in SHAPES.items()})
        for _ in range(k)
    ]


def stacked(*masks) -> dict:
    """One-layer masks ``{"w": {"kernel": ...}}`` stacked on a leading replicate axis."""
    return {"w": {"kernel": np.stack([m["w"]["kernel"] for m in masks])}}


def one_sentence(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text and text.count(". ") == 0, text
    return text


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("lead", [(), (4,)])
def test_intersection_and_union_are_numpys_set_operations(k, lead):
    masks = random_masks(np.random.default_rng(k), k, lead)
    inter, union = mask_algebra.intersection(*masks), mask_algebra.union(*masks)
    for path in SHAPES:
        leaves = [traverse_util.flatten_dict(m)[path] for m in masks]
        np.testing.assert_array_equal(traverse_util.flatten_dict(inter)[path], np.logical_and.reduce(leaves))
        np.testing.assert_array_equal(traverse_util.flatten_dict(union)[path], np.logical_or.reduce(leaves))
    rows = mask_algebra.agreement_rows(*masks, replicate_axis=bool(lead))
    assert [row["layer"] for row in rows[:3]] == ["Dense_0/kernel", "Conv_0/kernel", "all"]  # the masks' order
    for op, expected in (("intersection", inter), ("union", union)):
        for a, b in zip(flat(mask_algebra.compose(op, *masks)).values(), flat(expected).values()):
            np.testing.assert_array_equal(a, b)


def test_overlap_and_chance_by_hand_for_two_and_three_masks():
    a = {"d": {"kernel": np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool)}, "e": {"kernel": np.ones((2, 2), bool)}}
    b = {"d": {"kernel": np.array([[1, 1, 0, 0], [1, 0, 0, 0]], bool)}, "e": {"kernel": np.ones((2, 2), bool)}}
    # |a and b| = 3 + 4, |a or b| = 6 + 4; chance in d (densities 3/4, 3/8, n = 8): E|and| = 2.25, E|or| = 6.75.
    assert float(mask_algebra.overlap(a, b)) == pytest.approx(0.7)
    assert {k: float(v) for k, v in mask_algebra.overlap(a, b, per_layer=True).items()} == {
        "d/kernel": 0.5,
        "e/kernel": 1,
    }
    assert float(mask_algebra.chance_overlap(a, b, per_layer=True)["d/kernel"]) == pytest.approx(1 / 3)
    assert float(mask_algebra.chance_overlap(a, b)) == pytest.approx((2.25 + 4) / (6.75 + 4))
    # For k = 2 they are jaxlth.pruning.masks' two-mask forms.
    assert float(mask_algebra.overlap(a, b)) == pytest.approx(float(mask_lib.overlap(a, b)))
    assert float(mask_algebra.chance_overlap(b, b)) == pytest.approx(float(mask_lib.chance_overlap(b)))
    # Three masks of one layer of 8: the intersection {0, 1}, the union {0, ..., 5}; chance
    # (1/2 * 1/2 * 3/8) / (1 - 1/2 * 1/2 * 5/8) = 1/9.
    x = {"w": {"kernel": np.array([[1, 1, 1, 1, 0, 0, 0, 0]], bool)}}
    y = {"w": {"kernel": np.array([[1, 1, 0, 0, 1, 1, 0, 0]], bool)}}
    z = {"w": {"kernel": np.array([[1, 1, 1, 0, 0, 0, 0, 0]], bool)}}
    assert float(mask_algebra.overlap(x, y, z)) == pytest.approx(2 / 6)
    assert float(mask_algebra.chance_overlap(x, y, z)) == pytest.approx(1 / 9)
    entry = {k: np.asarray(v) for k, v in mask_algebra.agreement(x, y, z)["w/kernel"].items()}
    np.testing.assert_allclose(entry["density"], [0.5, 0.5, 3 / 8])
    assert (entry["weights"], entry["intersection"], entry["union"]) == (8, 2 / 8, 6 / 8)
    # One mask agrees with itself; a replicate axis pairs replicate r of each mask.
    assert float(mask_algebra.overlap(x)) == 1.0 and float(mask_algebra.chance_overlap(x)) == pytest.approx(1.0)
    got = mask_algebra.overlap(stacked(x, x), stacked(y, x), stacked(z, x), replicate_axis=True)
    np.testing.assert_allclose(got, [1 / 3, 1.0], rtol=1e-6)
    got = mask_algebra.chance_overlap(stacked(x, x), stacked(y, x), stacked(z, x), replicate_axis=True)
    np.testing.assert_allclose(
        got, [1 / 9, 1 / 7], rtol=1e-6
    )  # replicate 1: x thrice, identical, yet chance (1/8) / (7/8)
    rows = mask_algebra.agreement_rows(stacked(x, x), stacked(y, x), replicate_axis=True)
    assert [(r["replicate"], r["layer"]) for r in rows] == [(0, "w/kernel"), (0, "all"), (1, "w/kernel"), (1, "all")]
    assert rows[1]["overlap"] == pytest.approx(2 / 6) and rows[3]["overlap"] == 1.0


def test_chance_is_the_mean_overlap_of_random_masks_of_those_counts():
    """A Monte-Carlo check: 3 masks keeping fixed counts per layer, drawn uniformly at random 3000 times."""
    rng, draws = np.random.default_rng(0), 3000
    sizes, kept = {"a": 400, "b": 150}, {"a": (200, 120, 300), "b": (30, 90, 75)}
    stacks = []
    for i in range(3):
        stacks.append(
            {name: {"kernel": rng.random((draws, n)).argsort(axis=1) < kept[name][i]} for name, n in sizes.items()}
        )
    overlaps = np.asarray(mask_algebra.overlap(*stacks, replicate_axis=True))
    both = sum(np.logical_and.reduce([s[n]["kernel"] for s in stacks]).sum(1) for n in sizes)
    either = sum(np.logical_or.reduce([s[n]["kernel"] for s in stacks]).sum(1) for n in sizes)
    np.testing.assert_allclose(overlaps, both / either, rtol=1e-6)  # the replicate axis: every draw its own
    one = [{n: {"kernel": s[n]["kernel"][0]} for n in sizes} for s in stacks]
    chance = float(mask_algebra.chance_overlap(*one))
    assert chance == pytest.approx(overlaps.mean(), abs=4 * overlaps.std() / np.sqrt(draws) + 2e-3)
    per_layer = mask_algebra.chance_overlap(*one, per_layer=True)
    for name, n in sizes.items():
        layer = np.logical_and.reduce([s[name]["kernel"] for s in stacks]).sum(1) / np.logical_or.reduce(
            [s[name]["kernel"] for s in stacks]
        ).sum(1)
        assert float(per_layer[f"{name}/kernel"]) == pytest.approx(
            layer.mean(), abs=4 * layer.std() / np.sqrt(draws) + 2e-3
        )
    d = np.array(kept["b"]) / 150  # the formula itself in layer b
    assert float(per_layer["b/kernel"]) == pytest.approx(np.prod(d) / (1 - np.prod(1 - d)), rel=1e-6)


def test_masks_that_do_not_compose_are_refused_in_one_sentence():
    a, b = random_masks(np.random.default_rng(0), 2)
    other_layers = {**a, "Dense_1": {"kernel": np.ones((2, 2), bool)}}
    other_shape = {**a, "Dense_0": {"kernel": np.ones((12, 8), bool)}}
    cases = [
        (lambda: mask_algebra.intersection(a, other_layers), "mask 1 covers Dense_1/kernel and mask 0 does not"),
        (
            lambda: mask_algebra.union(a, b, other_shape),
            "mask 2 has shape (12, 8) for Dense_0/kernel and mask 0 (12, 7)",
        ),
        (lambda: mask_algebra.overlap(a, other_shape), "masks of different shapes cannot be composed"),
        (lambda: mask_algebra.chance_overlap(), "no mask given"),
        (lambda: mask_algebra.overlap({"w": {"kernel": np.ones((2, 2))}}), "mask 0 holds float64 values for w/kernel"),
        (lambda: mask_algebra.compose("difference", a, b), "unknown mask operation 'difference'"),
        (lambda: mask_algebra.agreement({}, {}), "the masks cover no prunable layer"),
        (
            lambda: mask_algebra.paired(
                [
                    random_masks(np.random.default_rng(1), 1, (2,))[0],
                    random_masks(np.random.default_rng(2), 1, (3,))[0],
                ],
                [True, True],
            ),
            "masks stacking 2 and 3 networks cannot pair up",
        ),
    ]
    for call, fragment in cases:
        with pytest.raises(UserError) as error:
            call()
        assert fragment in one_sentence(error)


@pytest.fixture(scope="module")
def lottery_runs(tmp_path_factory):
    """Tiny finished lottery runs of 2 replicates: IMP (2 levels), learning-rate rewinding (1 level), and
    IMP of a wider model (1 level)."""
    root = tmp_path_factory.mktemp("mask_algebra")
    made = {"imp": {}, "lrr": {"lottery.levels": 1, "lottery.retrain": "lr_rewind"}}
    made["wide"] = {"lottery.levels": 1, "model.options.widths": (32, 24)}
    for name, changes in made.items():
        experiments.run(tiny_config("lottery", **TINY_LOTTERY, **changes), str(root / name))
    return {name: str(root / name) for name in made}


def test_results_compose_and_agreement_read_masks_of_runs_and_replicates(lottery_runs):
    imp, lrr = lottery_runs["imp"], lottery_runs["lrr"]
    mine, theirs = results.load(imp), results.load(lrr)
    seeds = [flat(mine.mask(2, replicate=r)) for r in (0, 1)]
    both = flat(results.compose([f"{imp}:replicate=0", f"{imp}:replicate=1"], level=2))
    either = flat(results.compose([mine, mine], level=2, op="union", replicate=1))
    for layer in seeds[0]:
        np.testing.assert_array_equal(both[layer], seeds[0][layer] & seeds[1][layer])
        np.testing.assert_array_equal(either[layer], seeds[1][layer])
    # Stacks pair replicate r with r; one chosen mask meets every replicate.
    paired = flat(results.compose([imp, f"{lrr}:level=1"], level=1, op="union"))
    broadcast = flat(results.compose([imp, f"{imp}:replicate=0"], level=2))
    stack_imp, stack_lrr = flat(mine.mask(1)), flat(theirs.mask(1))
    for layer in seeds[0]:
        np.testing.assert_array_equal(paired[layer], stack_imp[layer] | stack_lrr[layer])
        np.testing.assert_array_equal(broadcast[layer], flat(mine.mask(2))[layer] & seeds[0][layer][None])
    table = results.mask_agreement([f"{imp}:replicate=0", f"{imp}:replicate=1"], level=2)
    assert list(table["layer"]) == [*seeds[0], "all"]
    assert list(table.columns) == [
        "layer", "weights", "density_0", "density_1", "intersection", "union", "overlap", "chance"
    ]  # fmt: skip
    whole = table.set_index("layer").loc["all"]
    assert whole["overlap"] == pytest.approx(float(mask_algebra.overlap(*[mine.mask(2, replicate=r) for r in (0, 1)])))
    assert whole["density_0"] == pytest.approx(float(mask_lib.density(mine.mask(2, replicate=0))))
    assert whole["weights"] == sum(m.size for m in seeds[0].values())
    d = {k: np.array([seeds[0][k].mean(), seeds[1][k].mean()]) for k in seeds[0]}  # chance from the densities
    expected = sum(m.size * d[k].prod() for k, m in seeds[0].items()) / sum(
        m.size * (1 - (1 - d[k]).prod()) for k, m in seeds[0].items()
    )
    assert whole["chance"] == pytest.approx(expected, rel=1e-5) and 0 < whole["overlap"] < 1
    stacked = results.mask_agreement([imp, lrr], level=1)
    assert list(stacked["replicate"]) == [0] * 3 + [1] * 3
    with pytest.raises(UserError, match="takes a list of runs or workdirs"):
        results.compose(imp, level=1)
    with pytest.raises(UserError, match="cannot choose 'depth'"):
        results.compose([f"{imp}:depth=1"], level=1)
    with pytest.raises(UserError, match="level 2 of arm 'imp' is not finished"):
        results.compose([imp, lrr], level=2)
    with pytest.raises(UserError) as error:
        results.mask_agreement([imp, lottery_runs["wide"]], level=1)
    assert "masks of different shapes cannot be composed" in one_sentence(error)


def test_mask_source_trains_the_intersection_and_the_union_of_other_runs_masks(lottery_runs, tmp_path):
    imp, lrr = lottery_runs["imp"], lottery_runs["lrr"]
    mine = results.load(imp)
    config = tiny_config("lottery", **TINY_LOTTERY, **{"lottery.mask_source": f"{imp}:replicate=0 & {imp}:replicate=1"})
    experiments.run(config, str(tmp_path / "seeds_and"))
    run = results.load(str(tmp_path / "seeds_and"))
    assert run.levels() == [0, 1, 2]
    for level in (1, 2):
        expected = {
            k: v & flat(mine.mask(level, replicate=1))[k] for k, v in flat(mine.mask(level, replicate=0)).items()
        }
        got, trained = flat(run.mask(level)), flat(run.params(level))
        for layer, keep in expected.items():
            np.testing.assert_array_equal(got[layer], np.stack([keep, keep]))  # every replicate trains it
            assert not trained[layer][~got[layer]].any() and trained[layer][got[layer]].all()
    table = run.table
    chosen = table[table["metric"].str.startswith("source_replicate_")]
    assert sorted(set(zip(chosen["level"], chosen["replicate"], chosen["metric"], chosen["value"]))) == [
        (level, r, f"source_replicate_{i}", float(i)) for level in (0, 1, 2) for r in (0, 1) for i in (0, 1)
    ]
    # What level 2 of replicate 0 composed, per layer and over all (layer empty): each source's density,
    # their overlap and its chance value.
    rows = table[(table["level"] == 2) & (table["replicate"] == 0) & table["metric"].str.match("source_(d|o|c)")]
    got = {(m, layer): v for m, layer, v in zip(rows["metric"], rows["layer"].fillna("all"), rows["value"])}
    expected = {}
    for layer, entry in mask_algebra.agreement(*[mine.mask(2, replicate=r) for r in (0, 1)]).items():
        expected.update({(f"source_density_{i}", layer): float(entry["density"][i]) for i in (0, 1)})
        expected.update(
            {("source_overlap", layer): float(entry["overlap"]), ("source_chance", layer): float(entry["chance"])}
        )
    assert got == pytest.approx(expected)
    # The union of IMP's and learning-rate rewinding's masks, replicate r with r.
    config = tiny_config("lottery", **TINY_LOTTERY, **{"lottery.levels": 1, "lottery.mask_source": f"{imp} | {lrr}"})
    experiments.run(config, str(tmp_path / "imp_or_lrr"))
    union = flat(results.load(str(tmp_path / "imp_or_lrr")).mask(1))
    for layer, keep in flat(mine.mask(1)).items():
        np.testing.assert_array_equal(union[layer], keep | flat(results.load(lrr).mask(1))[layer])


def test_mask_source_compositions_that_cannot_be_trained_are_refused_in_one_sentence(lottery_runs, tmp_path):
    imp, lrr, wide = lottery_runs["imp"], lottery_runs["lrr"], lottery_runs["wide"]
    for spec, fragment in (
        (f"{imp} & {lrr} | {imp}", "mixes & and |"),
        (f"{imp} & ", "has an empty term"),
        (f"{imp} & {imp}", f"names {imp} twice"),
        (f"{imp} & {lrr}", "has finished levels [0, 1] of arm 'imp'; lottery.levels = 2"),
        (f"{imp} | {imp}:depth=3", "cannot choose 'depth'"),
    ):
        with pytest.raises(UserError) as error:
            tiny_config("lottery", **TINY_LOTTERY, **{"lottery.mask_source": spec})
        assert fragment in one_sentence(error)
    config = tiny_config("lottery", **TINY_LOTTERY, **{"lottery.levels": 1, "lottery.mask_source": f"{imp} & {wide}"})
    with pytest.raises(UserError) as error:
        experiments.run(config, str(tmp_path / "refused"))
    assert "the models differ" in one_sentence(error)
    assert not os.path.exists(tmp_path / "refused" / "config.json")
    proc = run_cli(
        "--config", f"{TINY}:lottery", "--workdir", str(tmp_path / "cli"), "--config.train.steps=1ep",
        f"--config.lottery.mask_source={imp} & {lrr} | {imp}",
    )  # fmt: skip
    assert_clear_error(proc, "mixes & and |")
