"""Name tables: which layer of a checkpoint format is which jaxlth module, in both directions.

A :class:`Rule` pairs a file module template (``"layer{s}.{b}.conv{k}"``, ``.``-separated, ``""``
for top-level tensors) with a jaxlth module template (``"stage{s}_block{b}/conv{k}"``,
``/``-separated) and the layer's :class:`~jaxlth.weights.layers.Kind`; numbered placeholders
match non-negative integers, shifted by ``offsets`` (file number = jaxlth number + offset).
A file key is ``module.tensor`` (``"layer1.0.conv1.weight"``); a jaxlth path is
``collection/module/leaf`` (``"params/stage0_block0/conv1/kernel"``).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable

from jaxlth.weights.layers import Kind, Leaf


@dataclasses.dataclass(frozen=True)
class Rule:
    """One layer: its file module, its jaxlth module, its kind. ``needs``: a jaxlth path (collection
    first) the network must have for this rule to name its leaves when writing (a BERT's ``output``
    is a classifier, or the MLM head whose bias the file names otherwise)."""

    file: str
    jaxlth: str
    kind: Kind
    offsets: tuple[tuple[str, int], ...] = ()
    needs: str = ""


@dataclasses.dataclass(frozen=True)
class Names:
    """A checkpoint format's names. ``ignored``: regular expressions of file keys read past (such as
    BatchNorm's ``num_batches_tracked``); ``canonical``: a file key as the rules spell it."""

    format: str
    rules: tuple[Rule, ...]
    ignored: tuple[str, ...] = ()
    canonical: Callable[[str], str] = lambda key: key


@functools.cache
def _pattern(template: str) -> re.Pattern:
    parts = re.split(r"\{(\w+)\}", template)
    return re.compile("".join(re.escape(p) if i % 2 == 0 else rf"(?P<{p}>\d+)" for i, p in enumerate(parts)))


def _fill(template: str, numbers: dict[str, str], offsets: dict[str, int], sign: int) -> str:
    return template.format(**{name: int(value) + sign * offsets.get(name, 0) for name, value in numbers.items()})


def _join(*parts: str, sep: str) -> str:
    return sep.join(part for part in parts if part)


def is_ignored(names: Names, key: str) -> bool:
    """Whether ``key`` is a tensor the format has and jaxlth does without."""
    return any(re.fullmatch(pattern, names.canonical(key)) for pattern in names.ignored)


def to_jaxlth(names: Names, key: str) -> tuple[Kind, Leaf, tuple[str, ...]] | None:
    """The layer kind, tensor and jaxlth paths of the file key ``key``; None for a name of no layer."""
    module, _, tensor = names.canonical(key).rpartition(".")
    for rule in names.rules:
        found = _pattern(rule.file).fullmatch(module)
        leaf = rule.kind.leaf(tensor) if found else None
        if leaf is not None:
            where = _fill(rule.jaxlth, found.groupdict(), dict(rule.offsets), -1)
            paths = []
            for flax in leaf.flax:
                collection, _, relative = flax.partition("/")
                paths.append(_join(collection, where, relative, sep="/"))
            return rule.kind, leaf, tuple(paths)
    return None


def _numbers(rule: Rule, rest: str, relative: str) -> dict[str, str] | None:
    """The placeholders' values when ``rest`` (a jaxlth path less its collection) is ``relative``
    inside ``rule``'s jaxlth module; None when it is not."""
    if not rule.jaxlth:
        return {} if rest == relative else None
    if not rest.endswith("/" + relative):
        return None
    found = _pattern(rule.jaxlth).fullmatch(rest[: -len(relative) - 1])
    return None if found is None else found.groupdict()


def to_file(names: Names, path: str, has: Callable[[str], bool] = lambda path: True) -> tuple[str, Leaf, int] | None:
    """The file key, tensor and index in ``leaf.flax`` of the jaxlth path ``path``; None when the
    format has no name for it. ``has``: whether the network has a path (for rules' ``needs``)."""
    collection, _, rest = path.partition("/")
    for rule in names.rules:
        if rule.needs and not has(rule.needs):
            continue
        for leaf in rule.kind.leaves:
            for index, flax in enumerate(leaf.flax):
                leaf_collection, _, relative = flax.partition("/")
                numbers = _numbers(rule, rest, relative) if leaf_collection == collection else None
                if numbers is not None:
                    module = _fill(rule.file, numbers, dict(rule.offsets), 1)
                    return _join(module, leaf.file, sep="."), leaf, index
    return None
