"""How many replicates fit: XLA's memory analysis of the compiled programs, and the choice made from it."""

import jax
import numpy as np
import pytest

from jaxlth.errors import UserError
from jaxlth.experiments import registry, replicates
from jaxlth.training import memory
from jaxlth.training import setup as setup_lib
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def tiny():
    setup = setup_lib.build(tiny_config())
    footprint = memory.measure(setup.program, setup.data, num_steps=5, layers_to_ignore=("output",))
    return setup, footprint


def test_the_line_through_one_and_two_networks_predicts_more(tiny):
    setup, footprint = tiny
    for n in (4, 8):
        training, evaluation = memory.networks_bytes(
            setup.program, setup.data, n, num_steps=5, layers_to_ignore=("output",)
        )
        assert training == pytest.approx(footprint.training.bytes_for(n), rel=0.01)
        assert evaluation <= 1.01 * footprint.evaluation.bytes_for(n)  # never under-estimated


def test_a_network_costs_at_least_its_state_twice_and_the_data_is_shared(tiny):
    setup, footprint = tiny
    state = setup.program.init(*(jax.numpy.zeros((1, 2), jax.numpy.uint32),) * 2)
    assert footprint.training.per_network >= 2 * memory.state_bytes(state)  # the program's and the kept copy
    data = setup.data  # each program's split is held once, whatever the number of networks
    assert footprint.training.shared >= data.train_images.nbytes + data.train_labels.nbytes
    assert footprint.evaluation.shared >= data.test_images.nbytes + data.test_labels.nbytes


def test_lines_and_footprints_count_exactly():
    line = memory.Line(shared=100, per_network=10)
    assert line.most(1000) == 80  # 90% of 1000, less 100 shared, in tens
    assert line.most(50) == 0
    footprint = memory.Footprint(training=line, evaluation=memory.Line(shared=0, per_network=2))
    assert footprint.most(1000, widths=(2, 30)) == 15  # evaluation of 30 networks per replicate binds
    assert footprint.bytes_for(3, widths=(2, 30)) == 180
    assert memory.Line.through(250, 400) == memory.Line(shared=100, per_network=150)


def test_free_bytes_of_a_device_that_reports_its_memory_and_of_a_cpu():
    class Chip:
        platform = "tpu"

        def memory_stats(self):
            return {"bytes_limit": 16 * 2**30, "bytes_in_use": 2**30}

    assert memory.free_bytes(Chip()) == 15 * 2**30
    import os

    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert memory.free_bytes(jax.devices("cpu")[0]) == physical // jax.local_device_count("cpu")


def test_the_choice_follows_the_memory_and_the_device_count(tiny, monkeypatch):
    _, footprint = tiny
    config = tiny_config()
    room = int((footprint.training.bytes_for(5) + 1) / memory.HEADROOM)  # room for 5 networks in training
    monkeypatch.setattr(memory, "free_bytes", lambda device=None: room)
    small = replicates.choose(config, wanted=8)
    assert small.most == 5 and small.replicates == 5 and "the 8 asked for do not fit" in small.describe()
    assert replicates.choose(config, wanted=3).replicates == 3
    monkeypatch.setattr(jax, "device_count", lambda: 2)  # 2 devices, each holding 5: a multiple of 2
    assert replicates.choose(config, wanted=7).replicates == 6
    assert replicates.choose(config).replicates == 2  # default: one per device, at least 2
    monkeypatch.setattr(memory, "free_bytes", lambda device=None: 2**10)
    with pytest.raises(
        UserError,
        match=r"^one replicate of lenet .* more than 90% of the 1 KiB free on cpu \(the "
        r"share a run is planned in\): lower train\.batch_size",
    ):
        replicates.choose(config)


def test_stacked_networks_per_replicate_divide_what_fits(tiny, monkeypatch):
    monkeypatch.setattr(memory, "free_bytes", lambda device=None: 2**30)
    config = tiny_config("instability")
    assert registry.get("instability").widths(config) == (2, 5)  # 2 copies trained, 5 alphas evaluated at once
    choice = replicates.choose(config)
    assert choice.most == choice.footprint.most(2**30, (2, 5)) < replicates.choose(tiny_config()).most
    assert np.isclose(choice.footprint.training.per_network, tiny[1].training.per_network, rtol=0.01)


def test_a_conv_net_looped_on_the_host_counts_the_activations_of_its_batch():
    from jaxlth.bench import conv_speed as conv

    program = conv.program_for("conv2", 512, batch_size=16)  # one compiled step per call on a CPU
    footprint = memory.measure(program, conv.cifar_shaped(512, 64), num_steps=3)
    keys = jax.ShapeDtypeStruct((1, 2), jax.numpy.uint32)
    state = memory.state_bytes(jax.eval_shape(program.init, keys, keys))
    first_activations = 16 * 32 * 32 * 64 * 4  # Conv-2's first 64-channel feature map, kept for the backward pass
    alone = program.spec.step_loop == "replicates"  # on a CPU one network at a time: its activations once
    assert footprint.training.per_network >= 2 * state + (0 if alone else first_activations)
    assert footprint.training.shared >= (first_activations if alone else 0)
