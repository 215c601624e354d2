"""``python -m MODULE ARGS`` for the tests, forked from a process that has already imported the libraries.

A command-line test pays ~1.4 s (2-core CPU) to import jax, flax, optax, Orbax, matplotlib and pandas before
the run starts; the suite starts ~190 such processes. One server per pytest worker imports them once
(:data:`PRELOAD`) and never starts JAX's backend (no XLA threads exist to be lost in a fork): each process
is a fork of it that takes the test's argv, environment, working folder and standard streams, then runs the
module as ``python -m`` would (``runpy``), its exit status, uncaught traceback and atexit handlers included.
A process is forked only when the environment variables read at import time (``JAX_*``, ``MPL*``, ``TF_*``,
``PYTHON*`` but ``PYTHONUNBUFFERED``) are the server's; otherwise, and where ``os.fork`` or Unix sockets are
missing, it is a fresh interpreter, as are the tests of start-up itself (``tests/test_imports.py``) and of
processes that talk to each other (``tests/test_processes.py``). ``JAXLTH_TESTS_FORK=0`` turns it off.

The server forks a small waiter per process, which forks the process and reports its pid and exit status
over the request's socket; the server itself only accepts requests, so it never has a child to wait for.
"""

from __future__ import annotations

import atexit
import gc
import io
import json
import os
import runpy
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRELOAD = (
    "numpy",
    "jax",
    "jax.numpy",
    "flax.linen",
    "optax",
    "orbax.checkpoint",
    "ml_collections",
    "absl.app",
    "matplotlib.figure",
    "matplotlib.backends.backend_agg",
    "pandas",
    "PIL.Image",
    # what jaxlth.main imports, not jaxlth.main itself: run as __main__ it defines its flags again
    "jaxlth.experiments",
    "jaxlth.experiments.recipes",
    "jaxlth.experiments.registry",
    "jaxlth.experiments.replicates",
    "jaxlth.fields",
    "jaxlth.processes",
    "jaxlth.training.hyper",
)
KEPT = ("PYTHONUNBUFFERED",)  # read when the interpreter starts, set again in the fork


def import_time_env(env: dict) -> dict:
    """The variables of ``env`` that a library reads when it is imported (jax's config, matplotlib, ...)."""
    prefixes = ("JAX_", "MPL", "TF_", "PYTHON")
    return {k: v for k, v in env.items() if k.startswith(prefixes) and k not in KEPT}


# ----- the server ----------------------------------------------------------------------------------------
def serve(path: str) -> dict:
    """Imports :data:`PRELOAD`, listens on the Unix socket ``path`` and forks a waiter per request. Returns
    only in a forked process: the request it is to run (its streams already in place)."""
    for name in PRELOAD:
        __import__(name)
    from jax._src import xla_bridge

    assert not xla_bridge._backends, "a preloaded module started JAX's backend; forking it is unsafe"
    _draw_a_figure()
    gc.freeze()  # every run would otherwise visit the preloaded modules' objects in each full collection
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the waiters are reaped by the kernel
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    parent = os.getppid()
    while True:
        if not select.select([server], [], [], 1.0)[0]:
            if os.getppid() != parent:  # the pytest worker is gone
                os._exit(0)
            continue
        conn, _ = server.accept()
        message, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
        while not message.endswith(b"\n"):
            message += conn.recv(1 << 16)
        request = json.loads(message.decode())
        if os.fork() == 0:  # the waiter
            server.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            pid = os.fork()
            if pid == 0:
                conn.close()
                return dict(request, fds=fds)
            for fd in fds:
                os.close(fd)
            conn.sendall(f"pid {pid}\n".encode())
            _, status = os.waitpid(pid, 0)
            conn.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
            os._exit(0)
        conn.close()
        for fd in fds:
            os.close(fd)


def _draw_a_figure() -> None:
    """Draws a small figure with text, a legend and a log axis, so that the runs find matplotlib's fonts loaded
    and its text layout warm (~0.1 s of a run's first figure). Agg only: no thread, nothing to fork badly."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2, 2), layout="constrained")
    ax = figure.add_subplot()
    ax.plot([1, 10], [0, 1], label="a")
    ax.set(xscale="log", title="a $b$", xlabel="c")
    ax.legend()
    FigureCanvasAgg(figure).draw()


def _take_streams(fds, unbuffered: bool) -> None:
    """Makes ``fds`` (stdin, stdout, stderr) this process's standard streams, buffered as a fresh interpreter
    buffers them (``unbuffered``: as with ``PYTHONUNBUFFERED``)."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    encoding = sys.stdout.encoding
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding)
    for fd, name in ((1, "stdout"), (2, "stderr")):
        raw = io.FileIO(fd, "w", closefd=False)
        errors = "backslashreplace" if fd == 2 else "strict"
        binary = raw if unbuffered else io.BufferedWriter(raw)
        stream = io.TextIOWrapper(binary, encoding, errors, line_buffering=fd == 2, write_through=unbuffered)
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def run_request(request: dict) -> None:
    """Runs the request in this forked process as ``python -m MODULE ARGS`` would."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    _take_streams(request["fds"], bool(request["env"].get("PYTHONUNBUFFERED")))
    sys.path[0] = request["cwd"]
    sys.argv = ["-m", *request["args"]]
    runpy._run_module_as_main(request["module"], alter_argv=True)


# ----- the client ----------------------------------------------------------------------------------------
_server: dict = {}


def _ensure_server() -> str | None:
    """The socket of this process's server, started on first use; ``None`` where it cannot run."""
    if not hasattr(os, "fork") or not hasattr(socket, "send_fds") or os.environ.get("JAXLTH_TESTS_FORK") == "0":
        return None
    if _server.get("pid") == os.getpid() and _server["proc"].poll() is None:
        return _server["path"]
    folder = tempfile.mkdtemp(prefix="jaxlth-fork-")
    path = os.path.join(folder, "socket")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.forkserver", path],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    atexit.register(_stop, proc, folder)
    if proc.stdout.readline().strip() != "ready":
        return None
    _server.update(pid=os.getpid(), proc=proc, path=path, env=import_time_env(dict(os.environ)))
    return path


def _stop(proc: subprocess.Popen, folder: str) -> None:
    """Stops the server and deletes its socket's folder (the processes it forked run on)."""
    proc.kill()
    proc.wait()
    shutil.rmtree(folder, ignore_errors=True)


class Forked:
    """A process forked by the server, with the parts of :class:`subprocess.Popen`'s interface the tests use."""

    def __init__(self, conn: socket.socket):
        self._conn, self._buffer, self.returncode = conn, b"", None
        started = self._read_line(60)  # a fork takes milliseconds: a server that does not answer is broken
        if started is None:
            raise RuntimeError("the fork server did not start the process within 60 s")
        self.pid = int(started.split()[1])

    def _read_line(self, timeout: float | None) -> str | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([self._conn], [], [], left)[0]:
                return None
            chunk = self._conn.recv(4096)
            if not chunk:
                raise RuntimeError("the fork server went away")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def poll(self) -> int | None:
        if self.returncode is None:
            line = self._read_line(0)
            if line is not None:
                self.returncode = int(line.split()[1])
                self._conn.close()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            line = self._read_line(timeout)
            if line is None:
                raise subprocess.TimeoutExpired("forked", timeout)
            self.returncode = int(line.split()[1])
            self._conn.close()
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def start(module: str, args, *, cwd: str, env: dict, stdin: int, stdout: int, stderr: int):
    """``python -m module args`` with the file descriptors ``stdin``, ``stdout``, ``stderr`` as its streams:
    a :class:`Forked` process, or a :class:`subprocess.Popen` of a fresh interpreter where it must be one
    (see the module's docstring)."""
    path = _ensure_server()
    if path is None or import_time_env(env) != _server["env"]:
        command = [sys.executable, "-m", module, *args]
        return subprocess.Popen(command, cwd=cwd, env=env, stdin=stdin, stdout=stdout, stderr=stderr)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(path)
    request = {"module": module, "args": list(args), "cwd": cwd, "env": env}
    socket.send_fds(conn, [json.dumps(request).encode() + b"\n"], [stdin, stdout, stderr])
    return Forked(conn)


if __name__ == "__main__":
    run_request(serve(sys.argv[1]))
