import gc
import os
import select
import signal
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# NumPy's OpenBLAS in one thread: the workers already keep every core busy, and OpenBLAS's own threads waited for
# work spinning (blas_thread_server: ~3% of the suite's CPU time in a profile of three workers). Read when NumPy
# loads, which is after this file in the workers, their command-line runs and the notebooks' kernels.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
TINY = os.path.join(ROOT, "tests", "configs", "tiny.py")
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

# One persistent XLA compilation cache for the whole suite, shared by the pytest-xdist workers and their
# subprocesses: the tests compile the same tiny programs many times over, and loading them is ~3x faster.
# A size limit makes JAX lock the folder around every read and write (jaxlth.experiments.CACHE_MAX_BYTES):
# without it JAX writes an entry in place, and a process reading an entry another is still writing
# deserialises a truncated executable and crashes (seen with one cache for several processes).
COMPILATION_CACHE = os.path.join(tempfile.gettempdir(), "jaxlth-tests-xla-cache")
if os.environ.get("JAX_COMPILATION_CACHE_DIR") in (None, os.environ.get("JAXLTH_TESTS_CACHE")):  # not the user's
    os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ["JAXLTH_TESTS_CACHE"] = COMPILATION_CACHE
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(8 << 30))
# With a size limit JAX also reads every entry's access time before each write, under the lock: with the 3,526
# entries a few runs of the suite leave, a write took 0.6 s (3.7 s with a cold file cache), and a cold run of
# test_lottery.py and test_one_shot.py took 216 s against 167 s with an empty folder. The suite's cache lives in
# /tmp, which CI keeps between runs, so each session first deletes the entries not read for CACHE_UNREAD_DAYS
# before the latest read (other code's programs); the controller does it before the workers start.
CACHE_UNREAD_DAYS = 2
# Only programs that take a while to compile: loading the tiny eager ops (a relu, a convert) from the
# cache gains nothing, and XLA:CPU has crashed (segfault) deserialising such an op (seen twice in runs of the
# whole suite); a training chunk or an evaluation compiles for longer and is still loaded.
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
# XLA:CPU's LLVM backend at optimisation level 1, not 3: the suite compiles far more than it runs. Cold cache,
# idle machine, levels 3 / 1 / 0: the ResNet rewinding notebook test 147 / 97 / 80 s; the conv replicate and
# conv landscape tests 209 / 128 / 175 s (level 0 runs a ResNet's convolutions' fusions ~8x slower); warm, it
# costs ~7% (docs/design.md, "Compilation"). The compat runs recorded at level 3 pass at it (bitwise where the
# CPU and jax are the recording's); a one-row matrix product may differ in the last bit (tests/test_export.py).
# Appended to the caller's XLA_FLAGS unless it sets a level; subprocess tests that set their own flags append
# to the suite's through xla_flags().
TEST_XLA_FLAGS = "--xla_backend_optimization_level=1"
if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):  # unless the caller chose one
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + TEST_XLA_FLAGS).strip()


def drop_unread_cache_entries(path: str, days: float) -> int:
    """Deletes the entries of the JAX compilation cache folder ``path`` that were last read (or written) more than
    ``days`` days before the most recently read one, by the ``<key>-atime`` files JAX's size limit keeps (else the
    entry's modification time), under JAX's own lock of the folder; returns how many it deleted. Counted from the
    last read, not from today: after a week without runs the last run's programs are all kept."""
    import filelock

    if not os.path.isdir(path):
        return 0
    with filelock.FileLock(os.path.join(path, ".lockfile"), timeout=60):
        reads = {}
        for name in os.listdir(path):
            if name.endswith("-cache"):
                entry, stamp = os.path.join(path, name), os.path.join(path, name.removesuffix("-cache") + "-atime")
                try:
                    with open(stamp, "rb") as f:
                        reads[entry, stamp] = int.from_bytes(f.read(), "little") / 1e9
                except (OSError, ValueError):
                    reads[entry, stamp] = os.path.getmtime(entry)
        cutoff = max(reads.values(), default=0.0) - days * 86400
        doomed = [files for files, read in reads.items() if read < cutoff]
        for files in doomed:
            for file in files:
                if os.path.exists(file):
                    os.remove(file)
    return len(doomed)


if "PYTEST_XDIST_WORKER" not in os.environ and os.environ["JAX_COMPILATION_CACHE_DIR"] == COMPILATION_CACHE:
    drop_unread_cache_entries(COMPILATION_CACHE, CACHE_UNREAD_DAYS)


def xla_flags(*flags: str) -> str:
    """This process's XLA_FLAGS (with the suite's) followed by ``flags``, for a subprocess's environment."""
    return " ".join([os.environ.get("XLA_FLAGS", ""), *flags]).strip()


def cpu_kind() -> str:
    """The CPU's vendor and widest vector ISA, ``"GenuineIntel avx512"``, ``"AuthenticAMD avx2"`` (x86 Linux),
    else the machine's name: XLA:CPU compiles for the host CPU (its vector width and its model), so the same
    program may add floats in another order on another CPU and a run is bitwise reproducible only on the kind
    it was recorded on (seen: Intel AVX-512 vs AMD EPYC AVX2, and Intel vs AMD EPYC both with AVX-512)."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            first = f.read().split("\n\n", 1)[0]  # the first processor's block
    except OSError:
        return platform.machine()
    field = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in first.splitlines())}
    flags = set(field.get("flags", "").split())
    isa = "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else platform.machine()
    return f"{field.get('vendor_id', 'unknown')} {isa}"


def same_xla(recorded: dict) -> bool:
    """Whether this machine computes bitwise what a recording made with ``recorded`` (its versions.json:
    ``jax`` and ``cpu``, as :func:`cpu_kind` names it) computed: the same jax release (XLA) on the same kind of
    CPU."""
    import jax

    return jax.__version__ == recorded["jax"] and cpu_kind() == recorded["cpu"]


def drawn_variables(model, x, seed: int = 0, **kwargs) -> dict:
    """Generic variables of a Flax ``model`` for input ``x`` (``{"params", "batch_stats"?}``, float32 numpy),
    drawn with numpy from the shapes its ``init`` gives: random kernels (He-scaled: ReLU networks keep their
    activations' scale), biases, scales and BatchNorm statistics away from their initial values, so no unit is
    dead or interchangeable. An eager ``init`` compiles every layer's ops and draws (~17 s for a ResNet-50 of
    width 4), a jitted one a large program: tests that need some network, not the initialisation, draw it here.
    ``kwargs`` go to ``init`` (e.g. ``train=False``)."""
    import jax
    import numpy as np
    from flax import traverse_util

    shapes = jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x, **kwargs), x)
    rng = np.random.default_rng(seed)

    def draw(path, leaf) -> np.ndarray:
        normal = rng.standard_normal(leaf.shape)
        if path[-1] in ("scale", "var"):
            value = 1.0 + 0.1 * (np.abs(normal) if path[-1] == "var" else normal)
        elif path[-1] in ("bias", "mean"):
            value = 0.1 * normal
        else:  # a kernel or an embedding
            value = normal * np.sqrt(2 / np.prod(leaf.shape[:-1]))
        return value.astype(np.float32)

    def drawn(tree) -> dict:
        flat = traverse_util.flatten_dict(tree)
        return traverse_util.unflatten_dict({path: draw(path, leaf) for path, leaf in flat.items()})

    return {collection: drawn(tree) for collection, tree in shapes.items()}


def tiny_config(arg: str | None = None, **changes):
    """The config of ``tests/configs/tiny.py[:arg]``, with dotted-name changes (``"train.lr": 0.1``).

    Built as the command line builds it (``jaxlth.config.from_file``), validated.
    """
    from jaxlth import config as config_lib

    return config_lib.from_file(f"{TINY}:{arg}" if arg else TINY, **changes)


def record_trainings(monkeypatch) -> list[dict]:
    """Records every training segment a run starts: ``{"name", "labels", "start", "state"}``
    (``state``: its initial state as numpy arrays). Wraps ``Context.train`` whatever its signature."""
    import inspect

    import jax
    import numpy as np

    from jaxlth.experiments.context import Context

    starts, original = [], Context.train
    signature = inspect.signature(original)

    def recording(*args, **kwargs):
        call = signature.bind(*args, **kwargs).arguments
        starts.append(
            {
                "name": call["name"],
                "labels": call["labels"],
                "start": call["segment"].start,
                "state": jax.tree.map(np.asarray, call["initial_state"]()),
            }
        )
        return original(*args, **kwargs)

    monkeypatch.setattr(Context, "train", recording)
    return starts


def run_cli(*args, timeout=300, check=False, env=None):
    """Runs ``python -m jaxlth.main ARGS`` and returns the CompletedProcess (text mode); forked from the
    worker's pre-imported server where it can be (``tests/forkserver.py``)."""
    return run_module("jaxlth.main", *args, timeout=timeout, check=check, env=env)


def run_module(module: str, *args, timeout=300, check=False, env=None):
    """Runs ``python -m MODULE ARGS`` from the repository's root, as :func:`run_cli` runs the command line."""
    from tests import forkserver

    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    command = [sys.executable, "-m", module, *args]
    (out_read, out_write), (err_read, err_write) = os.pipe(), os.pipe()
    with open(os.devnull, "rb") as null:
        proc = forkserver.start(
            module, args, cwd=ROOT, env=full_env, stdin=null.fileno(), stdout=out_write, stderr=err_write
        )
    os.close(out_write)
    os.close(err_write)
    streams, open_fds = {out_read: bytearray(), err_read: bytearray()}, [out_read, err_read]
    deadline = time.monotonic() + timeout
    try:
        while open_fds:  # both pipes read as they fill (a full pipe would block the process)
            ready = select.select(open_fds, [], [], max(deadline - time.monotonic(), 0))[0]
            if not ready:
                proc.kill()
                raise subprocess.TimeoutExpired(command, timeout)
            for fd in ready:
                chunk = os.read(fd, 1 << 16)
                streams[fd] += chunk
                if not chunk:
                    open_fds.remove(fd)
        proc.wait(max(deadline - time.monotonic(), 1))
    finally:
        for fd in streams:
            os.close(fd)
    out, err = (bytes(streams[fd]).decode(errors="replace") for fd in (out_read, err_read))
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{out}\nstderr:\n{err}")
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


@pytest.fixture
def cli():
    return run_cli


def start_and_kill(args, reached, timeout=240):
    """Starts ``python -m jaxlth.main ARGS`` and SIGKILLs it once ``reached()`` is true.

    Fails the test when the run ends (or ``timeout`` seconds pass) before it could be killed.
    """
    from tests import forkserver

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(os.devnull, "r+b") as null:
        proc = forkserver.start(
            "jaxlth.main", args, cwd=ROOT, env=env, stdin=null.fileno(), stdout=null.fileno(), stderr=null.fileno()
        )
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not reached():
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def checkpoint_steps(folder) -> list[int]:
    """The steps of the Orbax checkpoints committed in ``folder`` (none when it does not exist)."""
    return sorted(int(d) for d in os.listdir(folder) if d.isdigit()) if os.path.isdir(folder) else []


def assert_same_rows(table_a, table_b, columns) -> None:
    """The two results tables hold exactly the same rows in ``columns`` (in any order)."""
    import pandas as pd

    def tidy(table):
        keys = list(columns[:-1])
        return table[list(columns)].fillna("").sort_values(keys).reset_index(drop=True)

    pd.testing.assert_frame_equal(tidy(table_a), tidy(table_b))


def fabricate_distill_run(folder, arg: str | None = None, *, sets=2, per_class=4, soft=False, seed=0, **changes):
    """A finished distill run's workdir in ``folder``, laid out as the distill experiment leaves it and
    ``data.name = "distilled"`` reads it: ``config.json`` (the tiny config ``arg`` with ``changes``,
    written by ``jaxlth.workdir.claim``) and the artifact ``artifacts/distilled`` (saved by
    ``jaxlth.checkpoint``) = ``{"images": float32 (sets, N, *image_shape) in the real data's units
    (0..255), "labels": int32 (sets, N) classes (``i % K``) or, ``soft``, float32 (sets, N, K) label
    logits, "lr": float32 (sets,)}`` with ``N = per_class * K``. Returns the artifact's arrays."""
    import numpy as np

    from jaxlth import checkpoint, workdir
    from jaxlth.data import input_shapes, tasks
    from jaxlth.data.sources import source_classes
    from jaxlth.layout import Layout

    config = tiny_config(arg, **changes)
    workdir.claim(str(folder), config, lambda saved, current: [])
    shape = input_shapes.example(config.data)[0]
    classes = len(tasks.class_ids(config.data)) or source_classes(config.data)
    n, rng = per_class * classes, np.random.default_rng(seed)
    hard = np.tile(np.arange(n, dtype=np.int32) % classes, (sets, 1))
    arrays = {
        "images": (255 * rng.random((sets, n, *shape))).astype(np.float32),
        "labels": (3 * rng.standard_normal((sets, n, classes))).astype(np.float32) if soft else hard,
        "lr": np.full((sets,), 0.01, np.float32),
    }
    checkpoint.save_artifact(Layout(str(folder)).artifact("distilled"), arrays)
    return arrays


def pytest_collection_modifyitems(config, items):
    """The torture tests (``@pytest.mark.reliability``) run only when asked: ``pytest -m reliability``."""
    if "reliability" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="a reliability torture test: run with pytest -m reliability")
    for item in items:
        if "reliability" in item.keywords:
            item.add_marker(skip)


def pytest_collection_finish(session):
    """Freezes what collecting made (jax, flax, every test module): it lives as long as the worker, and Python's
    full collections, which the tests' tracing triggers again and again, then need not visit it."""
    gc.freeze()
