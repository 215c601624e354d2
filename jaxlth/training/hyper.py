"""Hyper-parameter sweeps in one program: ``train.lr``, ``momentum``, ``weight_decay``, ``warmup`` as tuples.

A :class:`Grid` is the product of the swept fields' values (the first field listed in :data:`FIELDS`
varies slowest); each point is a *setting*. A run with ``H`` settings trains the ``H`` one-setting
runs side by side on the stacked axis, setting-major: a stack of ``P`` networks holds setting ``h``
at positions ``[h P/H, (h + 1) P/H)``, and each block is laid out exactly as the one-setting run
lays out its stack (replicates, copies, prune fractions: :mod:`jaxlth.training.copies`). So every
replicate-level array (keys, scoring examples) is tiled ``H`` times (:meth:`Grid.tile`), and
nothing inside a block knows about the grid.

Each network's values live in its optimizer state (``optax.inject_hyperparams``' ``hyperparams``,
only the swept fields): a checkpoint keeps them, and a fresh optimizer state (after rewinding) gets
them again from its position (:func:`place`).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlth import data as data_lib
from jaxlth import steps as step_specs
from jaxlth.errors import UserError

PyTree = Any
FIELDS = ("lr", "momentum", "weight_decay", "warmup")  # train.<field> may be a tuple
OPTIMIZER_FIELDS = ("momentum", "weight_decay")  # read by the gradient transformation
SCHEDULE_FIELDS = ("lr", "warmup")  # read by the learning-rate schedule


def _values(train_cfg: Mapping, field: str) -> tuple | None:
    """The tuple of ``train.<field>``'s values (``None``: one value, no sweep), checked."""
    value = train_cfg.get(field)
    if not isinstance(value, (tuple, list)):
        return None
    name = f"train.{field}"
    if not value:
        raise UserError(f"{name} is an empty tuple; give one value or several, e.g. (0.1, 0.05)")
    if field == "warmup":
        values = tuple(str(step_specs.parse(v, name)) for v in value)
    else:
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value):
            raise UserError(f"{name} must be a number or a tuple of numbers, got {tuple(value)!r}")
        values = tuple(float(v) for v in value)
        if field == "lr" and min(values) <= 0:
            raise UserError(f"train.lr must be positive, got {tuple(value)!r}")
        if min(values) < 0:
            raise UserError(f"{name} must be >= 0, got {tuple(value)!r}")
    if len(set(values)) != len(values):
        raise UserError(f"{name} lists a value twice: {tuple(value)!r}")
    return values


@dataclasses.dataclass(frozen=True)
class Grid:
    """The settings of a sweep: ``settings[h]`` is ``{field: value}`` of the swept fields (warm-up as a
    step spec); one empty setting without a sweep."""

    settings: tuple[dict, ...] = ({},)

    @property
    def size(self) -> int:
        """``H``: the settings (1 without a sweep)."""
        return len(self.settings)

    @property
    def fields(self) -> tuple[str, ...]:
        """The swept fields, in :data:`FIELDS` order (the rows' extra columns)."""
        return tuple(self.settings[0])

    def tile(self, tree: PyTree) -> PyTree:
        """``(N, ...) -> (H * N, ...)``: a one-setting stack repeated for every setting (setting-major)."""
        if self.size == 1:
            return tree
        return jax.tree.map(lambda x: jnp.concatenate([x] * self.size, axis=0), tree)

    def at(self, i: int, count: int, coordinates=None) -> list[dict]:
        """The row coordinates of stacked position ``i`` of ``count`` networks: those of position ``i mod N``
        of the one-setting stack (``coordinates``, or ``{"replicate": i}``; an entry may be a list of
        dicts) with its setting's values; ``N = count / H``."""
        n = len(coordinates) if coordinates is not None else count // self.size
        inner, setting = i % n, self.settings[i // n]
        found = {"replicate": inner} if coordinates is None else coordinates[inner]
        return [dict(c, **setting) for c in (found if isinstance(found, (list, tuple)) else [found])]

    def numbers(self, steps_per_epoch: int) -> dict[str, np.ndarray]:
        """``{field: (H,) values}`` as the optimizer state holds them (warm-up in steps, int32)."""
        out = {}
        for field in self.fields:
            if field == "warmup":
                steps = [step_specs.to_steps(s[field], steps_per_epoch, "train.warmup") for s in self.settings]
                out[field] = np.asarray(steps, np.int32)
            else:
                out[field] = np.asarray([s[field] for s in self.settings], np.float32)
        return out

    def find(self, **values) -> int:
        """The index of the one setting ``values`` names (``lr=0.05``; 0 without a sweep); UserError for
        a field not swept, or values that name none or several settings."""
        unknown = [k for k in values if k not in self.fields]
        if unknown:
            swept = f"sweeps {', '.join(self.fields)}" if self.fields else "sweeps no hyper-parameter"
            raise UserError(f"this run {swept}; it has no networks chosen by {unknown[0]}")
        found = [h for h, s in enumerate(self.settings) if all(same(s[k], v) for k, v in values.items())]
        if len(found) != 1:
            choices = "; ".join(self.label(h) for h in range(self.size))
            raise UserError(f"{len(found) or 'none'} of this run's settings ({choices}) match {values}: name one")
        return found[0]

    def label(self, h: int) -> str:
        """``"lr=0.1, warmup=100it"``: setting ``h`` in words."""
        return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.settings[h].items())


NONE = Grid()


def same(a, b) -> bool:
    """Equal values of a setting or coordinate: numbers within 1e-9, anything else as text."""
    try:
        return abs(float(a) - float(b)) < 1e-9
    except (TypeError, ValueError):
        return str(a) == str(b)


def grid(train_cfg: Mapping) -> Grid:
    """The grid of ``train`` (a ConfigDict or a saved config's dict); UserError for a bad tuple."""
    swept = {f: v for f in FIELDS if (v := _values(train_cfg, f)) is not None}
    if not swept:
        return NONE
    points = itertools.product(*swept.values())
    return Grid(tuple(dict(zip(swept, point)) for point in points))


def check(config, sweeping: tuple[str, ...]) -> Grid:
    """The grid of ``config.train``, and what a sweep needs (one sentence each): an experiment of
    ``sweeping``, the data in memory, a random initialisation, SGD for a tuple of momenta."""
    found = grid(config.train)
    swept = ", ".join(f"train.{f}" for f in found.fields)
    if not swept:
        return found
    if config.experiment not in sweeping:
        raise UserError(
            f"the {config.experiment} experiment trains one value of {swept}, not a tuple; "
            f"hyper-parameter sweeps in one program serve {', '.join(sweeping)}"
        )
    if data_lib.streams(config.data):
        raise UserError(f"a sweep of {swept} needs the whole dataset in memory, and {config.data.name} is streamed")
    if config.model.get("pretrained", ""):
        raise UserError(f"a sweep of {swept} starts from a random initialisation, not from model.pretrained")
    if "momentum" in found.fields and config.train.optimizer != "sgd":
        raise UserError(
            f"train.momentum is SGD's: a tuple of momenta needs train.optimizer = sgd, not {config.train.optimizer}"
        )
    return found


def one_setting(train_cfg: Mapping) -> dict:
    """``train`` with every swept field at its first value: the one-setting config a sweep's
    per-network memory is measured on."""
    out = dict(train_cfg)
    for field, value in grid(train_cfg).settings[0].items():
        out[field] = value
    return out


def place(opt_state: PyTree, numbers: dict | None) -> PyTree:
    """A stacked optimizer state of ``P`` networks with each network's swept values (``numbers``:
    ``{field: (H,)}``), setting-major; unchanged without a sweep."""
    if not numbers:
        return opt_state
    count = int(opt_state.count.shape[0])
    size = len(next(iter(numbers.values())))
    if count % size:
        raise ValueError(f"a stack of {count} networks cannot hold the {size} settings of a sweep")
    values = {k: jnp.repeat(jnp.asarray(v, opt_state.hyperparams[k].dtype), count // size) for k, v in numbers.items()}
    return opt_state._replace(hyperparams={**opt_state.hyperparams, **values})


def schedule_values(opt_state: PyTree) -> dict:
    """``{"lr", "warmup"}`` (those swept) of one network's optimizer state: the schedule's arguments."""
    if not isinstance(opt_state, optax.InjectStatefulHyperparamsState):
        return {}
    return {k: v for k, v in opt_state.hyperparams.items() if k in SCHEDULE_FIELDS}
