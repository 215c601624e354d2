"""The one line a run prints before it trains: model, data, replicates, settings, steps, devices."""

from __future__ import annotations

import jax

from jaxlth import sharding
from jaxlth.training import hyper


def describe(setup) -> str:
    """One line for the terminal: what is about to run (a :class:`~jaxlth.training.setup.Setup`)."""
    c = setup.config
    return (
        f"{c.model.name} on {setup.dataset.name} ({setup.dataset.num_train} train / {setup.dataset.num_test} test, "
        f"{setup.dataset.source}); {c.replicates} replicate(s){_settings(setup.grid)}{_trained(c.train)}; "
        f"{setup.total_steps} steps "
        f"({setup.steps_per_epoch}/epoch); {_devices()}, "
        f"{sharding.describe(setup.mesh)}"
    )


def _settings(grid: hyper.Grid) -> str:
    """``" x 2 settings of lr"``: a sweep in words (nothing without one)."""
    return f" x {grid.size} settings of {', '.join(grid.fields)}" if grid.fields else ""


def _trained(train_cfg) -> str:
    """``" training only batchnorm, ^output/"``: ``train.trainable`` in words (nothing when all train)."""
    entries = train_cfg.get("trainable", ())
    return f" training only {', '.join(entries)}" if entries else ""


def _devices() -> str:
    """``"4 x cpu"``, or ``"8 x tpu in 2 processes"``."""
    text = f"{jax.device_count()} x {jax.devices()[0].platform}"
    return text + (f" in {jax.process_count()} processes" if jax.process_count() > 1 else "")
