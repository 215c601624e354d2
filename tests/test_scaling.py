"""The pruning scaling law (Rosenfeld et al. 2021): the form, its fit to a sweep's table, bad tables."""

import json
import pathlib

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from jaxlth import results
from jaxlth.analysis import scaling, scaling_figure
from jaxlth.errors import UserError
from tests.conftest import ROOT

FIXTURE = pathlib.Path(ROOT, "tests", "fixtures", "v1", "lottery")

TRUTH = {"eps_up": 0.85, "gamma": 1.7, "p": 3e-5, "psi": 1.3, "phi": 0.0}
WIDTHS = {(19, 6): 0.21, (38, 12): 0.16, (75, 25): 0.13, (150, 50): 0.115}  # LeNet widths: dense error


def sweep_table(truth=TRUTH, widths=WIDTHS, levels=41, replicates=2) -> pd.DataFrame:
    """A ``results.load_many`` table of IMP runs, one per width, whose replicates' test errors are the
    form's ``ε̂`` ± a spread that cancels in their mean (with mask, loss and intermediate rows). Levels
    prune 40% each, from the low-error plateau (``ε̂(d = 1) = ε_np`` to 1e-11) to the high one."""
    rows = []
    for run, (width, eps_np) in enumerate(widths.items()):
        w, depth = np.mean(width), len(width)
        for level in range(levels):
            density = 0.6**level
            error = float(scaling.form(density, eps_np, w, depth, **truth))
            for r in range(replicates):
                spread = 0.01 * error * (r - (replicates - 1) / 2)
                common = {"run": f"runs/{run}", "experiment": "lottery", "arm": "imp", "level": level, "replicate": r}
                common |= {"density": density, "epoch": 2.0, "model.options.widths": width}
                rows += [
                    common | {"step": 936, "split": "test", "metric": "accuracy", "value": 1 - error + spread},
                    common | {"step": 468, "split": "test", "metric": "accuracy", "value": 0.5},  # not the last
                    common | {"step": 936, "split": "test", "metric": "loss", "value": 0.4},
                    common | {"step": 0, "split": "mask", "metric": "density", "value": density, "layer": "hidden_0"},
                ]
    return pd.DataFrame(rows)


def complex_form(d, eps_np, w, depth, eps_up, gamma, p, psi, phi):
    """The paper's form as written, with the complex modulus."""
    m = depth**phi * w**psi * d
    return eps_np * np.abs((m - 1j * p * (eps_up / eps_np) ** (1 / gamma)) / (m - 1j * p)) ** gamma


def test_the_form_is_the_complex_modulus_and_has_the_plateaus_and_the_power_law():
    rng = np.random.default_rng(0)
    d, eps_np, w = rng.uniform(1e-4, 1, 50), rng.uniform(0.05, 0.3, 50), rng.uniform(0.1, 4, 50)
    params = {"eps_up": 0.8, "gamma": 2.3, "p": 0.03, "psi": 0.7, "phi": 1.1}
    np.testing.assert_allclose(scaling.form(d, eps_np, w, 3, **params), complex_form(d, eps_np, w, 3, **params), 1e-12)
    scale = 3**1.1 * 2.0**0.7 / 0.03  # z = l^φ w^ψ d / p = scale · d
    plateaus = scaling.form(np.array([1.0, 1e-9]), 0.1, 2.0, 3, **params)  # z ≈ 181 ≫ a ≈ 2.5; z ≪ 1
    np.testing.assert_allclose(plateaus, [0.1, 0.8], rtol=1e-3)
    z = np.array([30.0, 90.0])  # 1 ≪ z ≪ a = (0.8 / 1e-8)^(1/2.3) ≈ 2,700: the power law ε↑ z^−γ
    between = scaling.form(z / scale, 1e-8, 2.0, 3, **params)
    np.testing.assert_allclose(between, 0.8 * z**-2.3, rtol=2e-3)


def test_the_fit_recovers_the_parameters_of_errors_drawn_from_the_form():
    table = sweep_table()
    residuals, jacobian = scaling._objective(scaling.points(table), 5)  # the optimiser's exact Jacobian
    x = np.array([np.log(0.7), np.log(1.3), np.log(2e-4), 1.1, 0.4])
    steps = 1e-6 * np.eye(5)
    central = np.stack([(residuals(x + h) - residuals(x - h)) / 2e-6 for h in steps], axis=1)
    np.testing.assert_allclose(jacobian(x), central, rtol=1e-6, atol=1e-8)
    law = scaling.fit(table)
    for name, value in TRUTH.items():
        assert getattr(law, name) == pytest.approx(value, rel=1e-6, abs=1e-9), name
    assert law.free == ("eps_up", "gamma", "p", "psi") and law.phi == 0.0  # one depth: φ is fixed
    assert len(law.points) == 4 * 41 and abs(law.mean) < 1e-9 and law.std < 1e-9
    np.testing.assert_allclose(law.points["error"], law.points["fitted"], rtol=1e-8)
    assert "μ=+0.00%" in str(law) and "phi=0 (fixed)" in str(law)

    # Deeper and shallower LeNets too: φ is fitted.
    truth = TRUTH | {"phi": -0.6}
    widths = {(38, 12): 0.16, (75, 25): 0.13, (75, 25, 25): 0.135, (150, 50, 50): 0.11}
    law = scaling.fit(sweep_table(truth, widths))
    assert "phi" in law.free
    for name, value in truth.items():
        assert getattr(law, name) == pytest.approx(value, rel=1e-6), name


def test_predict_is_the_fitted_form_and_extrapolates_to_a_held_out_width():
    table = sweep_table()
    law = scaling.fit(table, widths=[(19, 6), (38, 12), (75, 25)])
    assert set(law.points["label"]) == {(19, 6), (38, 12), (75, 25)}
    density = 0.6 ** np.arange(41)
    predicted = law.predict(density, 0.115, (150, 50))
    np.testing.assert_array_equal(predicted, scaling.form(density, 0.115, 100.0, 2, **law.parameters))
    np.testing.assert_allclose(predicted, scaling.form(density, 0.115, 100.0, 2, **TRUTH), rtol=1e-6)
    held_out = law.deviations(table, widths=[(150, 50)])
    assert not held_out["in_fit"].any() and len(held_out) == 41
    assert np.abs(held_out["delta"]).max() < 1e-6
    assert law.deviations(table)["in_fit"].sum() == 3 * 41


def test_points_read_the_last_test_accuracy_of_each_level_of_saved_lottery_runs(tmp_path):
    # A saved lottery run (tests/fixtures/v1: LeNet (16, 8), 2 levels, 2 replicates, branches) and a copy
    # called (32, 16) whose test errors are halved.
    for name, widths in (("a", [16, 8]), ("b", [32, 16])):
        (tmp_path / name).mkdir()
        config = json.loads((FIXTURE / "config.json").read_text())
        config["model"]["options"]["widths"] = widths
        (tmp_path / name / "config.json").write_text(json.dumps(config))
        rows = pd.read_csv(FIXTURE / "results.csv")
        accuracy = rows["metric"] == "accuracy"
        rows.loc[accuracy, "value"] = 1 - (1 - rows.loc[accuracy, "value"]) * (0.5 if name == "b" else 1.0)
        rows.to_csv(tmp_path / name / "results.csv", index=False)
    table = results.load_many(str(tmp_path / "*"))

    measured = scaling.points(table)
    assert list(measured["label"]) == [(16, 8)] * 3 + [(32, 16)] * 3
    assert list(measured["width"]) == [12.0] * 3 + [24.0] * 3 and set(measured["depth"]) == {2.0}
    rows = table[(table["run"] == str(tmp_path / "a")) & (table["arm"] == "imp") & (table["metric"] == "accuracy")]
    rows = rows[rows["split"] == "test"]
    last = rows[rows["step"] == rows.groupby(["level", "replicate"])["step"].transform("max")]
    assert len(last) == 3 * 2  # the last evaluation of each level and replicate
    error = (1 - last.groupby("level")["value"].mean()).to_numpy()
    np.testing.assert_allclose(measured["error"], np.concatenate([error, 0.5 * error]), rtol=1e-12)
    np.testing.assert_allclose(measured["density"], np.tile(0.8 ** np.arange(3), 2), rtol=0.02)
    assert list(measured["eps_np"]) == [error[0]] * 3 + [0.5 * error[0]] * 3
    assert list(measured["replicates"]) == [2] * 6

    law = scaling.fit(table)  # degenerate (γ → ∞, ε↑ → 0 fit as well): ends on the bounds, finite
    assert 0 < law.eps_up <= 1 and 0 < law.gamma <= scaling.MAX_GAMMA
    assert np.isfinite(law.points["delta"]).all() and law.mean == pytest.approx(law.points["delta"].mean())
    figure = Figure()
    ax = scaling_figure.draw(law, table, ax=figure.add_subplot())
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert len(ax.containers) == 2 and len(ax.lines) == 2 + 2  # per width: measured (mean ± std), fitted curve
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["(16, 8)", "(32, 16)"]


def test_bad_tables_are_refused_in_one_sentence():
    table = sweep_table()
    one = table[table["model.options.widths"] == (38, 12)]
    with pytest.raises(UserError, match=r"at least two widths, the points hold one: \(38, 12\)"):
        scaling.fit(one)
    with pytest.raises(UserError, match=r"width \(38, 12\) has no dense level \(level 0\)"):
        scaling.fit(table[(table["level"] > 0) | (table["model.options.widths"] != (38, 12))])
    train = table.assign(experiment="train", arm="main")
    with pytest.raises(UserError, match="no final test accuracy of arm 'imp'"):
        scaling.fit(train)
    with pytest.raises(UserError, match="no column 'model.options.width'"):
        scaling.fit(table, width="model.options.width")
    with pytest.raises(UserError, match=r"no points of width \(300, 100\)"):
        scaling.fit(table, widths=[(38, 12), (300, 100)])
    with pytest.raises(UserError, match="4 points cannot fit 4 parameters"):
        scaling.fit(sweep_table(levels=1))
    two_fractions = table.assign(prune_fraction=np.where(table["replicate"] == 0, 0.2, 0.4))
    with pytest.raises(UserError, match="run runs/0 prunes 2 fractions per level; fit the rows of one"):
        scaling.fit(two_fractions)
    perfect = table.assign(value=lambda t: t["value"].where(t["level"] != 3, 1.0))
    with pytest.raises(UserError, match="a measured error of 0 leaves the relative deviation δ undefined"):
        scaling.fit(perfect)
