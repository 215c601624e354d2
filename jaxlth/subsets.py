"""Per-example scores on disk, and the training subsets they choose.

The scores experiment saves, per scoring step ``s`` (in iterations), the artifact
``scores/step_SSSSSSS`` = ``{"el2n": (R, N), "grand": (R, N), "step": s, "steps_per_epoch": E}``
(each replicate's scores of the ``N`` training examples) and, when it tracks forgetting,
``scores/forgetting`` = the training histories (:mod:`jaxlth.training.history`, each ``(R, N)``).
:func:`load` reads them back; :func:`indices` turns a subset spec
(:mod:`jaxlth.data.selection`) into the indices it keeps, after checking that the scores were
computed on the same training set; :func:`apply` cuts a dataset to ``data.subset``.
"""

from __future__ import annotations

import json
import os

import numpy as np

from jaxlth import checkpoint, storage
from jaxlth import steps as step_specs
from jaxlth.data import default_config as default_data_config
from jaxlth.data import selection
from jaxlth.data.dataset import Dataset
from jaxlth.errors import UserError
from jaxlth.layout import CONFIG_FILE, FORGETTING, SCORES, Layout, scores_name

STEP_KINDS = ("el2n", "grand")  # taken at chosen steps; forgetting comes from the whole training
SCORE_KINDS = (*STEP_KINDS, "forgetting")  # what the scores experiment computes and subsets rank by
KINDS = (*SCORE_KINDS, "never_learned")  # what load() returns
# data fields that say where the data is found, not what it is
LOCATION_FIELDS = ("dir", "source", "tfds_data_dir", "download")


def _config(workdir: str, field: str) -> dict:
    path = os.path.join(workdir, CONFIG_FILE)
    if not storage.exists(path):
        raise UserError(f"{field} {workdir} holds no jaxlth run (no {CONFIG_FILE})")
    config = json.loads(storage.read_text(path))
    if config.get("experiment") != "scores":
        raise UserError(f"{field} {workdir} holds a {config.get('experiment')!r} run, not a scores run")
    return config


def steps(workdir: str) -> list[int]:
    """The steps (iterations) at which a scores run saved EL2N and GraNd."""
    base = Layout(workdir).artifact(SCORES)
    if not storage.isdir(base):
        return []
    found = [int(name[len("step_") :]) for name in storage.listdir(base) if name.startswith("step_")]
    return sorted(s for s in found if checkpoint.artifact_exists(Layout(workdir).artifact(scores_name(s))))


def has_forgetting(workdir: str) -> bool:
    """Whether a scores run has saved its forgetting counters (at the end of its training)."""
    return checkpoint.artifact_exists(Layout(workdir).artifact(FORGETTING))


def resolve_step(workdir: str, step: str | int | None, field: str = "score_step") -> int:
    """A scoring step of the run (``None``/``""``: the last; a step spec like ``"20ep"``; iterations)."""
    saved = steps(workdir)
    if not saved:
        raise UserError(f"{workdir} has no saved EL2N/GraNd scores yet")
    if step is None or step == "":
        return saved[-1]
    per_epoch = int(checkpoint.load_artifact(Layout(workdir).artifact(scores_name(saved[0])))["steps_per_epoch"])
    wanted = step_specs.to_steps(step, per_epoch, field)
    if wanted not in saved:
        raise UserError(f"{workdir} has no scores at {field}={step!r} (= {wanted} steps); it has steps {saved}")
    return wanted


def load(workdir: str, kind: str, step: str | int | None = None, replicates: bool = False) -> np.ndarray:
    """Scores of a scores run: ``(N,)`` averaged over replicates, or ``(R, N)`` with ``replicates``.

    ``kind``: ``el2n`` or ``grand`` (at ``step``), ``forgetting`` (forgetting events; ``inf`` for
    an example never learned), or ``never_learned`` (1.0 where never learned; averaged: the
    fraction of replicates). Averages keep ``inf``: never learned in one replicate is hardest.
    """
    if kind not in KINDS:
        raise UserError(f"unknown score {kind!r}; choose one of {', '.join(KINDS)}")
    layout = Layout(workdir)
    if kind in STEP_KINDS:
        saved = checkpoint.load_artifact(layout.artifact(scores_name(resolve_step(workdir, step))))
        if kind not in saved:
            raise UserError(f"{workdir} did not compute {kind} (scores.kinds)")
        values = np.asarray(saved[kind], np.float32)
    else:
        if not has_forgetting(workdir):
            raise UserError(
                f"{workdir} has no forgetting scores (add 'forgetting' to scores.kinds; they are "
                "saved when its training ends)"
            )
        history = checkpoint.load_artifact(layout.artifact(FORGETTING))
        values = forgetting(history) if kind == "forgetting" else (~np.asarray(history["learned"])).astype(np.float32)
    return values if replicates else average(values)


def _what(data: dict) -> dict:
    """The fields of a data block that say which training set it is (not where it is found)."""
    return {k: v for k, v in data.items() if k not in LOCATION_FIELDS}


def check_source(spec, data: dict, field: str) -> None:
    """Raises UserError unless ``spec.scores_workdir`` is a scores run of the training set ``data``
    (a data block as a dict: the set the subset is taken from) that computes ``spec.score``;
    reads only its ``config.json``."""
    if spec.keep not in selection.NEEDS_SCORES:
        return
    source = _config(spec.scores_workdir, f"{field}.scores_workdir")
    # a field their config lacks (saved before it existed) counts as its default: what was computed then
    defaults = json.loads(default_data_config().to_json())
    theirs, ours = _what({**defaults, **source.get("data", {})}), _what(data)
    differ = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
    if differ:
        name = differ[0]
        raise UserError(
            f"{field}.scores_workdir {spec.scores_workdir} scored another training set "
            f"(data.{name}: {theirs.get(name)!r} there, {ours.get(name)!r} here)"
        )
    if spec.score not in SCORE_KINDS:
        raise UserError(f"unknown {field}.score {spec.score!r}; choose one of {', '.join(SCORE_KINDS)}")
    if spec.score in STEP_KINDS and spec.score not in source.get("scores", {}).get("kinds", STEP_KINDS):
        raise UserError(f"{field}.scores_workdir {spec.scores_workdir} does not compute {spec.score} (scores.kinds)")
    if spec.score == "forgetting" and "forgetting" not in source.get("scores", {}).get("kinds", ()):
        raise UserError(f"{field}.scores_workdir {spec.scores_workdir} does not track forgetting (scores.kinds)")


def indices(spec, labels: np.ndarray, field: str) -> np.ndarray:
    """The sorted int32 indices of the training examples (``labels`` ``(N,)`` or soft ``(N, K)``) the spec keeps."""
    scores = None
    if spec.keep in selection.NEEDS_SCORES:
        step = spec.score_step if spec.score in STEP_KINDS else None
        scores = load(spec.scores_workdir, spec.score, step)
        if scores.shape != np.shape(labels)[:1]:
            raise UserError(
                f"{field}.scores_workdir {spec.scores_workdir} scored {scores.shape[0]} training "
                f"examples; this training set has {np.shape(labels)[0]}: another dataset"
            )
    return selection.choose(spec, labels, scores, field)


def per_replicate(spec, labels: np.ndarray, replicates: int, field: str) -> np.ndarray:
    """``(R, n)`` int32: the examples each replicate keeps. A random subset differs per replicate
    (replicate ``r`` draws with seed ``spec.seed + r``); a score-chosen one is shared."""
    if spec.keep != "random":
        return np.tile(indices(spec, labels, field), (replicates, 1))
    rows = []
    for r in range(replicates):
        own = spec.copy_and_resolve_references()
        own.seed = int(spec.seed) + r
        rows.append(indices(own, labels, field))
    return np.stack(rows)


def apply(dataset: Dataset, spec) -> Dataset:
    """``dataset`` with its training split cut to the examples ``data.subset`` (``spec``) keeps."""
    if spec is None or spec.keep == "all":
        return dataset
    keep = indices(spec, dataset.train_labels, "data.subset")
    rule = spec.keep if spec.keep == "random" else f"{spec.keep} by {spec.score}"
    return dataset.replace(
        train_images=dataset.train_images[keep],
        train_labels=dataset.train_labels[keep],
        source=f"{dataset.source}, train subset {keep.size}/{dataset.num_train} ({rule}, seed {spec.seed})",
    )


def forgetting(history: dict) -> np.ndarray:
    """Forgetting scores from histories (``(N,)`` arrays, or stacked ``(R, N)``): the number of
    forgetting events, ``inf`` for an example never learned (it ranks as hardest)."""
    events = np.asarray(history["forgetting_events"], np.float32)
    return np.where(np.asarray(history["learned"]), events, np.inf).astype(np.float32)


def average(per_replicate: np.ndarray) -> np.ndarray:
    """``(R, N) -> (N,)``: the mean over replicates (an ``inf`` in any replicate stays ``inf``)."""
    return np.mean(np.asarray(per_replicate, np.float64), axis=0).astype(np.float32)
