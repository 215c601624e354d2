"""One run over several processes (jax.distributed, gloo CPU collectives) equals one process with
the same devices: 2 processes x 2 simulated CPU devices against 1 process x 4, bitwise; a killed
process and a restart of both resume bitwise; bad launches end in one sentence."""

import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from tests.conftest import ROOT, TINY, xla_flags

pytestmark = pytest.mark.slow

# One IMP level: every path of a lottery run (artifacts, masks, rewinding, checkpoints, rows), kept short
# (a control branch trains through the same code as the level).
FLAGS = ["--config.replicates=4", "--config.lottery.levels=1", "--config.lottery.branches=()"]


def env(devices: int) -> dict:
    return dict(
        os.environ,
        XLA_FLAGS=xla_flags(f"--xla_force_host_platform_device_count={devices}"),
        JAX_PLATFORMS="cpu",
        JAXLTH_HEARTBEAT_TIMEOUT="10",
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(workdir, *extra) -> list[str]:
    return [
        sys.executable,
        "-m",
        "jaxlth.main",
        "--config",
        f"{TINY}:lottery",
        "--workdir",
        str(workdir),
        *FLAGS,
        *extra,
    ]


def start_processes(workdir, *extra, count: int = 2) -> list[subprocess.Popen]:
    """``count`` processes of 2 devices each, joined through a coordinator on a free local port."""
    port = free_port()
    return [
        subprocess.Popen(
            command(
                workdir,
                "--distributed",
                f"--coordinator=127.0.0.1:{port}",
                f"--num_processes={count}",
                f"--process_id={i}",
                *extra,
            ),
            cwd=ROOT,
            env=env(2),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]


def finish(procs: list[subprocess.Popen]) -> list[tuple[int, str, str]]:
    outputs = [p.communicate(timeout=600) for p in procs]
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs)]


def one_process(workdir) -> None:
    proc = subprocess.run(command(workdir), cwd=ROOT, env=env(4), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr


def artifact(workdir, name: str) -> dict:
    from jaxlth import checkpoint

    return checkpoint.load_artifact(os.path.join(workdir, "artifacts", name))


def assert_same_run(a, b) -> None:
    """Bitwise the same results and the same final networks."""
    assert open(os.path.join(a, "results.csv")).read() == open(os.path.join(b, "results.csv")).read()
    for name in ("imp/level_00/final", "imp/level_01/final", "imp/level_01/mask"):
        x, y = artifact(a, name), artifact(b, name)
        assert jax.tree.structure(x) == jax.tree.structure(y)
        for u, v in zip(jax.tree.leaves(x), jax.tree.leaves(y)):
            np.testing.assert_array_equal(u, v)


def test_two_processes_killed_and_restarted_equal_one(tmp_path):
    """Process 1 is killed once the first checkpoint of the dense network is committed; JAX stops
    process 0 when process 1's heartbeats stop. Restarting both resumes from the checkpoints and ends
    bitwise where one process of four devices ends (an uninterrupted two-process run is the special
    case of a restart with nothing to resume: it runs the same programs)."""
    one_process(tmp_path / "one")

    killed = tmp_path / "killed"
    procs = start_processes(killed)
    level = killed / "checkpoints" / "imp" / "level_00"
    deadline = time.time() + 300
    while not (level.is_dir() and any(p.isdigit() for p in os.listdir(level))):
        assert time.time() < deadline and procs[0].poll() is None, "the run ended before its first checkpoint"
        time.sleep(0.05)
    procs[1].send_signal(signal.SIGKILL)
    procs[0].wait(timeout=120)
    assert procs[0].returncode != 0
    finish(procs)
    assert not (killed / "finished.json").exists()

    outcomes = finish(start_processes(killed))
    for rc, out, err in outcomes:
        assert rc == 0, err
    (_, primary, _), (_, other, _) = outcomes
    assert "4 x cpu in 2 processes, replicates sharded over 4 devices" in primary
    assert "final test accuracy" in primary and "final test accuracy" not in other  # process 0 alone reports
    assert sorted(os.listdir(killed)) == sorted(os.listdir(tmp_path / "one"))
    assert_same_run(tmp_path / "one", killed)


def test_replicates_must_split_over_the_processes(tmp_path):
    for rc, out, err in finish(start_processes(tmp_path / "w", "--config.replicates=3")):
        assert rc == 2
        assert err.strip().splitlines()[-1] == (
            "jaxlth: error: replicates=3 cannot be split over 2 processes: choose a multiple of 2"
        )
        assert "Traceback" not in err
    assert not (tmp_path / "w" / "config.json").exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--coordinator=127.0.0.1:1234"], "--coordinator, --num_processes and --process_id need --distributed"),
        (
            ["--distributed", "--coordinator=127.0.0.1:1234", "--num_processes=2"],
            "--coordinator, --num_processes and --process_id go together",
        ),
        (
            ["--distributed", "--coordinator=127.0.0.1:1234", "--num_processes=2", "--process_id=2"],
            "--process_id 2 is not one of 0 .. 1 (--num_processes)",
        ),
    ],
)
def test_bad_launch_flags_are_one_sentence(tmp_path, flags, message):
    proc = subprocess.run(
        command(tmp_path / "w", *flags), cwd=ROOT, env=env(1), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"jaxlth: error: {message}") and "Traceback" not in proc.stderr
    assert not (tmp_path / "w").exists()
