"""Tests for jaxlth.plots on a hand-built results table (no training)."""

import os

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from jaxlth import plots
from jaxlth.experiments.instability.arms import BETWEEN_LEVELS, COPIES, PERTURB
from jaxlth.experiments.one_shot.arms import ARMS as ONE_SHOT_ARMS
from jaxlth.experiments.one_shot.arms import DENSE, ONE_SHOT
from jaxlth.legend import MAIN

# The columns results.csv holds: the core ones, then those each experiment declares.
CORE_COLUMNS = ("experiment", "arm", "level", "replicate", "density", "step", "epoch", "split", "metric", "value")
LOTTERY_COLUMNS = CORE_COLUMNS + ("layer",)
INSTABILITY_COLUMNS = CORE_COLUMNS + ("spawn_step", "pair", "alpha", "noise_scale")
ONE_SHOT_COLUMNS = CORE_COLUMNS + ("target_density", "layer")

LAYERS = ("hidden_0/kernel", "hidden_1/kernel", "output/kernel")
STEPS = (10, 20, 30)  # the final step is 30


def final_accuracy(arm: str, level: int, replicate: int) -> float:
    """The final test accuracy (fraction) the synthetic run reports."""
    base = 0.90 if arm == "imp" else 0.80
    return base - 0.01 * level + 0.02 * replicate


def make_table(with_masks: bool = True, arms=("imp", "random_prune")) -> pd.DataFrame:
    """2 arms x 3 levels x 2 replicates, several steps, per-layer mask rows for IMP, as results.csv holds."""
    rows = []

    def row(**kw):
        full = dict.fromkeys(LOTTERY_COLUMNS, "")
        full.update(experiment="lottery", epoch=0.0, **kw)
        rows.append(full)

    for r in range(2):  # pretraining to the rewind step is not part of any level
        row(arm="pretrain", level=0, replicate=r, density=1.0, step=5, split="test", metric="accuracy", value=0.99)
    for arm in arms:
        for level in range(3):
            if arm != "imp" and level == 0:
                continue
            density = 0.8**level
            for r in range(2):
                # Written out of step order: final_metrics must pick the largest step, not the last row.
                for step in (STEPS[2], STEPS[0], STEPS[1]):
                    value = final_accuracy(arm, level, r) - (0.1 if step != STEPS[-1] else 0.0)
                    row(
                        arm=arm,
                        level=level,
                        replicate=r,
                        density=density,
                        step=step,
                        split="test",
                        metric="accuracy",
                        value=value,
                    )
                    row(
                        arm=arm,
                        level=level,
                        replicate=r,
                        density=density,
                        step=step,
                        split="test",
                        metric="loss",
                        value=1.0 - value,
                    )
                if with_masks and arm == "imp":
                    for i, layer in enumerate(LAYERS):
                        kept = 0.8**level if i < 2 else 1.0
                        row(
                            arm="imp",
                            level=level,
                            replicate=r,
                            density=density,
                            step=0,
                            split="mask",
                            metric="density",
                            value=kept,
                            layer=layer,
                        )
    return pd.DataFrame(rows, columns=list(LOTTERY_COLUMNS))


def roundtrip(table: pd.DataFrame, tmp_path) -> pd.DataFrame:
    """The table as ``Run.table`` returns it: written to and read back from CSV."""
    path = tmp_path / "results.csv"
    table.to_csv(path, index=False)
    return pd.read_csv(path)


@pytest.fixture
def table(tmp_path):
    return roundtrip(make_table(), tmp_path)


def test_final_metrics_picks_the_last_step(table):
    final = plots.final_metrics(table)
    assert list(final.columns[:5]) == ["arm", "level", "replicate", "density", "value"]
    assert len(final) == 3 * 2 + 2 * 2  # imp: 3 levels; random_prune: levels 1, 2; 2 replicates
    assert set(final["step"]) == {STEPS[-1]}
    assert "pretrain" not in set(final["arm"])
    assert list(final["arm"].unique()) == ["imp", "random_prune"]
    for row in final.itertuples():
        assert row.value == pytest.approx(final_accuracy(row.arm, row.level, row.replicate))
        assert row.density == pytest.approx(0.8**row.level)
    loss = plots.final_metrics(table, metric="loss")
    assert loss["value"].to_numpy() == pytest.approx(1.0 - final["value"].to_numpy())


def test_summary_numbers(table):
    stats = plots.summary(table)
    assert len(stats) == 5
    imp1 = stats[(stats["arm"] == "imp") & (stats["level"] == 1)].iloc[0]
    values = [final_accuracy("imp", 1, r) for r in range(2)]
    assert imp1["mean"] == pytest.approx(np.mean(values))
    assert imp1["std"] == pytest.approx(np.std(values, ddof=1))
    assert imp1["n"] == 2
    assert imp1["percent_remaining"] == pytest.approx(80.0)
    assert imp1["density"] == pytest.approx(0.8)
    rp2 = stats[(stats["arm"] == "random_prune") & (stats["level"] == 2)].iloc[0]
    assert rp2["percent_remaining"] == pytest.approx(64.0)
    assert rp2["mean"] == pytest.approx(np.mean([final_accuracy("random_prune", 2, r) for r in range(2)]))


def test_summary_of_empty_table_is_empty():
    empty = pd.DataFrame(columns=list(LOTTERY_COLUMNS))
    assert plots.summary(empty).empty
    assert plots.final_metrics(empty).empty
    assert "no final test accuracy" in plots.format_summary(empty)


def test_format_summary_contains_the_numbers(table):
    text = plots.format_summary(table)
    lines = text.splitlines()
    assert len(lines) == 1 + 1 + 3  # title, header, levels 0..2
    assert "imp" in lines[1] and "random_prune" in lines[1] and "% weights" in lines[1]
    # imp level 1: 89% and 91% -> 90.00 ± 1.41; random prune level 2: 78%, 80% -> 79.00 ± 1.41.
    level1, level2 = lines[3], lines[4]
    assert "80.00" in level1 and "90.00 ± 1.41" in level1
    assert "64.00" in level2 and "79.00 ± 1.41" in level2
    assert lines[2].split()[:2] == ["0", "100.00"] and lines[2].rstrip().endswith("-")


def test_accuracy_vs_weights_uses_reversed_log_axis(table):
    ax = plots.accuracy_vs_weights(table, ax=Figure().add_subplot())
    assert ax.get_xscale() == "log"
    assert ax.xaxis_inverted()
    left, right = ax.get_xlim()
    assert left > 100 > 64 > right
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0].startswith("dense") and labels[1] == "IMP" and "random pruning" in labels
    imp_line = next(line for line in ax.get_lines() if line.get_label() == "IMP")
    assert imp_line.get_ydata() == pytest.approx([91.0, 90.0, 89.0])  # percent, mean over replicates


def test_layer_density_one_line_per_layer(table):
    ax = plots.layer_density(table, ax=Figure().add_subplot())
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["hidden_0", "hidden_1", "output", "all prunable"]
    assert ax.get_lines()[0].get_ydata() == pytest.approx([100.0, 80.0, 64.0])
    assert ax.get_yscale() == "log"


def _check_png(path):
    assert os.path.getsize(path) > 1000
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_save_figures_writes_pngs(table, tmp_path):
    directory = tmp_path / "plots" / "nested"
    paths = plots.save_figures(table, str(directory))
    assert [os.path.basename(p) for p in paths] == ["accuracy_vs_weights.png", "layer_density.png"]
    for path in paths:
        _check_png(path)


def test_save_figures_skips_missing_rows(tmp_path):
    no_masks = roundtrip(make_table(with_masks=False, arms=("imp",)), tmp_path)
    paths = plots.save_figures(no_masks, str(tmp_path / "a"))
    assert [os.path.basename(p) for p in paths] == ["accuracy_vs_weights.png"]
    _check_png(paths[0])
    no_layer_column = no_masks.drop(columns="layer")
    assert len(plots.save_figures(no_layer_column, str(tmp_path / "b"))) == 1
    assert plots.save_figures(pd.DataFrame(columns=list(LOTTERY_COLUMNS)), str(tmp_path / "c")) == []
    assert os.path.isdir(tmp_path / "c")


def test_without_ax_draws_on_a_new_pyplot_figure(table):
    import matplotlib.pyplot as plt

    for draw in (plots.accuracy_vs_weights, plots.layer_density):
        ax = draw(table)
        try:
            assert ax.get_lines()
        finally:
            plt.close(ax.figure)


def test_missing_rows_raise_a_clear_error():
    empty = pd.DataFrame(columns=list(LOTTERY_COLUMNS))
    with pytest.raises(ValueError, match="no test accuracy"):
        plots.accuracy_vs_weights(empty, ax=Figure().add_subplot())
    with pytest.raises(ValueError, match="no per-layer mask densities"):
        plots.layer_density(empty, ax=Figure().add_subplot())


# ----- instability --------------------------------------------------------------------------------
SCALES = (0.1, 0.01, 1.0)  # written out of order: tables sort them numerically
ALPHAS = (0.0, 0.5, 1.0)


def make_instability_table(perturb_layout: str = "noise_scale") -> pd.DataFrame:
    """Copies (spawn steps 0, 10), successive levels (1, 2) and perturbations, 2 replicates, test split.

    ``perturb_layout``: ``"noise_scale"`` (the scale in ``noise_scale``, ``pair`` empty), ``"pair"``
    (the scale in ``pair``, no ``noise_scale`` column: tables of older releases) or ``"nan"`` (the
    scale in ``pair`` and an empty ``noise_scale`` column).
    """
    rows = []

    def row(**kw):
        full = dict.fromkeys(INSTABILITY_COLUMNS, "")
        full.update(experiment="instability", step=100, epoch=1.0, split="test", **kw)
        rows.append(full)

    def path(base, r, **kw):
        """The two barriers of replicate ``r`` (frankle ``base + 0.02 r``, paul half of it) and a curve."""
        value = base + 0.02 * r
        row(replicate=r, metric="barrier_frankle", value=value, **kw)
        row(replicate=r, metric="barrier_paul", value=value / 2, **kw)
        for alpha in ALPHAS:
            row(replicate=r, metric="error", value=0.1 + value * (alpha == 0.5), alpha=alpha, **kw)

    for k, base in ((0, 0.05), (10, 0.01)):
        for r in range(2):
            path(base, r, arm="copies", level=0, density=1.0, spawn_step=k, pair="0-1")
    for level, base in ((1, 0.02), (2, 0.10)):
        for r in range(2):
            path(
                base,
                r,
                arm="between_levels",
                level=level,
                density=0.8**level,
                spawn_step=3,
                pair=f"{level - 1}-{level}",
            )
            row(
                arm="between_levels",
                level=level,
                replicate=r,
                density=0.8**level,
                spawn_step=3,
                pair=f"{level - 1}-{level}",
                metric="matching",
                value=float(level == 1 or r == 0),
            )
    for scale in SCALES:
        for r in range(2):
            where = dict(noise_scale=scale) if perturb_layout == "noise_scale" else dict(pair=f"{scale:g}")
            path(0.1 * scale, r, arm="perturb", level=0, density=1.0, spawn_step=3, **where)
    table = pd.DataFrame(rows, columns=list(INSTABILITY_COLUMNS))
    return table.drop(columns="noise_scale") if perturb_layout == "pair" else table


EXPECTED_BARRIERS = """\
instability: error barrier between copies (%)
spawn step      test frankle         test paul
         0       6.00 ± 1.41       3.00 ± 0.71
        10       2.00 ± 1.41       1.00 ± 0.71

barrier between successive IMP levels (%)
     level      test frankle         test paul  matching
         1       3.00 ± 1.41       1.50 ± 0.71  100%
         2      11.00 ± 1.41       5.50 ± 0.71  50%

barrier to the unperturbed network, by noise scale (%)
     scale      test frankle         test paul
      0.01       1.10 ± 1.41       0.55 ± 0.71
       0.1       2.00 ± 1.41       1.00 ± 0.71
         1      11.00 ± 1.41       5.50 ± 0.71"""


def _errorbar_line(ax, label: str):
    """The data line of the errorbar plot labelled ``label``."""
    return next(c for c in ax.containers if c.get_label() == label).lines[0]


@pytest.fixture
def instability_table(tmp_path):
    return roundtrip(make_instability_table(), tmp_path)


def test_perturb_barriers_are_keyed_by_noise_scale(instability_table):
    frame = plots.barriers(instability_table, PERTURB)
    assert "noise_scale" in frame.columns and "pair" not in frame.columns
    frankle = frame[frame["metric"] == "barrier_frankle"].sort_values("noise_scale")
    assert frankle["noise_scale"].tolist() == pytest.approx([0.01, 0.1, 1.0])
    assert frankle["mean"].tolist() == pytest.approx([0.011, 0.02, 0.11])
    assert frankle["std"].tolist() == pytest.approx([0.02 / np.sqrt(2)] * 3)
    assert frankle["n"].tolist() == [2, 2, 2]
    ax = plots.barrier_vs_perturbation(instability_table, ax=Figure().add_subplot())
    line = _errorbar_line(ax, "test error")
    assert np.asarray(line.get_xdata(), float) == pytest.approx([0.01, 0.1, 1.0])
    assert np.asarray(line.get_ydata(), float) == pytest.approx([1.1, 2.0, 11.0])
    assert ax.get_xscale() == "log"


def test_barriers_of_the_other_arms_keep_their_pair_column(instability_table):
    copies = plots.barriers(instability_table, COPIES)
    assert list(copies.columns) == ["level", "spawn_step", "pair", "split", "metric", "mean", "std", "n"]
    assert set(copies["pair"]) == {"all"}
    frankle = copies[copies["metric"] == "barrier_frankle"].sort_values("spawn_step")
    assert frankle["spawn_step"].tolist() == [0, 10]
    assert frankle["mean"].tolist() == pytest.approx([0.06, 0.02])
    levels = plots.barriers(instability_table, BETWEEN_LEVELS)
    assert sorted(set(levels["pair"])) == ["0-1", "1-2"]


def test_format_barriers_text(instability_table):
    assert plots.format_barriers(instability_table) == EXPECTED_BARRIERS


@pytest.mark.parametrize("layout", ["pair", "nan"])
def test_perturb_barriers_fall_back_to_pair(layout, tmp_path, instability_table):
    old = roundtrip(make_instability_table(layout), tmp_path)
    assert ("noise_scale" in old.columns) == (layout == "nan")
    assert plots.format_barriers(old) == EXPECTED_BARRIERS
    pd.testing.assert_frame_equal(plots.barriers(old, PERTURB), plots.barriers(instability_table, PERTURB))
    ax = plots.barrier_vs_perturbation(old, ax=Figure().add_subplot())
    line = _errorbar_line(ax, "test error")
    assert np.asarray(line.get_xdata(), float) == pytest.approx([0.01, 0.1, 1.0])


@pytest.mark.parametrize("layout", ["noise_scale", "pair"])
def test_interpolation_curves_one_line_per_spawn_step_or_scale(layout, tmp_path):
    table = roundtrip(make_instability_table(layout), tmp_path)
    ax = plots.interpolation_curves(table, ax=Figure().add_subplot())
    assert [line.get_label() for line in ax.get_lines()] == ["k = 0", "k = 10"]
    assert ax.get_lines()[0].get_ydata() == pytest.approx([10.0, 16.0, 10.0])  # 0.1 + mean barrier 0.06
    ax = plots.interpolation_curves(table, ax=Figure().add_subplot(), arm=PERTURB)
    assert [line.get_label() for line in ax.get_lines()] == ["0.01", "0.1", "1"]
    assert ax.get_lines()[2].get_ydata() == pytest.approx([10.0, 21.0, 10.0])


def test_barrier_between_levels_lines(instability_table):
    ax = plots.barrier_between_levels(instability_table, ax=Figure().add_subplot())
    barrier = ax.get_lines()[0]
    assert np.asarray(barrier.get_xdata(), float) == pytest.approx([80.0, 64.0])
    assert np.asarray(barrier.get_ydata(), float) == pytest.approx([3.0, 11.0])


def test_save_instability_figures(instability_table, tmp_path):
    paths = plots.save_instability_figures(instability_table, str(tmp_path / "plots"))
    assert [os.path.basename(p) for p in paths] == [
        plots.BARRIER_FIGURE,
        plots.CURVES_FIGURE,
        plots.LEVELS_FIGURE,
        plots.PERTURB_FIGURE,
    ]
    for path in paths:
        _check_png(path)
    only_copies = instability_table[instability_table["arm"] == COPIES]
    paths = plots.save_instability_figures(only_copies, str(tmp_path / "copies"))
    assert [os.path.basename(p) for p in paths] == [plots.BARRIER_FIGURE, plots.CURVES_FIGURE]


# ----- tables without the optional columns --------------------------------------------------------
def test_tables_without_optional_columns(tmp_path):
    lottery = roundtrip(make_table(with_masks=False), tmp_path)
    core = lottery[list(CORE_COLUMNS)]
    pd.testing.assert_frame_equal(plots.summary(core), plots.summary(lottery))
    assert plots.final_metrics(core)["value"].tolist() == pytest.approx(plots.final_metrics(lottery)["value"].tolist())
    assert plots.format_summary(core) == plots.format_summary(lottery)
    paths = plots.save_figures(core, str(tmp_path / "plots"))
    assert [os.path.basename(p) for p in paths] == [plots.ACCURACY_FIGURE]
    with pytest.raises(ValueError, match="no per-layer mask densities"):
        plots.layer_density(core, ax=Figure().add_subplot())

    instability = make_instability_table()[list(CORE_COLUMNS)]  # no spawn_step, pair, alpha, noise_scale
    copies = plots.barriers(instability, COPIES)
    frankle = copies[copies["metric"] == "barrier_frankle"]
    assert len(frankle) == 1 and frankle["spawn_step"].isna().all() and frankle["pair"].tolist() == ["all"]
    assert frankle["mean"].iloc[0] == pytest.approx(0.04) and frankle["n"].iloc[0] == 4  # both spawn steps pooled
    perturb = plots.barriers(instability, PERTURB)
    assert perturb["noise_scale"].isna().all() and set(perturb["n"]) == {6}
    assert plots.format_barriers(instability).startswith("instability: error barrier between copies (%)")
    for arm in (COPIES, PERTURB, BETWEEN_LEVELS):
        with pytest.raises(ValueError, match="no test interpolation curves"):
            plots.interpolation_curves(instability, ax=Figure().add_subplot(), arm=arm)
    # An instability table as its experiment writes it: no layer column; its test errors are no accuracies.
    assert plots.summary(make_instability_table()).empty


# ----- one-shot -----------------------------------------------------------------------------------
TARGETS = (0.5, 0.2, 0.1)


def make_one_shot_table(dense_arm: str = DENSE) -> pd.DataFrame:
    """The dense network (level 0) and one-shot pruning to each target (levels 1..3), 2 replicates."""
    rows = []

    def row(**kw):
        full = dict.fromkeys(ONE_SHOT_COLUMNS, "")
        full.update(experiment="one_shot", epoch=1.0, **kw)
        rows.append(full)

    for r in range(2):
        for step, value in ((100, 0.95 + 0.01 * r), (50, 0.5)):
            row(
                arm=dense_arm,
                level=0,
                replicate=r,
                density=1.0,
                step=step,
                split="test",
                metric="accuracy",
                value=value,
            )
        for level, target in enumerate(TARGETS, start=1):
            density = target + 0.001  # the density reached differs slightly from the target
            row(
                arm=ONE_SHOT,
                level=level,
                replicate=r,
                density=density,
                step=100,
                split="test",
                metric="accuracy",
                value=0.95 - 0.02 * level + 0.01 * r,
                target_density=target,
            )
            row(
                arm=ONE_SHOT,
                level=level,
                replicate=r,
                density=density,
                step=0,
                split="mask",
                metric="density",
                value=target,
                target_density=target,
                layer="dense_0/kernel",
            )
    return pd.DataFrame(rows, columns=list(ONE_SHOT_COLUMNS))


@pytest.fixture
def one_shot_table(tmp_path):
    return roundtrip(make_one_shot_table(), tmp_path)


def test_one_shot_summary(one_shot_table):
    stats = plots.summary(one_shot_table)
    assert list(zip(stats["arm"], stats["level"])) == [("one_shot", 1), ("one_shot", 2), ("one_shot", 3), ("dense", 0)]
    assert stats["mean"].tolist() == pytest.approx([0.935, 0.915, 0.895, 0.955])
    assert stats["percent_remaining"].tolist() == pytest.approx([50.1, 20.1, 10.1, 100.0])
    lines = plots.format_summary(one_shot_table).splitlines()
    assert lines[1].split() == ["level", "%", "weights", "one_shot", "dense"]
    assert [line.split()[1] for line in lines[2:]] == ["100.00", "50.10", "20.10", "10.10"]  # one-shot's density


def test_format_one_shot_one_row_per_target(one_shot_table):
    lines = plots.format_one_shot(one_shot_table).splitlines()
    assert lines[0] == (
        "one-shot magnitude pruning: final test accuracy (%), mean ± std over replicates; dense 95.50 ± 0.71"
    )
    assert lines[1].split() == ["target", "%", "%", "weights", "accuracy", "vs", "dense"]
    assert lines[2:] == [
        "   50.00      50.10  93.50 ± 0.71     -2.00",
        "   20.00      20.10  91.50 ± 0.71     -4.00",
        "   10.00      10.10  89.50 ± 0.71     -6.00",
    ]
    assert len({len(line) for line in lines[1:]}) == 1  # aligned columns
    no_target = one_shot_table.drop(columns="target_density")
    assert [line.split()[0] for line in plots.format_one_shot(no_target).splitlines()[2:]] == ["-", "-", "-"]
    no_dense = one_shot_table[one_shot_table["arm"] == ONE_SHOT]
    assert "dense 9" not in plots.format_one_shot(no_dense)
    assert plots.format_one_shot(no_dense).splitlines()[2].endswith("-")
    assert "no final test accuracy" in plots.format_one_shot(one_shot_table[one_shot_table["arm"] == DENSE])


@pytest.mark.parametrize("dense_arm", [DENSE, MAIN])
def test_one_shot_figure_has_the_dense_band(dense_arm, tmp_path):
    table = roundtrip(make_one_shot_table(dense_arm), tmp_path)
    ax = plots.accuracy_vs_weights(table, ax=Figure().add_subplot())
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["dense (95.50 ± 0.71)", ONE_SHOT_ARMS.label(ONE_SHOT)]  # the band's arm is no line
    band, one_shot = ax.get_lines()
    assert band.get_ydata() == pytest.approx([95.5, 95.5])
    assert one_shot.get_xdata() == pytest.approx([50.1, 20.1, 10.1])
    assert one_shot.get_ydata() == pytest.approx([93.5, 91.5, 89.5])
    assert one_shot.get_linewidth() == pytest.approx(2.2)  # drawn as the main arm


def test_save_one_shot_figures(one_shot_table, tmp_path):
    paths = plots.save_one_shot_figures(one_shot_table, str(tmp_path / "plots"))
    assert [os.path.basename(p) for p in paths] == [plots.ONE_SHOT_FIGURE] == ["accuracy_vs_weights.png"]
    _check_png(paths[0])
    assert os.path.getsize(paths[0]) > 10_000
    dense_only = one_shot_table[one_shot_table["arm"] == DENSE]
    assert plots.save_one_shot_figures(dense_only, str(tmp_path / "empty")) == []
    assert os.path.isdir(tmp_path / "empty")


def test_imp_is_the_dense_band_before_a_dense_arm(tmp_path):
    table = make_table()
    extra = table[(table["arm"] == "imp") & (table["level"] == 0)].assign(arm=DENSE, value=0.5)
    table = roundtrip(pd.concat([table, extra], ignore_index=True), tmp_path)
    ax = plots.accuracy_vs_weights(table, ax=Figure().add_subplot())
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert "dense (91.00 ± 1.41)" in lines  # IMP's level 0
    assert lines["dense"].get_ydata() == pytest.approx([50.0])  # the dense arm is then a line of its own
    assert plots.format_summary(table).splitlines()[3].split()[1] == "80.00"  # IMP's % weights
