"""TensorBoard event files written and read back without TensorFlow: one run per folder.

:class:`TensorBoard` is the ``log.tensorboard`` writer of :mod:`jaxlth.watching`: it is fed
``(run path, tag, step, value)`` points and appends them, as scalar events, to one event file per
run path and process (tensorboardX's protocol buffers, TFRecord framing; the file is opened, appended
and closed at every batch: no thread, no open file). Before a run path is first written, its event
files are read back (:func:`read_events`) and a ``(tag, step)`` they hold is not written again, so
a resumed run continues its TensorBoard runs without a duplicate point.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from itertools import count
from typing import Callable, Sequence

from jaxlth import storage

EVENTS = "events.out.tfevents"  # TensorBoard reads the files whose names hold "tfevents"
_files = count()  # distinguishes the event files one process starts in the same second


class TensorBoard:
    """Event files under ``folder`` (a local folder): a TensorBoard run per run path."""

    def __init__(self, folder: str):
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.record_writer import masked_crc32c
        from tensorboardX.summary import scalar

        if not storage.is_local(folder):
            raise RuntimeError("TensorBoard event files are written into local workdirs only")
        self.folder, self.event, self.crc, self.scalar = folder, Event, masked_crc32c, scalar
        self.held: dict[tuple, set] = {}  # run path -> the (tag, step) its event files hold
        self.files: dict[tuple, str] = {}  # run path -> the event file this object appends to

    def rows(self, found: list) -> None:
        by_run: dict[tuple, list] = {}
        for path, name, step, value in found:
            by_run.setdefault(path, []).append((name, step, value))
        now = time.time()
        for path, items in by_run.items():
            held, events = self._held(path), []
            for name, step, value in items:
                if (name, step) not in held:
                    held.add((name, step))
                    events.append(self.event(wall_time=now, step=step, summary=self.scalar(name, value)))
            if events:
                self._append(path, events)

    def figures(self, paths: Sequence[str]) -> None:
        pass

    def close(self, failed: bool = False) -> None:
        pass

    def _held(self, path: tuple) -> set:
        if path not in self.held:
            folder = os.path.join(self.folder, *path)
            names = sorted(n for n in os.listdir(folder) if EVENTS in n) if os.path.isdir(folder) else []
            self.held[path] = {
                (value.tag, event.step)
                for name in names
                for event in read_events(os.path.join(folder, name), self.event, self.crc)
                for value in event.summary.value
            }
        return self.held[path]

    def _append(self, path: tuple, events: list) -> None:
        if path not in self.files:
            folder = os.path.join(self.folder, *path)
            os.makedirs(folder, exist_ok=True)
            name = f"{EVENTS}.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{next(_files)}"
            self.files[path] = os.path.join(folder, name)
            events = [self.event(wall_time=time.time(), file_version="brain.Event:2"), *events]
        with open(self.files[path], "ab") as f:
            f.write(b"".join(self._framed(e.SerializeToString()) for e in events))

    def _framed(self, data: bytes) -> bytes:
        """One TFRecord: length, its masked CRC-32C, the data, its masked CRC-32C (little-endian)."""
        header = struct.pack("<Q", len(data))
        return header + struct.pack("<I", self.crc(header)) + data + struct.pack("<I", self.crc(data))


def read_events(path: str, event: Callable, crc: Callable) -> list:
    """The events of a TFRecord file, up to the first record cut short or damaged (a kill mid-write)."""
    with open(path, "rb") as f:
        data = f.read()
    out, at = [], 0
    while at + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[at : at + 8])
        body = data[at + 12 : at + 12 + length]
        if len(body) < length or at + 16 + length > len(data):
            break
        if struct.unpack("<I", data[at + 12 + length : at + 16 + length])[0] != crc(body):
            break
        out.append(event.FromString(body))
        at += 16 + length
    return out
