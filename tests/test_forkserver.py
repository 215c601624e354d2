"""The tests' fork server (tests/forkserver.py): a forked process behaves as ``python -m MODULE`` would."""

import os
import signal
import textwrap
import time

import pytest

from tests import forkserver
from tests.conftest import xla_flags

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="fork servers need os.fork")

CHILD = """
import atexit, os, sys

import jax

atexit.register(lambda: print("atexit ran", flush=True))
print("argv", sys.argv[1:], "cwd", os.getcwd() == sys.argv[1], "main", __name__)
print("devices", len(jax.devices()), "x64", jax.config.jax_enable_x64)
print("env", os.environ.get("FORK_TEST_VALUE"), file=sys.stderr)
if sys.argv[2] == "raise":
    raise RuntimeError("boom")
if sys.argv[2] == "sleep":
    import time

    print("sleeping", flush=True)
    time.sleep(60)
sys.exit(int(sys.argv[2]))
"""


def run(tmp_path, *args, **env_changes):
    """``python -m forkchild ARGS`` in ``tmp_path`` through the fork server (or a fresh interpreter where it
    refuses): ``(returncode, stdout, stderr, forked)``."""
    (tmp_path / "forkchild.py").write_text(textwrap.dedent(CHILD))
    env = dict(os.environ, FORK_TEST_VALUE="seen", **env_changes)
    out, err = tmp_path / "out", tmp_path / "err"
    with open(os.devnull, "rb") as null, open(out, "wb") as o, open(err, "wb") as e:
        proc = forkserver.start(
            "forkchild", [str(tmp_path), *args], cwd=str(tmp_path), env=env, stdin=null.fileno(),
            stdout=o.fileno(), stderr=e.fileno(),
        )  # fmt: skip
        forked = isinstance(proc, forkserver.Forked)
        code = proc.wait(120)
    return code, out.read_text(), err.read_text(), forked


def test_a_forked_process_gets_its_arguments_folder_environment_and_exit_status(tmp_path):
    code, out, err, forked = run(tmp_path, "3", XLA_FLAGS=xla_flags("--xla_force_host_platform_device_count=3"))
    assert forked
    assert code == 3
    assert f"argv ['{tmp_path}', '3'] cwd True main __main__" in out
    assert "devices 3 x64 False" in out  # XLA_FLAGS are read when the backend starts, in the fork
    assert "atexit ran" in out and "env seen" in err


def test_an_uncaught_exception_prints_its_traceback_and_exits_1(tmp_path):
    code, out, err, forked = run(tmp_path, "raise")
    assert forked and code == 1
    assert "Traceback (most recent call last)" in err and "RuntimeError: boom" in err
    assert "atexit ran" in out


def test_a_killed_process_reports_the_signal(tmp_path):
    (tmp_path / "forkchild.py").write_text(textwrap.dedent(CHILD))
    out = tmp_path / "out"
    with open(os.devnull, "rb") as null, open(out, "wb") as o:
        proc = forkserver.start(
            "forkchild", [str(tmp_path), "sleep"], cwd=str(tmp_path), env=dict(os.environ), stdin=null.fileno(),
            stdout=o.fileno(), stderr=o.fileno(),
        )  # fmt: skip
        deadline = time.time() + 60
        while "sleeping" not in out.read_text() and time.time() < deadline:
            assert proc.poll() is None
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(60) == -signal.SIGKILL


def test_a_variable_read_at_import_makes_it_a_fresh_interpreter(tmp_path):
    code, out, err, forked = run(tmp_path, "0", JAX_ENABLE_X64="1")
    assert not forked
    assert code == 0 and "x64 True" in out
