"""Experiments by name: each kind is a folder here whose ``__init__.py`` declares ``EXPERIMENT``
(:mod:`jaxlth.experiments.protocol`); the plain modules beside the folders are what the kinds share.

``run(config, workdir)`` is the one entry point, from the command line and from Python.
"""

from __future__ import annotations

import json
import os

import jax

from jaxlth import fields, processes, records, storage, timing
from jaxlth import workdir as workdir_lib
from jaxlth.errors import UserError
from jaxlth.experiments import recipes, registry
from jaxlth.experiments.context import Context
from jaxlth.layout import Layout
from jaxlth.training import setup as setup_lib

# Where compiled XLA programs are kept between processes, unless JAX's own setting or
# $JAXLTH_COMPILATION_CACHE (a folder, or "off") says otherwise.
DEFAULT_COMPILATION_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "jaxlth", "xla")
# Kept in that cache: programs that compile for longer. Not the tiny eager ops (a relu, a copy): loading
# them saves nothing, and XLA:CPU has crashed deserialising one (seen in runs of the test suite).
MIN_COMPILE_SECONDS = 0.1
# The cache's size limit: past it the entries read longest ago are deleted. Setting one also makes JAX take
# a file lock around every read and write of the folder, so runs started at once (a seed sweep as several
# processes, two notebooks) share it safely: without the lock JAX writes an entry in place, and a process
# reading it meanwhile loads a truncated program (XLA:CPU crashed so in runs of the tests).
CACHE_MAX_BYTES = 4 << 30


def enable_compilation_cache() -> str | None:
    """Turns on JAX's persistent compilation cache; returns its folder (``None`` when off).

    The command line calls this; :func:`run` does not (it leaves the caller's JAX settings
    alone): a notebook opts in with ``jaxlth.experiments.enable_compilation_cache()``. A resumed
    run, a rerun with more levels or a second seed sweep then loads its compiled programs from
    disk instead of compiling them again; results are unchanged bit for bit. Programs that compile
    in more than :data:`MIN_COMPILE_SECONDS` are kept (JAX's own default, 1 s, keeps almost none of a
    LeNet run's on a CPU), unless ``jax_persistent_cache_min_compile_time_secs`` is set, up to
    :data:`CACHE_MAX_BYTES` (least recently read deleted first; ``$JAX_COMPILATION_CACHE_MAX_SIZE`` overrides).
    """
    if jax.config.jax_compilation_cache_dir:
        path = jax.config.jax_compilation_cache_dir
    else:
        path = os.environ.get("JAXLTH_COMPILATION_CACHE", DEFAULT_COMPILATION_CACHE)
        if path.strip().lower() in ("", "0", "off", "false", "no"):
            return None
        jax.config.update("jax_compilation_cache_dir", path)
        if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
            jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
        if "JAX_COMPILATION_CACHE_MAX_SIZE" not in os.environ:
            jax.config.update("jax_compilation_cache_max_size", CACHE_MAX_BYTES)
    if jax.config.jax_compilation_cache_max_size != -1:
        backfill_access_times(path)
    return path


def backfill_access_times(path: str) -> int:
    """Gives every entry of the cache folder ``path`` that has none the access-time file JAX's size limit
    reads (its modification time); returns how many it wrote.

    JAX keeps a ``<key>-atime`` file beside each ``<key>-cache`` entry only while a size limit is set, and its
    eviction reads one for every entry before each write: one entry written without a limit (by jaxlth before
    it set one, or by a process with ``JAX_COMPILATION_CACHE_MAX_SIZE=-1``) made every later write fail with a
    warning, so a warm run kept compiling its training chunk. Folders that are not local are left alone.
    """
    if not os.path.isdir(path):
        return 0
    names, written = set(os.listdir(path)), 0
    for name in names:
        key = name.removesuffix("-cache")
        if key != name and f"{key}-atime" not in names:
            try:
                stamp = os.stat(os.path.join(path, name)).st_mtime_ns
                with open(os.path.join(path, f"{key}-atime"), "xb") as f:
                    f.write(stamp.to_bytes(8, "little"))
                written += 1
            except (FileExistsError, FileNotFoundError):  # another process got there, or evicted it
                pass
    return written


def run(config, workdir: str, from_process_start: bool = False):
    """Runs (or resumes, or extends) the experiment named by ``config.experiment`` in ``workdir``.

    The config is checked before anything is loaded, the data and model before anything is
    written; the workdir is then claimed (``config.json``) and locked for the duration. Prints the
    experiment's summary table and writes its figures at the end, then how long it took and where
    the time went (``took ...``, also in ``timing.json``: :mod:`jaxlth.timing`), counted from this
    call or, ``from_process_start`` (the command line), from the start of the process. Returns what
    the experiment's ``run`` returns.
    """
    phases = timing.Phases.since_process_start() if from_process_start else timing.Phases()
    with phases.listening():
        return _run(config, workdir, phases)


def _run(config, workdir: str, phases: timing.Phases):
    experiment = recipes.validate(config)
    primary = processes.is_primary()  # the others check the workdir once process 0 has claimed it
    if primary:
        claim(workdir, config, write=False)  # refuse a foreign workdir before loading data
        damaged = records.check(Layout(workdir).results_file)
        if damaged:
            raise UserError(
                f"{damaged}; restore it from a copy, or start again in another --workdir (the rows it "
                "held cannot be recomputed from the checkpoints)"
            )
    context = Context(config, workdir, experiment, phases)
    description = setup_lib.describe(context.setup)  # the data is there and the model builds
    context.setup.start_plan()  # a model.pretrained checkpoint of another model is refused before anything is written
    setup_lib.check_prunable(context.setup)
    experiment.check(context)
    if primary:
        claim(workdir, config)
    processes.barrier("jaxlth: workdir claimed")
    if not primary:
        claim(workdir, config, write=False)
    with workdir_lib.Lock(context.layout), context.watcher:  # the watcher's writers close at the end
        print(description, flush=True)
        outcome = experiment.run(context)
        context.rows.report_unrecovered()
        if experiment.report is not None and primary:
            with phases("figures"):
                text, paths = experiment.report(experiment.reader(workdir, experiment.arms.main), context.layout.plots)
            print(text, flush=True)
            if paths:
                print("figures: " + ", ".join(paths), flush=True)
                context.watcher.figures(paths)
        workdir_lib.mark_finished(workdir, recipes.finished_view(fields.to_dict(config), experiment))
        if primary:
            summary = phases.summary()
            print(timing.line(summary), flush=True)
            storage.write_text(context.layout.timing_file, json.dumps(summary, indent=1) + "\n")
    return outcome


def claim(workdir: str, config, write: bool = True) -> bool:
    """Makes ``workdir`` the config's, or checks that it is (:func:`jaxlth.workdir.claim`): a rerun
    may change only what its experiment allows. True when the workdir held the run already."""
    experiment = registry.of_config(config)
    return workdir_lib.claim(
        workdir, config, lambda saved, current: recipes.rerun_differences(saved, current, experiment), write
    )


def finished(workdir: str, config) -> bool:
    """Whether ``workdir`` last finished with ``config`` (in every field its experiment reads)."""
    experiment = recipes.validate(config)
    return workdir_lib.finished(workdir, recipes.finished_view(fields.to_dict(config), experiment), recipes.defaults())


__all__ = ["DEFAULT_COMPILATION_CACHE", "UserError", "claim", "enable_compilation_cache", "finished", "run"]
