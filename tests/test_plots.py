"""Tests for jaxlth.plots on a hand-built results table (no training)."""

import os

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from jaxlth import plots
from jaxlth.results import COLUMNS

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
        full = dict.fromkeys(COLUMNS, "")
        full.update(experiment="lottery", epoch=0.0, **kw)
        rows.append(full)

    for r in range(2):  # pretraining to the rewind step is not part of any level
        row(arm="pretrain", level=0, replicate=r, density=1.0, step=5, split="test", metric="accuracy", value=0.99)
    for arm in arms:
        for level in range(3):
            if arm != "imp" and level == 0:
                continue
            density = 0.8 ** level
            for r in range(2):
                # Written out of step order: final_metrics must pick the largest step, not the last row.
                for step in (STEPS[2], STEPS[0], STEPS[1]):
                    value = final_accuracy(arm, level, r) - (0.1 if step != STEPS[-1] else 0.0)
                    row(arm=arm, level=level, replicate=r, density=density, step=step, split="test",
                        metric="accuracy", value=value)
                    row(arm=arm, level=level, replicate=r, density=density, step=step, split="test",
                        metric="loss", value=1.0 - value)
                if with_masks and arm == "imp":
                    for i, layer in enumerate(LAYERS):
                        kept = 0.8 ** level if i < 2 else 1.0
                        row(arm="imp", level=level, replicate=r, density=density, step=0, split="mask",
                            metric="density", value=kept, layer=layer)
    return pd.DataFrame(rows, columns=list(COLUMNS))


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
        assert row.density == pytest.approx(0.8 ** row.level)
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
    empty = pd.DataFrame(columns=list(COLUMNS))
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
    assert plots.save_figures(pd.DataFrame(columns=list(COLUMNS)), str(tmp_path / "c")) == []
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
    empty = pd.DataFrame(columns=list(COLUMNS))
    with pytest.raises(ValueError, match="no test accuracy"):
        plots.accuracy_vs_weights(empty, ax=Figure().add_subplot())
    with pytest.raises(ValueError, match="no per-layer mask densities"):
        plots.layer_density(empty, ax=Figure().add_subplot())
