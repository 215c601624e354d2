"""Experiments by name: each is ``run(config, workdir)``."""

from __future__ import annotations

from jaxlth.errors import UserError


def run(config, workdir: str):
    """Runs the experiment named by ``config.experiment`` in ``workdir``."""
    from jaxlth.experiments import lottery, train  # noqa: PLC0415 (keep imports light for --help)

    registry = {"train": train.run, "lottery": lottery.run}
    if config.experiment not in registry:
        raise UserError(f"unknown experiment {config.experiment!r}; choose one of {', '.join(sorted(registry))}")
    return registry[config.experiment](config, workdir)
