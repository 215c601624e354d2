"""Training subsets chosen by per-example scores: which indices a subset spec keeps.

A subset spec (:func:`default_config`; ``data.subset`` and ``lottery.pretrain_data`` are such specs)
keeps part of the training set:

* ``hardest`` / ``easiest``: the examples with the largest / smallest scores;
* ``window``: drops the ``drop_easiest`` fraction with the smallest scores and the ``drop_hardest``
  fraction with the largest (Paul et al. 2021's offset experiment);
* ``random``: a seeded uniformly random subset (no scores);
* ``all``: everything (no subset).

Ties (forgetting counts are integers) are broken by a seeded random order, so the choice is a
pure function of the scores and ``seed``. With ``class_balanced`` every class gets the same share
(the remainder going to the lowest class indices) and the rule is applied within each class.
Returned indices are sorted (the kept examples stay in their original order).
"""

from __future__ import annotations

import ml_collections
import numpy as np

from jaxlth.data.dataset import classes_of
from jaxlth.errors import UserError

KEEPS = ("all", "hardest", "easiest", "random", "window")
NEEDS_SCORES = ("hardest", "easiest", "window")
_TIES_TAG, _RANDOM_TAG = 3, 4  # numpy streams of SeedSequence([seed, tag]) (jaxlth.data.sampling uses 1, 2)


def default_config() -> ml_collections.ConfigDict:
    """A subset spec with its defaults (keeps the whole training set)."""
    return ml_collections.ConfigDict(
        {
            "keep": "all",  # all | hardest | easiest | random | window
            "fraction": 1.0,  # of the training set kept (hardest, easiest, random)
            "size": 0,  # > 0: keep this many examples instead of a fraction
            "scores_workdir": "",  # a finished scores run (hardest, easiest, window)
            "score": "el2n",  # el2n | grand | forgetting (of that run)
            "score_step": "",  # the step the scores were taken at, e.g. "20ep" ("": the run's last)
            "drop_easiest": 0.0,  # window: the fraction of smallest scores dropped ...
            "drop_hardest": 0.0,  # ... and of largest scores
            "class_balanced": False,  # the same number of examples from every class
            "seed": 0,  # random subsets and the order of tied scores
        }
    )


def _rng(seed: int, tag: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed) & (2**64 - 1), tag]))


def check(spec, field: str, need_workdir: bool = True) -> None:
    """Raises UserError (naming ``field``, e.g. ``data.subset``) for a spec that cannot work; reads
    nothing (``need_workdir``: a score rule must name its scores run)."""
    if spec.keep not in KEEPS:
        raise UserError(f"unknown {field}.keep {spec.keep!r}; choose one of {', '.join(KEEPS)}")
    if spec.keep == "all":
        return
    try:
        fraction, size = float(spec.fraction), int(spec.size)
    except (TypeError, ValueError):
        raise UserError(f"{field}.fraction and {field}.size must be numbers") from None
    if spec.keep == "window":
        easy, hard = float(spec.drop_easiest), float(spec.drop_hardest)
        if not (0.0 <= easy < 1.0 and 0.0 <= hard < 1.0 and easy + hard < 1.0):
            raise UserError(
                f"{field}.drop_easiest={easy} and {field}.drop_hardest={hard} must be in [0, 1) and "
                "leave examples (their sum below 1)"
            )
    elif size < 0 or (size == 0 and not 0.0 < fraction <= 1.0):
        raise UserError(f"{field}.fraction={spec.fraction!r} must be in (0, 1] (or set {field}.size > 0)")
    if need_workdir and spec.keep in NEEDS_SCORES and not spec.scores_workdir:
        raise UserError(f"{field}.keep={spec.keep!r} needs {field}.scores_workdir: a finished scores run")


def count(spec, num_examples: int) -> int:
    """How many of ``num_examples`` the spec keeps."""
    if spec.keep == "all":
        return num_examples
    if spec.keep == "window":
        easy = int(round(float(spec.drop_easiest) * num_examples))
        return num_examples - easy - int(round(float(spec.drop_hardest) * num_examples))
    return int(spec.size) if int(spec.size) > 0 else int(round(float(spec.fraction) * num_examples))


def choose(spec, labels: np.ndarray, scores: np.ndarray | None, field: str = "subset") -> np.ndarray:
    """The sorted int32 indices of the examples the spec keeps, of ``labels`` ``(N,)`` (or soft targets
    ``(N, K)``, balanced by their argmax class) and (for the score rules) ``scores`` ``(N,)`` (larger = harder)."""
    labels = classes_of(labels)
    n = labels.shape[0]
    check(spec, field, need_workdir=False)
    if spec.keep == "all":
        return np.arange(n, dtype=np.int32)
    keep = count(spec, n)
    if not 1 <= keep <= n:
        raise UserError(f"{field} keeps {keep} examples, but the training set has {n}")
    if spec.keep in NEEDS_SCORES and (scores is None or np.shape(scores) != (n,)):
        raise UserError(f"{field}: the scores hold {np.shape(scores)} values for {n} training examples")
    groups = [np.arange(n)]
    shares = [keep]
    if spec.class_balanced:
        classes = np.unique(labels)
        groups = [np.flatnonzero(labels == c) for c in classes]
        shares = [keep // len(classes) + (i < keep % len(classes)) for i in range(len(classes))]
        for c, group, share in zip(classes, groups, shares):
            if share > group.size:
                raise UserError(f"{field}: class {c} has {group.size} examples, fewer than its share {share}")
    kept = [_within(spec, group, share, scores) for group, share in zip(groups, shares)]
    return np.sort(np.concatenate(kept)).astype(np.int32)


def _within(spec, group: np.ndarray, share: int, scores: np.ndarray | None) -> np.ndarray:
    """``share`` indices of ``group`` chosen by the spec's rule."""
    if spec.keep == "random":
        return _rng(spec.seed, _RANDOM_TAG).permutation(group)[:share]
    shuffled = _rng(spec.seed, _TIES_TAG).permutation(group)
    ordered = shuffled[np.argsort(np.asarray(scores)[shuffled], kind="stable")]  # easiest first
    if spec.keep == "easiest":
        return ordered[:share]
    if spec.keep == "hardest":
        return ordered[ordered.size - share :]
    easy = int(round(float(spec.drop_easiest) * ordered.size))
    return ordered[easy : easy + share]
