"""How many networks fit on one device: the memory of a run's compiled programs, measured by XLA.

For ``n`` networks on one device (its replicates, or replicates x copies where an experiment
stacks several networks per replicate), a program needs about ``shared + n * per_network`` bytes
there (a :class:`Line`; a :class:`Footprint` holds training's and evaluation's). ``shared`` is what
the device holds once whatever ``n`` (the dataset, fixed buffers); ``per_network`` what each
network adds (parameters, batch statistics, optimizer state, mask, the activations of its batch;
in training also one more copy of its state, as experiments keep a rewind point). Both are
measured, not modelled: the training chunk and the test evaluation are lowered and compiled for 1
and 2 networks from abstract shapes (nothing is allocated or run), and XLA's memory analysis gives
what each program needs (arguments + outputs + temporaries - donated aliases). Conv nets on a CPU
train and evaluate one network at a time (``step_loop="replicates"``): the programs are one
network's, and each network adds what :meth:`Program.held_bytes` counts beside them (its state,
mask and their copies), not its activations.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp

from jaxlth.pruning import masks as mask_lib
from jaxlth.training.program import DeviceData

HEADROOM = 0.9  # the fraction of a device's free memory a run is planned to use (fragmentation, small buffers)


@dataclasses.dataclass(frozen=True)
class Line:
    """Bytes one device needs for ``n`` networks of one program: ``shared + n * per_network``."""

    shared: int
    per_network: int

    def bytes_for(self, networks: int) -> int:
        return self.shared + networks * self.per_network

    def most(self, available: int) -> int:
        """The most networks one device of ``available`` free bytes holds (``HEADROOM`` of it used)."""
        usable = int(HEADROOM * available) - self.shared
        return max(0, usable // max(1, self.per_network))

    @classmethod
    def through(cls, one: int, two: int) -> "Line":
        """The line through the bytes of 1 and 2 networks."""
        per_network = max(1, two - one)
        return cls(shared=max(0, one - per_network), per_network=per_network)


@dataclasses.dataclass(frozen=True)
class Footprint:
    """One device's memory for training (with one more kept copy of each state) and for evaluation."""

    training: Line
    evaluation: Line

    def bytes_for(self, replicates: int, widths: tuple[int, int] = (1, 1)) -> int:
        """Bytes for ``replicates`` on one device, ``widths`` = (trained, evaluated) networks per replicate."""
        return max(self.training.bytes_for(replicates * widths[0]), self.evaluation.bytes_for(replicates * widths[1]))

    def most(self, available: int, widths: tuple[int, int] = (1, 1)) -> int:
        """The most replicates one device of ``available`` free bytes holds."""
        return min(
            self.training.most(available) // max(1, widths[0]), self.evaluation.most(available) // max(1, widths[1])
        )


def program_bytes(compiled) -> int:
    """What a compiled program needs on its device: arguments + outputs + temporaries - aliases."""
    m = compiled.memory_analysis()
    if m is None:
        raise RuntimeError("XLA gives no memory analysis for this backend")
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes)


def abstract(tree):
    """``tree`` as ``jax.ShapeDtypeStruct`` leaves without shardings (one device's programs)."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(jnp.shape(x), x.dtype), tree)


def state_bytes(tree) -> int:
    return sum(int(x.size) * x.dtype.itemsize for x in jax.tree.leaves(tree))


def networks_bytes(program, data, networks: int, *, num_steps: int, layers_to_ignore=()) -> tuple[int, int]:
    """``(training, evaluation)``: bytes one device needs to train (keeping one more copy of each
    state, as experiments keep a rewind point) and to evaluate ``networks`` networks with ``program``
    on ``data`` (a :class:`~jaxlth.training.program.DeviceData` or a stream)."""
    keys = jax.ShapeDtypeStruct((networks, 2), jnp.uint32)
    state = jax.eval_shape(program.init, keys, keys)
    mask = jax.eval_shape(lambda p: mask_lib.ones_like(p, layers_to_ignore), state.params)
    data = abstract(data) if isinstance(data, DeviceData) else data  # a stream stays: its programs take batches
    training = program_bytes(program.lower_training(state, mask, data, num_steps=num_steps).compile())
    evaluation = program_bytes(program.lower_evaluation(state.params, state.batch_stats, data).compile())
    networks = (state.params, state.batch_stats)
    training += program.held_bytes((state, mask), state) + state_bytes(state)
    return training, evaluation + program.held_bytes(networks, ())


def measure(program, data, *, num_steps: int, layers_to_ignore=()) -> Footprint:
    """The :class:`Footprint` of ``program`` on ``data``, from its programs compiled for 1 and 2 networks.

    ``num_steps``: the steps of one chunk (its data orders are held on the device while it runs)."""
    (train_1, eval_1), (train_2, eval_2) = (
        networks_bytes(program, data, n, num_steps=num_steps, layers_to_ignore=layers_to_ignore) for n in (1, 2)
    )
    return Footprint(Line.through(train_1, train_2), Line.through(eval_1, eval_2))


def free_bytes(device=None) -> int:
    """The memory one device offers now: its allocator's limit less what is in use (GPU, TPU), or on a
    CPU the machine's physical memory shared by its CPU devices."""
    device = device or jax.local_devices()[0]
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return physical // max(1, jax.local_device_count(device.platform))


def describe_bytes(count: int) -> str:
    """``"1.5 GiB"``, ``"310 MiB"``, ``"12 KiB"``."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:.3g} {unit}" if unit == "GiB" else f"{count / size:,.0f} {unit}"
    return f"{count} B"
