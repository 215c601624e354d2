"""A training segment's rows: a restarted or resumed segment forgets its own rows, and only its own."""

import csv

from jaxlth import records
from jaxlth.experiments.recorder import Recorder
from jaxlth.experiments.rows import Rows


class Context:
    def __init__(self, path):
        self.rows = Rows(path)

    def labelled(self, labels: dict) -> dict:
        return {"experiment": "early_prune", **labels}


def row(arm: str, level: int, replicate: int, step: int, split: str = "test") -> dict:
    return dict(experiment="early_prune", arm=arm, level=level, replicate=replicate, density=1.0, step=step,
                epoch=0, split=split, metric="accuracy", value=0.5)  # fmt: skip


def steps_left(path) -> list[tuple[str, str, str, int]]:
    with open(path) as f:
        return sorted((r["arm"], r["level"], r["replicate"], int(r["step"])) for r in csv.DictReader(f))


def written(tmp_path) -> tuple[Context, str]:
    """A table with a trunk's rows (steps 0-4) and two masks' rows of one stacked segment (steps 4-12)."""
    path = str(tmp_path / "results.csv")
    context = Context(path)
    rows = [row("trunk", 0, r, s) for r in (0, 1) for s in (0, 4)]
    rows += [
        row(arm, level, r, s) for arm, level in (("magnitude", 1), ("random", 2)) for r in (0, 1) for s in (4, 8, 12)
    ]
    rows += [row("magnitude", 1, 0, 12, split="pruned")]  # an analysis row: not the segment's
    context.rows.append(rows, records.CORE_COLUMNS)
    return context, path


# The stacked segment's labels say "pruned", level 1; each network's coordinates give its arm and level.
COORDINATES = [{"replicate": r, "arm": a, "level": lv} for a, lv in (("magnitude", 1), ("random", 2)) for r in (0, 1)]


def test_a_restarted_stack_whose_coordinates_give_arm_and_level_forgets_its_rows_and_keeps_the_trunks(tmp_path):
    context, path = written(tmp_path)
    Recorder(context, {"arm": "pruned", "level": 1}, COORDINATES, start=4).restart(4, 12, resumed=False)
    assert steps_left(path) == [("magnitude", "1", "0", 12)] + [("trunk", "0", r, s) for r in "01" for s in (0, 4)]


def test_a_resumed_stack_forgets_the_rows_after_its_checkpoint(tmp_path):
    context, path = written(tmp_path)
    Recorder(context, {"arm": "pruned", "level": 1}, COORDINATES, start=4).restart(8, 12, resumed=True)
    kept = steps_left(path)
    assert [k for k in kept if k[0] != "trunk" and k[3] == 12] == [("magnitude", "1", "0", 12)]  # the analysis row
    assert len([k for k in kept if k[0] != "trunk"]) == 2 * 2 * 2 + 1


def test_a_segment_without_coordinates_matches_by_its_labels(tmp_path):
    context, path = written(tmp_path)
    Recorder(context, {"arm": "random", "level": 2}, start=4).restart(4, 12, resumed=False)
    assert not [k for k in steps_left(path) if k[0] == "random"]
    assert len([k for k in steps_left(path) if k[0] == "magnitude"]) == 2 * 3 + 1
