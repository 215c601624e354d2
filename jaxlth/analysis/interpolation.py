"""Evaluating networks along the line between two networks, all alphas in one compiled call.

Networks are ``{"params": ..., "batch_stats": ...}`` pytrees with a leading replicate axis ``R``;
replicate ``r`` of ``a`` is interpolated with replicate ``r`` of ``b``. Parameters and BatchNorm
statistics are interpolated linearly; optionally the statistics are instead recomputed at every
alpha from training batches (the interpolated statistics of two networks rarely suit their
interpolated weights: Frankle et al. 2020 and Paul et al. 2023 recompute them).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax import lax

from jaxlth import rng
from jaxlth.analysis import alignment
from jaxlth.analysis import repair as repair_lib
from jaxlth.analysis.barriers import alpha_grid
from jaxlth.models.init import BN_MOMENTUM
from jaxlth.training import per_replicate
from jaxlth.training import setup as setup_lib
from jaxlth.training.program import Program

PyTree = Any


def _lerp(alpha: jax.Array, a: PyTree, b: PyTree) -> PyTree:
    return jax.tree.map(lambda x, y: ((1.0 - alpha) * x + alpha * y).astype(x.dtype), a, b)


def recompute_batch_stats(program: Program, params: PyTree, batch_stats: PyTree, batches: jax.Array) -> PyTree:
    """BatchNorm statistics of ``params`` averaged over ``batches`` ``(num_batches, B, ...)``.

    Each batch's mean and variance come from a train-mode pass started from zero statistics
    (``running = (1 - momentum) * batch`` then), and the estimates are averaged over batches.
    ``batches`` are raw stored images (uint8 pixels), normalised here like evaluation inputs.
    """
    zeros = jax.tree.map(jnp.zeros_like, batch_stats)

    def one(images):
        _, updates = program.model.apply(
            {"params": params, "batch_stats": zeros}, program.preprocess(images), train=True, mutable=["batch_stats"]
        )
        return jax.tree.map(lambda s: s / (1.0 - BN_MOMENTUM), updates["batch_stats"])

    return jax.tree.map(lambda s: jnp.mean(s, axis=0), lax.map(one, batches))


@functools.partial(jax.jit, static_argnames=("program", "sites"))
def _curve(program: Program, alphas, net_a, net_b, images, labels, bn_batches, repair_images, sites):
    def per_replicate(a, b):
        if repair_images is not None:  # REPAIR's targets: the endpoints' own unit statistics
            x = program.preprocess(repair_images)
            stats_a = repair_lib.statistics(program.model, a["params"], a["batch_stats"], x, sites)
            stats_b = repair_lib.statistics(program.model, b["params"], b["batch_stats"], x, sites)

        def one(alpha):
            params = _lerp(alpha, a["params"], b["params"])
            batch_stats = _lerp(alpha, a["batch_stats"], b["batch_stats"])
            if bn_batches is not None and jax.tree.leaves(batch_stats):
                batch_stats = recompute_batch_stats(program, params, batch_stats, bn_batches)
            if repair_images is not None:
                targets = repair_lib.interpolate_statistics(alpha, stats_a, stats_b)
                params = repair_lib.repair(program.model, params, batch_stats, x, sites, targets)
            return program.evaluate_one(params, batch_stats, images, labels)

        return jax.vmap(one)(alphas)

    return jax.vmap(per_replicate)(net_a, net_b)


def interpolate(
    program: Program,
    net_a: dict,
    net_b: dict,
    alphas,
    images,
    labels,
    *,
    bn_batches=None,
    repair=None,
    chunk_size: int | None = None,
) -> dict[str, np.ndarray]:
    """Loss and error of ``(1 - alpha) a + alpha b`` for every alpha and replicate.

    Args:
      program: the training program of the networks' model (its evaluation is reused).
      net_a, net_b: ``{"params", "batch_stats"}`` with a leading replicate axis.
      alphas: ``(A,)`` coefficients; ``images``, ``labels``: the split to evaluate on.
      bn_batches: ``None``, or ``(num_batches, B, ...)`` training images to recompute BatchNorm
        statistics from at every alpha.
      repair: ``None``, or ``(images, sites)``: REPAIR every interpolated network on these stored
        training images ``(N, ...)`` at these sites (:mod:`jaxlth.analysis.repair`), after any
        BatchNorm recomputation.
      chunk_size: evaluate at most this many alphas per compiled call (memory); default all. Conv
        nets on a CPU (``step_loop="replicates"``) evaluate one network per call: XLA:CPU's
        vmapped convolutions are slow grouped ones (:mod:`jaxlth.training.per_replicate`).

    Returns:
      ``{"loss": (R, A), "accuracy": (R, A), "error": (R, A)}`` numpy arrays.
    """
    alphas = np.asarray(alphas, np.float32)
    repair_images, sites = repair if repair is not None else (None, ())
    alone = program.spec.step_loop == "replicates" and per_replicate.on_one_device((net_a, net_b))
    size = 1 if alone else (len(alphas) if not chunk_size else min(chunk_size, len(alphas)))
    losses, accs = [], []
    for start in range(0, len(alphas), size):
        chunk = alphas[start : start + size]
        padded = np.pad(chunk, (0, size - len(chunk)), mode="edge")  # one program for every chunk

        def curve(a, b, padded=padded):
            return _curve(program, jnp.asarray(padded), a, b, images, labels, bn_batches, repair_images, tuple(sites))

        loss, acc = per_replicate.each(curve, net_a, net_b) if alone else curve(net_a, net_b)
        losses.append(np.asarray(loss)[:, : len(chunk)])
        accs.append(np.asarray(acc)[:, : len(chunk)])
    loss, acc = np.concatenate(losses, axis=1), np.concatenate(accs, axis=1)
    return {"loss": loss, "accuracy": acc, "error": 1.0 - acc}


def bn_batches_from(images: jax.Array, num_batches: int, batch_size: int) -> jax.Array | None:
    """``(num_batches, batch_size, ...)`` unaugmented training images of a fixed random subset
    (the order of :data:`jaxlth.rng.BN_BATCHES`)."""
    if num_batches <= 0:
        return None
    take = rng.fixed_order(rng.BN_BATCHES, images.shape[0])[: num_batches * batch_size]
    return images[take].reshape(num_batches, batch_size, *images.shape[1:])


@dataclasses.dataclass
class Analyzer:
    """Interpolation bound to a run's model and data (see :func:`for_run`)."""

    setup: Any

    def interpolate(
        self,
        net_a: dict,
        net_b: dict,
        alphas=30,
        split: str = "test",
        bn_batches: int = 0,
        align: str = "none",
        align_examples: int = 1024,
        repair_examples: int = 1024,
        chunk_size: int | None = None,
        align_seed: int = 0,
        align_keys=None,
    ) -> dict[str, np.ndarray]:
        """:func:`interpolate` on the run's ``test`` or ``train`` split; ``alphas`` a count or a grid.

        ``align``: an entry of :data:`jaxlth.analysis.alignment.ENTRIES` — B's units permuted to
        A's first (activation matching on ``align_examples`` training images), and with ``+repair``
        REPAIR on ``repair_examples``; the images are the first of the fixed order
        :func:`jaxlth.rng.eval_subset_order` (the instability experiment's). Weight matching visits
        the groups in the orders of ``align_seed`` and, with ``align_keys`` (``(R, K, 2)`` PRNG keys),
        restarts from ``K`` more orders per replicate (:func:`jaxlth.analysis.alignment.match`).
        An aligned ``align`` adds ``"matching_objective"``: ``(R,)`` the objective each matching reached.
        """
        mode, repaired = alignment.parse(align)
        grid = alpha_grid(alphas) if np.isscalar(alphas) else np.asarray(alphas)
        data, program = self.setup.data, self.setup.program
        images, labels = (
            (data.test_images, data.test_labels) if split == "test" else (data.train_images, data.train_labels)
        )
        batches = bn_batches_from(data.train_images, bn_batches, self.setup.config.train.batch_size)
        to_device = functools.partial(jax.tree.map, jnp.asarray)
        net_a, net_b = to_device(net_a), to_device(net_b)
        order = rng.eval_subset_order(data.train_images.shape[0])
        symmetry = alignment.symmetry_of(program, net_a) if (mode != "none" or repaired) else None
        net_b, objectives = alignment.match(
            program, net_a, net_b, mode, symmetry, data.train_images[order[:align_examples]], align_seed, align_keys
        )
        repair = None
        if repaired:
            sites = repair_lib.sites(symmetry.spec, jax.tree.map(lambda x: x[0], net_a["params"]))
            repair = (data.train_images[order[:repair_examples]], sites)
        out = interpolate(
            program, net_a, net_b, grid, images, labels, bn_batches=batches, repair=repair, chunk_size=chunk_size
        )
        return out if objectives is None else dict(out, matching_objective=objectives)


def for_run(run) -> Analyzer:
    """An :class:`Analyzer` for a loaded run (``jaxlth.results.load(workdir)``): loads its data."""
    return Analyzer(setup_lib.build(ml_collections.ConfigDict(run.config)))
