"""Step specs: training lengths written as ``"40ep"``, ``"1000it"`` or ``"2ep100it"``.

A spec is a number of epochs plus a number of iterations; it becomes an iteration count once
the number of steps per epoch (``len(train set) // batch_size``, remainder dropped) is known.
"""

from __future__ import annotations

import dataclasses
import re

from jaxlth.errors import UserError

_SPEC = re.compile(r"^\s*(?:(\d+)\s*ep)?\s*(?:(\d+)\s*it)?\s*$")


@dataclasses.dataclass(frozen=True)
class StepSpec:
    """``epochs`` whole epochs followed by ``iterations`` more steps."""

    epochs: int = 0
    iterations: int = 0

    def to_steps(self, steps_per_epoch: int) -> int:
        """The spec as a number of optimizer steps (iterations)."""
        return self.epochs * steps_per_epoch + self.iterations

    def __str__(self) -> str:
        if self.epochs and self.iterations:
            return f"{self.epochs}ep{self.iterations}it"
        if self.epochs:
            return f"{self.epochs}ep"
        return f"{self.iterations}it"


def parse(spec: str | int, field: str = "step spec") -> StepSpec:
    """Parses ``"40ep"``, ``"1000it"``, ``"2ep100it"`` (or a bare int, meaning iterations).

    Raises:
      UserError: naming ``field`` when the spec is malformed.
    """
    if isinstance(spec, bool):
        raise UserError(f"{field} must be a step spec like '40ep', '1000it' or '2ep100it', not {spec!r}")
    if isinstance(spec, int):
        if spec < 0:
            raise UserError(f"{field} must not be negative, got {spec}")
        return StepSpec(0, spec)
    match = _SPEC.match(str(spec))
    if not str(spec).strip() or match is None or (match.group(1) is None and match.group(2) is None):
        raise UserError(f"{field} has the malformed step spec {spec!r}: write it like '40ep', '1000it' or '2ep100it'")
    return StepSpec(int(match.group(1) or 0), int(match.group(2) or 0))


def to_steps(spec: str | int, steps_per_epoch: int, field: str = "step spec") -> int:
    """Parses ``spec`` and converts it to iterations."""
    return parse(spec, field).to_steps(steps_per_epoch)


def parse_list(specs: str | list | tuple, steps_per_epoch: int, field: str) -> list[int]:
    """A comma-separated string (or sequence) of step specs, as sorted iterations."""
    if isinstance(specs, str):
        items = [s for s in specs.split(",") if s.strip()]
    else:
        items = list(specs)
    return sorted(to_steps(s, steps_per_epoch, field) for s in items)


def before(a: str | int, b: str | int, field_a: str, field_b: str) -> bool | None:
    """Whether spec ``a`` comes strictly before spec ``b`` for every epoch length, when that is
    decidable without the dataset (same number of epochs); ``None`` when it depends on it."""
    x, y = parse(a, field_a), parse(b, field_b)
    if x.epochs == y.epochs:
        return x.iterations < y.iterations
    if x.epochs > y.epochs and x.iterations >= y.iterations:
        return False
    if x.epochs < y.epochs and x.iterations <= y.iterations:
        return True
    return None
