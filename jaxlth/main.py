"""Command line: ``python -m jaxlth.main --config configs/NAME.py[:ARG] --workdir DIR [--config.KEY=VALUE]``.

Parses flags and hands over to :func:`jaxlth.experiments.run` (``--fit``: prints how many replicates
the devices' memory holds instead, :mod:`jaxlth.experiments.replicates`). With ``--distributed`` every process
of a multi-process job (TPU pod slice, GPU cluster) runs the same command as one run
(``docs/multi_device.md``). Mistakes a user can fix end the
process with one sentence on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import ast
import atexit
import gc
import logging as py_logging
import os
import sys
import threading
import traceback

from absl import app, flags, logging
from ml_collections import config_flags

from jaxlth import experiments, fields, processes
from jaxlth.errors import UserError, storage_error
from jaxlth.experiments import recipes, registry, replicates
from jaxlth.training import hyper

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file in configs/, optionally ':EXPERIMENT' (the experiments are listed above)."
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for config.json, results.csv, checkpoints and plots.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed",
    False,
    "Join the other processes of this job (jax.distributed): one run over all their devices. "
    "The cluster (TPU pod slice, SLURM, Open MPI) is detected unless --coordinator is given.",
)
_COORDINATOR = flags.DEFINE_string("coordinator", None, "With --distributed: host:port of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "With --coordinator: how many processes join.")
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "With --coordinator: this process's index, 0 .. num_processes - 1."
)
_FIT = flags.DEFINE_bool(
    "fit",
    False,
    "Print how many replicates of this config the devices' memory holds (XLA's memory analysis of its "
    "compiled training and evaluation programs) and exit: nothing is trained or written, no --workdir needed.",
)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        fail(f"unexpected arguments {' '.join(argv[1:])!r}; settings go as --config.KEY=VALUE")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO; --verbosity=0 shows them.
        # Orbax's background threads log their failures with tracebacks, and asyncio its unretrieved
        # futures; the error reaches the main thread and becomes one sentence (fail) instead.
        _silence_background_noise()
    try:
        config = _CONFIG.value
    except (OSError, ValueError) as e:
        fail(_one_line(e))
    if config is None:
        fail("--config is required, e.g. --config configs/lenet_fashion_mnist.py")
    for field, value in _TUPLE_OVERRIDES.items():
        fields.set_field(config, field, value)
    _join_processes()
    try:
        if _FIT.value:
            recipes.validate(config)
            print(replicates.choose(config, wanted=config.replicates).describe())
            return
        experiments.enable_compilation_cache()
        # What the imports made lives as long as the process: Python's full collections need not visit it (a tiny
        # lottery run's took 0.35 s, 0.12 s after; a 1-epoch LeNet run's 0.11 s, 0.06 s after).
        gc.freeze()
        experiments.run(config, _WORKDIR.value, from_process_start=True)  # validates the config first
    except UserError as e:
        fail(str(e))
    except OSError as e:
        fail(str(storage_error(str(_WORKDIR.value), e)))
    except KeyboardInterrupt:
        fail("interrupted; rerun the same command to resume from the latest checkpoint")


# Fields that take a number or a tuple (a sweep, ``Experiment.tuple_fields``):
# ``--config.lottery.prune_fraction=0.2,0.4,0.6`` (or ``"(0.2, 0.4)"``) is set after the config loads,
# since absl parses an override by the recipe's type.
_TUPLE_OVERRIDES: dict[str, tuple] = {}


def _tuple_fields() -> set[str]:
    swept = {f"train.{f}" for f in hyper.FIELDS}  # hyper-parameter sweeps (the experiment decides if it trains one)
    return swept | {f for experiment in registry.all_experiments().values() for f in experiment.tuple_fields}


def _renamed(argv: list[str]) -> list[str]:
    """``argv`` with overrides of renamed fields (``--config.lottery.layers_to_ignore``) under their
    names today, one notice each."""
    out = []
    for arg in argv:
        name, sep, value = arg.partition("=")
        field = name.removeprefix("--config.")
        if name.startswith("--config.") and field in fields.RENAMED:
            fields.notice_renamed(field)
            arg = f"--config.{fields.renamed(field)}{sep}{value}"
        out.append(arg)
    return out


def _add_experiment_module(argv: list[str]) -> None:
    """``--config.experiment_module=mypkg.myexp``: adds its experiment before the recipe is loaded, so
    the recipe's ``base_config()`` has its block and ``:myexp`` selects it."""
    for i, arg in enumerate(argv):
        value = None
        if arg.startswith("--config.experiment_module="):
            value = arg.split("=", 1)[1]
        elif arg == "--config.experiment_module" and i + 1 < len(argv):
            value = argv[i + 1]
        if value:
            try:
                registry.add(value)
            except UserError as e:
                fail(str(e))


def _take_tuple_overrides(argv: list[str]) -> list[str]:
    """``argv`` without the tuple-valued overrides of the experiments' ``tuple_fields`` (kept aside)."""
    tuple_fields = _tuple_fields()
    kept = []
    for arg in argv:
        name, _, value = arg.partition("=")
        field = name.removeprefix("--config.")
        if name.startswith("--config.") and field in tuple_fields and "," in value:
            try:
                parsed = ast.literal_eval(value if value.strip().startswith("(") else f"({value},)")
            except (ValueError, SyntaxError):
                if field == "train.warmup":  # step specs: --config.train.warmup=0it,1ep
                    _TUPLE_OVERRIDES[field] = tuple(v.strip(" ()'\"") for v in value.split(",") if v.strip(" ()"))
                    continue
                fail(f"--config.{field}={value} is neither a number nor a tuple of numbers such as 0.2,0.4")
            _TUPLE_OVERRIDES[field] = tuple(parsed) if isinstance(parsed, (tuple, list)) else (parsed,)
        else:
            kept.append(arg)
    return kept


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with its errors (a bad config file or value) as one sentence."""
    argv = _renamed(argv)
    sys.argv[:] = argv  # ml_collections reads the overrides' names from sys.argv
    _add_experiment_module(argv)
    argv = _take_tuple_overrides(argv)
    spec = _config_spec(argv)
    if spec is not None and not any(a in ("--help", "-h", "--helpfull") for a in argv):
        _check_config(spec, argv)
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        fail(_one_line(e))
    except (AttributeError, KeyError) as e:
        fail(f"the config has no field {str(e).strip(chr(34))}; check the --config.KEY=VALUE overrides")


def _check_config(spec: str, argv: list[str]) -> None:
    """The config file loads and every ``--config.KEY`` override names one of its fields (else one
    sentence), before absl reads them."""
    path, _, arg = spec.partition(":")
    try:
        config = recipes.load_file(path, arg or None)
    except UserError as e:
        fail(str(e))
    for item in argv:
        if item.startswith("--config."):
            dotted = item.removeprefix("--config.").split("=", 1)[0]
            problem = fields.unknown_field(config, dotted)
            if problem:
                fail(problem)


def _config_spec(argv: list[str]) -> str | None:
    """``PATH[:ARG]`` of ``--config PATH[:ARG]`` or ``--config=PATH[:ARG]`` in ``argv``, if any."""
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def _one_line(error: Exception) -> str:
    """The first line of an error and, if it wraps a traceback, the exception it ends with."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if len(lines) > 1 and any(line.startswith("Traceback") for line in lines):
        return f"{lines[0].rstrip(':')}: {lines[-1]}"
    return lines[0]


def _join_processes() -> None:
    """``--distributed``: joins the job's processes before anything uses JAX; only process 0
    prints to the terminal (the others keep stderr for their errors)."""
    explicit = [
        f.present for f in (flags.FLAGS["coordinator"], flags.FLAGS["num_processes"], flags.FLAGS["process_id"])
    ]
    if not _DISTRIBUTED.value:
        if any(explicit):
            fail("--coordinator, --num_processes and --process_id need --distributed")
        return
    try:
        processes.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    except UserError as e:
        fail(str(e))
    if not processes.is_primary():
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (for the life of the process)


def _silence_background_noise() -> None:
    """Orbax's background threads log their failures with tracebacks, asyncio its unretrieved
    futures and closed loops, and coroutines left behind by a failed restore are reported when
    collected: all of it after the error has reached the main thread, where it becomes one
    sentence (:func:`fail`) or one line (a checkpoint set aside). ``--verbosity`` shows it again."""
    for name in ("absl", "asyncio", "concurrent.futures"):
        py_logging.getLogger(name).setLevel(py_logging.CRITICAL + 1)

    def from_background(exc_type, exc_value, exc_traceback, origin=None) -> bool:
        text = "".join(traceback.format_exception(exc_type, exc_value, exc_traceback)) + repr(origin)
        return any(name in text for name in ("orbax", "asyncio", "tensorstore", "coroutine"))

    unraisable, thread_hook = sys.unraisablehook, threading.excepthook
    sys.unraisablehook = lambda u: (
        None if from_background(u.exc_type, u.exc_value, u.exc_traceback, u.object) else unraisable(u)
    )
    threading.excepthook = lambda a: (
        None if from_background(a.exc_type, a.exc_value, a.exc_traceback, a.thread) else thread_hook(a)
    )


def fail(message: str) -> None:
    print(f"jaxlth: error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def _experiment_listing() -> str:
    """The experiments for ``--help``: every known kind with its summary."""
    lines = [f"  {name}: {experiment.summary}" for name, experiment in registry.all_experiments().items()]
    return "experiments (config.experiment, or --config FILE:EXPERIMENT):\n" + "\n".join(lines)


if __name__ == "__main__":
    # The process ends after main: the objects it made go with it, so Python's collections at shutdown (JAX's
    # atexit clears its caches, then the interpreter collects every module) need not visit them. Frozen first
    # (atexit runs last-registered first): a tiny run exits ~0.3 s sooner here, ~0.6 s on a busy machine.
    atexit.register(gc.freeze)
    _add_experiment_module(sys.argv)  # so that --help lists its experiment too
    __doc__ = f"{__doc__}\n{_experiment_listing()}\n"  # absl's --help prints the module docstring
    app.run(main, flags_parser=parse_flags)
