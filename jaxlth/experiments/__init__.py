"""Experiments by name: each is ``run(config, workdir)``."""

from __future__ import annotations

import os

from jaxlth.errors import UserError

# Where compiled XLA programs are kept between processes, unless JAX's own setting or
# $JAXLTH_COMPILATION_CACHE (a folder, or "off") says otherwise.
DEFAULT_COMPILATION_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "jaxlth", "xla")


def enable_compilation_cache() -> str | None:
    """Turns on JAX's persistent compilation cache; returns its folder (``None`` when off).

    A resumed run, a rerun with more levels or a second seed sweep then loads its compiled
    programs from disk instead of compiling them again. The cache holds the same executables the
    compiler would produce, so results are unchanged bit for bit.
    """
    import jax  # noqa: PLC0415

    if jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    path = os.environ.get("JAXLTH_COMPILATION_CACHE", DEFAULT_COMPILATION_CACHE)
    if path.strip().lower() in ("", "0", "off", "false", "no"):
        return None
    jax.config.update("jax_compilation_cache_dir", path)
    return path


def run(config, workdir: str):
    """Runs the experiment named by ``config.experiment`` in ``workdir``."""
    from jaxlth.experiments import instability, lottery, train  # noqa: PLC0415 (light imports for --help)

    registry = {"train": train.run, "lottery": lottery.run, "instability": instability.run}
    if config.experiment not in registry:
        raise UserError(f"unknown experiment {config.experiment!r}; choose one of {', '.join(sorted(registry))}")
    enable_compilation_cache()
    return registry[config.experiment](config, workdir)
