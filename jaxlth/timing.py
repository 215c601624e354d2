"""Where a run spends its time: wall seconds per phase, and the XLA programs it compiled or loaded.

A :class:`Phases` belongs to one run (its :class:`~jaxlth.experiments.context.Context`); the code
that trains, evaluates, saves or writes says which phase it is in (``with phases("training"): ...``).
Phases are exclusive: one entered inside another pauses it (a row written while evaluating counts as
rows). Nothing is synchronised for the measurement: a phase ends where the code it wraps already
waits for the device (the training loop fetches every chunk's metrics), so it costs no speed.

While :meth:`Phases.listening`, JAX's monitoring events count the programs compiled and those loaded
from the persistent compilation cache; their seconds (lowering and compiling or loading, not tracing)
are moved from the phase that asked for them into ``compilation``, so ``training`` is the training.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Callable, Iterator

PHASES = ("training", "evaluation", "checkpoints", "rows", "figures", "compilation")
COMPILED = "/jax/core/compile/backend_compile_duration"  # every program compiled or loaded from the cache
LOWERED = "/jax/core/compile/jaxpr_to_mlir_module_duration"
CACHE_HIT = "/jax/compilation_cache/cache_hits"


def process_age() -> float | None:
    """Seconds since this process started (Linux's ``/proc``); ``None`` where that cannot be read."""
    try:
        with open("/proc/self/stat") as f:
            stat = f.read()
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        started = int(stat.rpartition(")")[2].split()[19])  # field 22, starttime, in clock ticks after boot
        return max(0.0, uptime - started / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


class Phases:
    """Exclusive wall seconds per phase since ``origin`` (a ``clock()`` reading; default: now)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter, origin: float | None = None):
        self.clock = clock
        self.origin = clock() if origin is None else origin
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self.first_step: float | None = None  # when the first training chunk was started
        self.programs = 0  # XLA programs compiled or loaded from the persistent cache
        self.loaded = 0  # of which loaded from the cache
        self._stack: list[str] = []
        self._since = 0.0
        self._thread = threading.get_ident()

    @classmethod
    def since_process_start(cls) -> Phases:
        """Phases whose origin is when this process started (now where that is unknown)."""
        age = process_age()
        now = time.perf_counter()
        return cls(origin=None if age is None else now - age)

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        """Counts the time inside the block as ``name`` (minus phases entered inside it)."""
        self._switch()
        self._stack.append(name)
        try:
            yield
        finally:
            self._switch()
            self._stack.pop()

    def _switch(self) -> None:
        now = self.clock()
        if self._stack:
            top = self._stack[-1]
            self.seconds[top] = self.seconds.get(top, 0.0) + now - self._since
        self._since = now

    def step(self) -> None:
        """Marks the start of a training chunk (the first one ends start-up)."""
        if self.first_step is None:
            self.first_step = self.clock()

    # ----- compilations -----------------------------------------------------------------------------
    def on_duration(self, event: str, duration: float, **_) -> None:
        if event not in (COMPILED, LOWERED):
            return
        self.programs += event == COMPILED
        self.seconds["compilation"] += duration
        if self._stack and threading.get_ident() == self._thread:
            self.seconds[self._stack[-1]] -= duration  # it was inside that phase: not its own time

    def on_event(self, event: str, **_) -> None:
        self.loaded += event == CACHE_HIT

    @contextlib.contextmanager
    def listening(self) -> Iterator[Phases]:
        """Counts the programs compiled and loaded inside the block (JAX's monitoring events)."""
        from jax import monitoring

        monitoring.register_event_duration_secs_listener(self.on_duration)
        monitoring.register_event_listener(self.on_event)
        try:
            yield self
        finally:
            for unregister, listener in (
                (monitoring.unregister_event_duration_listener, self.on_duration),
                (monitoring.unregister_event_listener, self.on_event),
            ):
                with contextlib.suppress(AssertionError, ValueError):  # gone already: clear_event_listeners()
                    unregister(listener)

    # ----- the summary ------------------------------------------------------------------------------
    def summary(self) -> dict:
        """Seconds so far: ``total``, each phase, ``other`` (in none), ``start_up`` (to the first
        training chunk; ``None`` without training), and the programs ``compiled`` and ``loaded``."""
        now = self.clock()
        seconds = dict(self.seconds)
        if self._stack:  # a phase still open: what it has so far
            seconds[self._stack[-1]] += now - self._since
        total = now - self.origin
        return {
            "total": total,
            "phases": seconds,
            "other": total - sum(seconds.values()),
            "start_up": None if self.first_step is None else self.first_step - self.origin,
            "compiled": self.programs - self.loaded,
            "loaded": self.loaded,
        }


def line(summary: dict) -> str:
    """``took 41.2 s: training 33.0 s (80%), evaluation 3.1 s, ...; 17 programs compiled, 12 loaded from the cache``."""
    total, seconds = summary["total"], summary["phases"]
    share = f" ({100 * seconds['training'] / total:.0f}%)" if total > 0 else ""
    parts = [f"training {seconds['training']:.1f} s{share}"]
    parts += [f"{name} {seconds[name]:.1f} s" for name in PHASES[1:]]
    if summary["start_up"] is not None:
        parts.append(f"start-up {summary['start_up']:.1f} s")
    programs = f"{summary['compiled']} programs compiled, {summary['loaded']} loaded from the cache"
    return f"took {total:.1f} s: {', '.join(parts)}; {programs}"
