"""Arms in tables and figures: their legend labels, their order, the main one.

An *arm* is one line of networks trained the same way (IMP, a control branch, the copies of an
instability run, ...). Each experiment declares its arms as an :class:`Arms` (``Experiment.arms``);
tables and figures take that value, so no shared code names an experiment's arms.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Mapping

MAIN = "main"  # the arm of the networks of a run that trains one kind of network


@dataclasses.dataclass(frozen=True)
class Arms:
    """An experiment's arms.

    Attributes:
      labels: ``{arm: legend label}`` in legend order (arms without one follow, alphabetically).
      main: the arm read when none is named, drawn first and on top, whose levels say the weights
        remaining of a table row.
      hidden: arms left out of the tables and accuracy figures (e.g. the dense pretraining to a
        rewind point, which ends before training does).
    """

    labels: Mapping[str, str] = dataclasses.field(default_factory=lambda: {MAIN: "dense"})
    main: str = MAIN
    hidden: tuple[str, ...] = ()

    def label(self, arm: str) -> str:
        """The legend label of ``arm`` (its name when it has none)."""
        return self.labels.get(arm, arm)

    def order(self, arms: Iterable[str]) -> list[str]:
        """``arms`` sorted: the labelled ones in :attr:`labels` order, then the rest alphabetically."""
        present = set(arms)
        known = [a for a in self.labels if a in present]
        return known + sorted(present - set(known))

    def merged(self, other: "Arms") -> "Arms":
        """These arms and ``other``'s (labels of both, this one's first; this main arm)."""
        return Arms(
            {**self.labels, **{k: v for k, v in other.labels.items() if k not in self.labels}},
            self.main,
            tuple(dict.fromkeys([*self.hidden, *other.hidden])),
        )
