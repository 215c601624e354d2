"""The loss and error over the 2-D plane through three networks (Garipov et al. 2018, Fig. 1; the
planes of Frankle et al. 2020 and Fort & Jastrzebski 2019 are drawn the same way).

The plane through ``theta_0, theta_1, theta_2`` (every parameter leaf; BatchNorm statistics are not
coordinates) has the orthonormal basis of Gram-Schmidt on ``u = theta_1 - theta_0`` and
``v = theta_2 - theta_0``: ``e_1 = u / |u|``, ``e_2`` = ``v`` minus its ``e_1`` component, normalised (the
projection applied twice, for orthogonality in float32). Coordinates ``(a, b)`` are distances along
``e_1`` and ``e_2`` (parameter L2 units), ``theta_0`` at ``(0, 0)``, ``theta_1`` at ``(|u|, 0)`` and
``theta_2`` at ``(<v, e_1>, |v'|)`` with ``b > 0``.

The network at ``(a, b)`` is evaluated as the affine combination ``w_0 theta_0 + w_1 theta_1 + w_2 theta_2``
of its barycentric weights (``w_0 + w_1 + w_2 = 1``; ``= theta_0 + a e_1 + b e_2``): at each network's
coordinates the weights are exactly one-hot, so the plane's corners are the networks themselves, bit for
bit (their losses, evaluated vmapped over points, equal each network's own evaluation to float32 rounding:
XLA may order a reduction differently in the batched program). BatchNorm statistics are combined with the
same weights (as :mod:`.interpolation` interpolates them), or recomputed at every point from training
batches (``bn_batches``).

Masks: each network's pruned weights are zeros (as saved), so every point of the plane is zero where
all three are, and three networks of one mask (a ticket's rewind point and two trained copies) span a
plane inside that mask's subspace exactly. ``masks`` (stacked) are applied to all three first, for
networks whose pruned weights were not zeroed. Points of different masks lie in the union's subspace.

Everything is stacked over replicates ``R`` (replicate ``r`` of each network spans plane ``r``) and
evaluated in one compiled program per chunk of grid points (``jax.vmap`` over points and replicates).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxlth import rng
from jaxlth.analysis import interpolation as interp
from jaxlth.analysis.plane_geometry import barycentric, basis, check_plane, grid, scales, stacked_basis
from jaxlth.errors import UserError
from jaxlth.pruning import masks as mask_lib
from jaxlth.training import per_replicate
from jaxlth.training import setup as setup_lib

PyTree = Any


@dataclasses.dataclass(frozen=True)
class Plane:
    """A measured plane (numpy; ``R`` replicates, ``G`` points per axis, errors as fractions, loss in nats).

    ``a``, ``b``: ``(R, G)`` the grid's coordinates along ``e_1`` and ``e_2``; ``loss``, ``error``:
    ``(R, G, G)``, entry ``[r, i, j]`` at ``(a[r, j], b[r, i])`` (rows along ``b``: matplotlib's
    ``contourf(a, b, values)``); ``points``: ``(R, 3, 2)`` the three networks' coordinates;
    ``point_loss``, ``point_error``: ``(R, 3)`` their own values, evaluated at their coordinates;
    ``split``: what was evaluated."""

    a: np.ndarray
    b: np.ndarray
    loss: np.ndarray
    error: np.ndarray
    points: np.ndarray
    point_loss: np.ndarray
    point_error: np.ndarray
    split: str = "test"


def _combine(weights: jax.Array, x: PyTree, y: PyTree, z: PyTree) -> PyTree:
    return jax.tree.map(lambda p, q, s: (weights[0] * p + weights[1] * q + weights[2] * s).astype(p.dtype), x, y, z)


@functools.partial(jax.jit, static_argnames="program")
def _surface(program, weights, net0, net1, net2, images, labels, bn_batches):
    def per_replicate_fn(w, a, b, c):
        def one(mix):
            params = _combine(mix, a["params"], b["params"], c["params"])
            batch_stats = _combine(mix, a["batch_stats"], b["batch_stats"], c["batch_stats"])
            if bn_batches is not None and jax.tree.leaves(batch_stats):
                batch_stats = interp.recompute_batch_stats(program, params, batch_stats, bn_batches)
            return program.evaluate_one(params, batch_stats, images, labels)

        return jax.vmap(one)(w)

    return jax.vmap(per_replicate_fn)(weights, net0, net1, net2)


def evaluate(program, weights, net0, net1, net2, images, labels, bn_batches=None, chunk_size=64):
    """``(loss (R, P), accuracy (R, P))`` of the networks ``sum_k weights[r, p, k] net_k[r]``, ``chunk_size``
    points per compiled call (the last chunk padded: one program); conv nets on a CPU one network per
    call, as :func:`jaxlth.analysis.interpolation.interpolate` does."""
    weights = np.asarray(weights, np.float32)
    alone = program.spec.step_loop == "replicates" and per_replicate.on_one_device((net0, net1, net2))
    total = weights.shape[1]
    size = 1 if alone else min(int(chunk_size or total), total)
    losses, accs = [], []
    for start in range(0, total, size):
        chunk = weights[:, start : start + size]
        padded = jnp.asarray(np.pad(chunk, ((0, 0), (0, size - chunk.shape[1]), (0, 0)), mode="edge"))

        def surface(w, a, b, c):
            return _surface(program, w, a, b, c, images, labels, bn_batches)

        stacked = (padded, net0, net1, net2)
        loss, acc = per_replicate.each(surface, *stacked) if alone else surface(*stacked)
        losses.append(np.asarray(loss)[:, : chunk.shape[1]])
        accs.append(np.asarray(acc)[:, : chunk.shape[1]])
    return np.concatenate(losses, axis=1), np.concatenate(accs, axis=1)


def _as_network(net: Any) -> dict:
    """``{"params", "batch_stats"}`` of a network or of bare parameters (no BatchNorm statistics)."""
    if isinstance(net, dict) and "params" in net:
        return {"params": net["params"], "batch_stats": net.get("batch_stats", {}) or {}}
    return {"params": net, "batch_stats": {}}


def _broadcast(net: dict, count: int) -> dict:
    """A one-replicate network repeated ``count`` times (one network shared by every replicate's plane)."""
    if per_replicate.count(net["params"]) != 1 or count == 1:
        return net
    return jax.tree.map(lambda x: jnp.repeat(x, count, axis=0), net)


def check_networks(nets: list[dict]) -> None:
    """One sentence unless the three networks have the same structure and shapes."""
    shapes = [jax.tree.map(np.shape, n) for n in nets]
    for k in (1, 2):
        if jax.tree.structure(nets[k]) != jax.tree.structure(nets[0]) or shapes[k] != shapes[0]:
            raise UserError(
                f"networks 0 and {k} differ in structure or shapes: a plane needs three networks of one model"
            )


def plane(
    program,
    net0: dict,
    net1: dict,
    net2: dict,
    images,
    labels,
    *,
    resolution: int = 21,
    margin: float = 0.25,
    masks: PyTree | None = None,
    bn_batches=None,
    chunk_size: int | None = 64,
    split: str = "test",
) -> Plane:
    """Loss and error over the plane through three networks, each replicate's own plane.

    Args:
      program: the networks' training program (its evaluation is used).
      net0, net1, net2: ``{"params", "batch_stats"}`` (or bare params) with a leading replicate axis
        (one of a single replicate is shared by every replicate's plane, e.g. a common rewind point).
      images, labels: the split evaluated; ``resolution``: grid points per axis (>= 2); ``margin``:
        beyond the points, a fraction of their larger span; ``masks``: stacked masks applied to all
        three networks first (``None``: as given); ``bn_batches``: ``None`` or training images
        ``(num_batches, B, ...)`` to recompute BatchNorm statistics from at every point.
    """
    if int(resolution) < 2 or not margin >= 0:
        raise UserError(f"a plane needs resolution >= 2 and margin >= 0, got {resolution} and {margin}")
    nets = [jax.tree.map(jnp.asarray, _as_network(n)) for n in (net0, net1, net2)]
    count = max(per_replicate.count(n["params"]) for n in nets)
    nets = [_broadcast(n, count) for n in nets]
    check_networks(nets)
    if masks is not None:
        nets = [dict(n, params=mask_lib.apply(n["params"], jax.tree.map(jnp.asarray, masks))) for n in nets]
    _, _, points = stacked_basis(*(n["params"] for n in nets))
    points = np.asarray(points)
    check_plane(points, np.asarray(scales(nets[0]["params"], nets[2]["params"])))
    a, b = grid(points, int(resolution), float(margin))
    replicates, g = a.shape
    shape = (replicates, g, g)
    ab = np.stack([np.broadcast_to(a[:, None, :], shape), np.broadcast_to(b[:, :, None], shape)], axis=-1)
    query = np.concatenate([ab.reshape(replicates, g * g, 2), points], axis=1)  # the grid, then the three networks
    loss, acc = evaluate(program, barycentric(points, query), *nets, images, labels, bn_batches, chunk_size)
    return Plane(
        a=a,
        b=b,
        loss=loss[:, : g * g].reshape(shape),
        error=1.0 - acc[:, : g * g].reshape(shape),
        points=points,
        point_loss=loss[:, g * g :],
        point_error=1.0 - acc[:, g * g :],
        split=split,
    )


def _stack(net: dict, reference: PyTree) -> dict:
    """``net`` with a leading replicate axis (added when its parameters have the model's own ranks)."""
    leaf, ref = jax.tree.leaves(net["params"])[0], jax.tree.leaves(reference)[0]
    return jax.tree.map(lambda x: np.asarray(x)[None], net) if np.ndim(leaf) == len(ref.shape) - 1 else net


def through(
    run,
    net0,
    net1,
    net2,
    *,
    split: str = "test",
    examples: int = 0,
    resolution: int = 21,
    margin: float = 0.25,
    masks: PyTree | None = None,
    bn_batches: int = 0,
    chunk_size: int | None = 64,
) -> Plane:
    """:func:`plane` on the model and data of a loaded run (``jaxlth.results.load(workdir)``; or an
    :class:`~jaxlth.analysis.interpolation.Analyzer` from ``jaxlth.analysis.for_run(run)``, whose data
    is then not loaded again), through three networks of that model from any runs, e.g.
    ``run.network(3)``, ``run.network(3, which="rewind")``, ``other.network(3)``: stacked replicates, or
    one replicate's (``replicate=0``). ``split``: ``test``, or ``train`` (``examples`` > 0: the first
    of the fixed order instability's ``train`` split takes, :func:`jaxlth.rng.eval_subset_order`);
    ``bn_batches``: recompute BatchNorm statistics at every point from this many training batches;
    ``masks``: stacked, or one mask for every replicate (``run.mask(3, replicate=0)``)."""
    if isinstance(run, interp.Analyzer):
        setup = run.setup
    else:
        setup = setup_lib.build(ml_collections.ConfigDict(run.config))
    if split not in ("test", "train"):
        raise UserError(f"a plane is measured on the 'test' or 'train' split, not {split!r}")
    data = setup.data
    if split == "test":
        images, labels = data.test_images, data.test_labels
    else:
        take = rng.eval_subset_order(data.train_images.shape[0])[: int(examples) or data.train_images.shape[0]]
        images, labels = data.train_images[take], data.train_labels[take]
    shapes = jax.eval_shape(setup.init_state).params  # stacked: the replicate axis first
    nets = [_stack(_as_network(n), shapes) for n in (net0, net1, net2)]
    batches = interp.bn_batches_from(data.train_images, int(bn_batches), setup.config.train.batch_size)
    return plane(
        setup.program,
        *nets,
        images,
        labels,
        resolution=resolution,
        margin=margin,
        masks=masks,
        bn_batches=batches,
        chunk_size=chunk_size,
        split=split,
    )


__all__ = ["Plane", "barycentric", "basis", "check_networks", "check_plane", "evaluate", "grid", "plane", "through"]
