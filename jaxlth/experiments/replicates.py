"""How many replicates to run on these devices: from the device count and the devices' memory.

:func:`choose` measures one config's footprint (:mod:`jaxlth.training.memory`: XLA's memory
analysis of its training and evaluation programs, compiled from shapes for 1 and 2 networks),
multiplies it by the networks the experiment stacks per replicate (``Experiment.widths``), and
finds the most replicates the devices hold. Notebooks use it for their default; anyone may ask it
before a long run.
"""

from __future__ import annotations

import dataclasses

import jax

from jaxlth import fields
from jaxlth.errors import UserError
from jaxlth.experiments import registry
from jaxlth.training import hyper, memory
from jaxlth.training import setup as setup_lib


@dataclasses.dataclass(frozen=True)
class Choice:
    """``replicates``: the number chosen; ``most``: the most the devices hold; ``widths``: networks per
    replicate (trained, evaluated); ``free``: bytes free on one device; ``footprint``: one device's
    bytes for ``n`` networks."""

    replicates: int
    most: int
    wanted: int
    widths: tuple[int, int]
    devices: int
    free: int
    footprint: memory.Footprint

    def describe(self) -> str:
        """One line: the choice, and the memory behind it."""
        f, (trained, evaluated) = self.footprint, self.widths
        per = "" if self.widths == (1, 1) else f", {trained} networks trained and {evaluated} evaluated per replicate"
        text = (
            f"{self.replicates} replicate(s); the {self.devices} device(s) hold up to {self.most}{per} "
            f"(a network: {memory.describe_bytes(f.training.per_network)} in training, "
            f"{memory.describe_bytes(f.evaluation.per_network)} in evaluation; "
            f"{memory.describe_bytes(self.free)} free per device)"
        )
        if self.wanted > self.most:
            text += f"; the {self.wanted} asked for do not fit"
        return text


def choose(config, dataset=None, wanted: int | None = None, widths: tuple[int, int] = (1, 1)) -> Choice:
    """The replicates to run ``config`` with on ``jax.devices()``: ``wanted`` (default one per device,
    at least 2 for a spread over replicates) or, when fewer fit, the most that do; a multiple of the
    device count whenever at least that many fit, so that every device trains the same number.

    ``dataset``: the loaded dataset (else loaded from ``config.data``). ``widths``: networks per
    replicate (trained, evaluated) to plan for beyond the experiment's own, for a run whose
    replicates a later, wider run on it shares (an instability analysis of a lottery run). Raises
    :class:`~jaxlth.errors.UserError` when not even one replicate fits on a device."""
    devices = jax.device_count()
    wanted = max(2, devices) if wanted is None else int(wanted)
    if wanted < 1:
        raise UserError(f"wanted replicates must be positive, got {wanted}")
    settings = hyper.grid(config.train).size  # a hyper-parameter sweep multiplies every stack by its settings
    own = [settings * w for w in registry.of_config(config).widths(config)]
    widths = tuple(max(1, int(a), int(b)) for a, b in zip(own, widths))
    free = memory.free_bytes()  # before the probe below puts its copy of the dataset on the device
    probe = config.copy_and_resolve_references()
    probe.replicates = 1
    for field, value in hyper.grid(config.train).settings[0].items():  # a network: one setting's
        fields.set_field(probe, f"train.{field}", value)
    setup = setup_lib.build(probe, dataset)
    steps = min(setup.eval_every, setup.total_steps, setup.chunk_every or setup.total_steps)
    footprint = memory.measure(
        setup.program, setup.data, num_steps=max(1, steps), layers_to_ignore=setup_lib.ignored_layers(config)
    )
    per_device = footprint.most(free, widths)
    if per_device < 1:
        raise UserError(
            f"one replicate of {config.model.name} ({max(widths)} network(s), batch {config.train.batch_size}) needs "
            f"{memory.describe_bytes(footprint.bytes_for(1, widths))} on a device, more than "
            f"{memory.HEADROOM:.0%} of the {memory.describe_bytes(free)} free on {jax.devices()[0].device_kind} (the "
            "share a run is planned in): lower train.batch_size or eval_batch_size, or use a device with more memory"
        )
    most = per_device * devices
    chosen = min(wanted, most)
    if chosen >= devices:
        chosen -= chosen % devices
    chosen -= chosen % jax.process_count()
    return Choice(
        replicates=max(chosen, jax.process_count()),
        most=most,
        wanted=wanted,
        widths=widths,
        devices=devices,
        free=free,
        footprint=footprint,
    )
