"""The replicate axis sharded over 8 simulated CPU devices gives the single-device results, and a checkpoint
restores onto those shardings."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, TINY, xla_flags

SCRIPT = r"""
import importlib.util, json, sys, tempfile
import jax, numpy as np
spec = importlib.util.spec_from_file_location("tiny", sys.argv[1]); m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
from jaxlth.training import setup as setup_lib
from jaxlth.analysis import interpolation
from jaxlth import sharding
out = {"devices": jax.device_count()}
if jax.device_count() == 8:  # streamed data: the devices the replicates leave split each batch
    out["stream_meshes"] = [dict(sharding.stream_mesh(r, b).shape) for r, b in ((2, 8), (1, 16), (8, 4), (3, 6))]
for replicates in (8, 6):
    c = m.get_config(); c.replicates = replicates
    s = setup_lib.build(c)
    state = s.init_state()
    state, _ = s.program.train_chunk(state, {}, s.data, 0, num_steps=12)
    kernel = state.params["hidden_0"]["kernel"]
    out[f"shards_{replicates}"] = len(kernel.sharding.device_set)
    out[f"params_{replicates}"] = np.asarray(kernel).tolist()
    net = {"params": state.params, "batch_stats": state.batch_stats}
    other = jax.tree.map(lambda x: x[::-1], net)
    curve = interpolation.interpolate(s.program, net, other, np.linspace(0, 1, 4),
                                      s.data.test_images, s.data.test_labels)
    out[f"error_{replicates}"] = curve["error"].tolist()
    # a checkpoint restores onto the shardings the loop asks for, bitwise
    from jaxlth import checkpoint
    folder = tempfile.mkdtemp()
    saved = checkpoint.Checkpoints(folder); saved.save(12, state); saved.close()
    like = s.place(jax.eval_shape(s.init_state))
    restored, _ = checkpoint.Checkpoints(folder).restore(12, like)
    out[f"restored_{replicates}"] = [
        x.sharding == y.sharding and np.asarray(x).tobytes() == np.asarray(y).tobytes()
        for x, y in zip(jax.tree.leaves(restored), jax.tree.leaves(state))
    ]
print(json.dumps(out))
"""


def run_on(devices: int) -> dict:
    env = dict(
        os.environ, XLA_FLAGS=xla_flags(f"--xla_force_host_platform_device_count={devices}"), JAX_PLATFORMS="cpu"
    )
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, TINY], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_eight_simulated_devices_equal_one():
    one, eight = run_on(1), run_on(8)
    assert one["devices"] == 1 and eight["devices"] == 8
    assert (eight["shards_8"], eight["shards_6"]) == (8, 6)  # the largest divisor of R that fits
    assert one["shards_8"] == 1
    assert eight["stream_meshes"] == [
        {"replica": 2, "batch": 4},
        {"replica": 1, "batch": 8},
        {"replica": 8},
        {"replica": 3},
    ]  # no split of 6 examples over 8 devices: replicates only
    for replicates in (8, 6):
        np.testing.assert_allclose(eight[f"params_{replicates}"], one[f"params_{replicates}"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(eight[f"error_{replicates}"], one[f"error_{replicates}"], atol=1e-6)
        assert all(eight[f"restored_{replicates}"]) and all(one[f"restored_{replicates}"])
