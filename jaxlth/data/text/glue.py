"""The GLUE tasks (Wang et al. 2018) as Hugging Face's ``nyu-mll/glue`` holds them: columns, labels, metrics, splits.

GLUE's test labels are hidden, so the dev ("validation") split is the evaluation split, as in Chen et al.
2020 (BERT tickets) and every fine-tuning recipe: the ``Dataset``'s ``test`` split is GLUE's validation
split, and MNLI's mismatched validation split is its extra test split ``test_mismatched``.

Metrics, main one first: accuracy for SST-2, QNLI, RTE, WNLI and MNLI; accuracy then F1 for MRPC and
QQP (GLUE reports both; Chen et al. 2020's Table 2 gives accuracy for these two, so it comes first);
Matthews correlation for CoLA; Pearson then Spearman correlation for STS-B (a regression on 0..5).
"""

from __future__ import annotations

import dataclasses

HUB_REPO = "nyu-mll/glue"  # the Hugging Face dataset repository (and `datasets.load_dataset` name)
DOWNLOAD = f"hf download {HUB_REPO} --repo-type dataset --local-dir DIR"  # DIR/<task>/<split>-*.parquet


@dataclasses.dataclass(frozen=True)
class Task:
    """One GLUE task.

    Attributes:
      title: the task's name as GLUE writes it.
      columns: the text columns, one (single sentences) or two (pairs, in order).
      num_labels: classes; 1 for a regression (STS-B).
      objective: ``classify`` or ``regress``.
      metrics: metric names (``jaxlth.training.metrics``), main one first.
      splits: ``{Dataset split: Hugging Face split}``; ``train`` and ``test`` always, more for MNLI.
    """

    title: str
    columns: tuple[str, ...]
    num_labels: int
    objective: str
    metrics: tuple[str, ...]
    splits: tuple[tuple[str, str], ...] = (("train", "train"), ("test", "validation"))

    @property
    def extra_tests(self) -> tuple[str, ...]:
        """The evaluation splits beside ``test`` (``test_mismatched`` for MNLI)."""
        return tuple(ours for ours, _ in self.splits if ours not in ("train", "test"))


_PAIR = ("sentence1", "sentence2")
TASKS = {
    "sst2": Task("SST-2", ("sentence",), 2, "classify", ("accuracy",)),
    "mrpc": Task("MRPC", _PAIR, 2, "classify", ("accuracy", "f1")),
    "qqp": Task("QQP", ("question1", "question2"), 2, "classify", ("accuracy", "f1")),
    "stsb": Task("STS-B", _PAIR, 1, "regress", ("pearson", "spearman")),
    "cola": Task("CoLA", ("sentence",), 2, "classify", ("mcc",)),
    "mnli": Task(
        "MNLI",
        ("premise", "hypothesis"),
        3,
        "classify",
        ("accuracy",),
        (("train", "train"), ("test", "validation_matched"), ("test_mismatched", "validation_mismatched")),
    ),
    "qnli": Task("QNLI", ("question", "sentence"), 2, "classify", ("accuracy",)),
    "rte": Task("RTE", _PAIR, 2, "classify", ("accuracy",)),
    "wnli": Task("WNLI", _PAIR, 2, "classify", ("accuracy",)),
}
LABEL = "label"  # the label column of every task
