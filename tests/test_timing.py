"""Where a run spends its time (jaxlth/timing.py): exclusive phases on a fake clock, the compilation
counter on JAX's events, a run's ``took`` line and ``timing.json``, and ``python -m jaxlth.bench overhead``."""

import contextlib
import json
import os
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import pytest

from jaxlth import experiments, timing
from tests.conftest import ROOT, tiny_config


def test_phases_are_exclusive_and_compilation_leaves_the_phase_that_asked():
    now = [10.0]
    phases = timing.Phases(clock=lambda: now[0])
    now[0] += 1.0  # start-up: in no phase
    phases.step()
    with phases("training"):
        now[0] += 2.0
        with phases("rows"):  # a phase inside another pauses it
            now[0] += 0.5
        now[0] += 1.0
        phases.on_duration(timing.COMPILED, 0.75)  # compiled while training: compilation, not training
        phases.on_event(timing.CACHE_HIT)
        phases.on_duration("/jax/some/other_duration", 5.0)  # not a compilation
    phases.step()  # only the first step ends start-up
    with phases("evaluation"):
        now[0] += 0.25
        elsewhere = threading.Thread(target=phases.on_duration, args=(timing.COMPILED, 0.1))
        elsewhere.start()  # another thread's compilation: not the evaluation's time
        elsewhere.join()
    now[0] += 1.0
    summary = phases.summary()
    assert summary["phases"] == {
        "training": 2.25,
        "evaluation": 0.25,
        "checkpoints": 0.0,
        "rows": 0.5,
        "figures": 0.0,
        "compilation": pytest.approx(0.85),
    }
    assert summary["total"] == 5.75 and summary["start_up"] == 1.0
    assert summary["other"] == pytest.approx(5.75 - 2.25 - 0.25 - 0.5 - 0.85)
    assert (summary["compiled"], summary["loaded"]) == (1, 1)
    assert timing.line(summary) == (
        "took 5.8 s: training 2.2 s (39%), evaluation 0.2 s, checkpoints 0.0 s, rows 0.5 s, figures 0.0 s, "
        "compilation 0.8 s, start-up 1.0 s; 1 programs compiled, 1 loaded from the cache"
    )


def test_the_counter_counts_a_fresh_compilation_and_a_cache_hit(tmp_path):
    from jax.experimental.compilation_cache import compilation_cache

    settings = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    saved = {name: getattr(jax.config, name) for name in settings}
    compilation_cache.reset_cache()
    jax.config.update("jax_compilation_cache_dir", str(tmp_path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    x = np.arange(7, dtype=np.float32)
    try:
        phases = timing.Phases()
        with phases.listening():
            jax.jit(lambda v: v * 3.25 + 1.5)(x).block_until_ready()  # compiled, written to the cache
            jax.clear_caches()
            jax.jit(lambda v: v * 3.25 + 1.5)(x).block_until_ready()  # loaded from it
        assert (phases.programs - phases.loaded, phases.loaded) == (1, 1)
        jax.jit(lambda v: v - 1)(x)  # after the block: not counted
        assert phases.programs == 2
    finally:
        compilation_cache.reset_cache()
        for name, value in saved.items():
            jax.config.update(name, value)


def test_a_run_prints_where_its_time_went_and_writes_timing_json(tmp_path, capsys):
    workdir = tmp_path / "w"
    experiments.run(tiny_config(**{"train.steps": "8it"}), str(workdir))
    out = capsys.readouterr().out
    took = [line for line in out.splitlines() if line.startswith("took ")]
    assert len(took) == 1 and "programs compiled" in took[0] and "training" in took[0], out
    assert out.rstrip().endswith(took[0])  # the last line, after the report
    summary = json.loads((workdir / "timing.json").read_text())
    assert set(summary["phases"]) == set(timing.PHASES)
    assert all(seconds >= 0 for seconds in summary["phases"].values()), summary
    assert summary["phases"]["training"] > 0 and summary["phases"]["checkpoints"] > 0
    assert 0 < summary["start_up"] < summary["total"]
    assert summary["compiled"] + summary["loaded"] > 0


@pytest.mark.slow
def test_the_overhead_benchmark_prints_its_table():
    proc = subprocess.run(
        [sys.executable, "-m", "jaxlth.bench", "overhead", "--data", "synthetic", "--epochs", "1", "--cases", "train"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| LeNet recipe, 1 epoch |")]
    assert [row.split(" | ")[1] for row in rows] == ["cold", "warm"], proc.stdout
    for row in rows:
        cells = row.strip("| ").split(" | ")
        compiled, loaded = (int(n) for n in cells[4].split(" / "))
        assert compiled + loaded > 0 and float(cells[-1]) > 1  # the whole process takes longer than its training


@contextlib.contextmanager
def compilation_cache_in(folder, max_size: int):
    """JAX's persistent compilation cache in ``folder`` with size limit ``max_size`` (-1: none), keeping every
    program; the caller's settings are back afterwards."""
    from jax.experimental.compilation_cache import compilation_cache

    settings = {
        "jax_compilation_cache_dir": str(folder),
        "jax_persistent_cache_min_compile_time_secs": 0.0,
        "jax_compilation_cache_max_size": max_size,
    }
    saved = {name: getattr(jax.config, name) for name in settings}
    try:
        compilation_cache.reset_cache()
        for name, value in settings.items():
            jax.config.update(name, value)
        yield
    finally:
        compilation_cache.reset_cache()
        for name, value in saved.items():
            jax.config.update(name, value)


def test_a_cache_folder_written_without_a_size_limit_still_takes_new_programs(tmp_path):
    # An entry written with JAX's default (no size limit) has no access-time file; with a limit set, JAX's
    # eviction reads one for every entry before each write, so without the backfill no program was ever
    # written to such a folder again (a warm run kept compiling its training chunk).
    x = np.arange(5, dtype=np.float32)

    def entries(suffix):
        return sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(suffix))

    with compilation_cache_in(tmp_path, max_size=-1):
        jax.jit(lambda v: v * 1.75 - 0.5)(x).block_until_ready()
        assert len(entries("-cache")) == 1 and entries("-atime") == []
    with compilation_cache_in(tmp_path, max_size=1 << 30):
        assert experiments.backfill_access_times(str(tmp_path)) == 1
        assert experiments.backfill_access_times(str(tmp_path)) == 0
        (atime,) = entries("-atime")
        stamp = int.from_bytes((tmp_path / atime).read_bytes(), "little")
        assert stamp == (tmp_path / atime.replace("-atime", "-cache")).stat().st_mtime_ns
        jax.jit(lambda v: v * 2.25 + 0.5)(x).block_until_ready()  # another program: written beside it
        assert len(entries("-cache")) == 2 and len(entries("-atime")) == 2


def test_the_suites_cache_drops_the_entries_not_read_for_days_before_the_last_read(tmp_path):
    """tests/conftest.py keeps the suite's cache to what runs still read: JAX scans every entry before each
    write. Entries JAX wrote with a size limit (an access-time file each): one read four days before the last
    read, one never stamped (its modification time counts), and the last read a week ago (kept: the window
    ends at the last read, not today)."""
    from tests.conftest import drop_unread_cache_entries

    x = np.arange(5, dtype=np.float32)
    with compilation_cache_in(tmp_path, max_size=1 << 30):
        for scale in (1.5, 2.5, 3.5):
            jax.jit(lambda v, s=scale: v * s - 0.25)(x).block_until_ready()
    stamps = sorted(tmp_path.glob("*-atime"))
    assert len(stamps) == 3 and len(list(tmp_path.glob("*-cache"))) == 3
    last = time.time() - 7 * 86400
    old, unstamped, recent = stamps
    recent.write_bytes(int(last * 1e9).to_bytes(8, "little"))
    old.write_bytes(int((last - 4 * 86400) * 1e9).to_bytes(8, "little"))
    unstamped.unlink()
    os.utime(tmp_path / unstamped.name.replace("-atime", "-cache"), (last - 3 * 86400, last - 3 * 86400))
    assert drop_unread_cache_entries(str(tmp_path), days=2) == 2
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == sorted(
        [recent.name, recent.name.replace("-atime", "-cache")]
    )
    assert drop_unread_cache_entries(str(tmp_path), days=2) == 0
