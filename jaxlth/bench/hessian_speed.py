"""``python -m jaxlth.bench landscape``: curvature measurements of LeNet-300-100 (see :mod:`jaxlth.bench`)."""

from __future__ import annotations

import jax

from jaxlth import models
from jaxlth.analysis import curvature
from jaxlth.bench.harness import LenetBench, best_times, fashion_mnist_sized


def landscape_seconds(bench: LenetBench, replicates: int, repeats: int) -> dict:
    """Best times of one vmapped HVP, top-20 Lanczos and a 100-probe trace (compiled ahead of time)."""
    params, data = bench.state(replicates).params, bench.data
    loss = curvature.subset_loss(bench.program, {}, data.test_images, data.test_labels, "eval", 1000)
    dim = models.param_count(jax.tree.map(lambda x: x[0], params))
    keys = jax.random.split(jax.random.PRNGKey(0), replicates)
    vectors = jax.random.normal(jax.random.PRNGKey(1), (replicates, dim))
    operator = lambda p: curvature.flat_operator(loss, p)[0]  # noqa: E731
    calls = {
        "hvp": (lambda p, v: operator(p)(v), vectors),
        "top": (lambda p, k: curvature.top_eigenpairs(operator(p), dim, k, 20, 60).values, keys),
        "trace": (lambda p, k: curvature.hutchinson_trace(operator(p), dim, k, 100), keys),
    }
    runs = {}
    for name, (f, arg) in calls.items():
        compiled = jax.jit(jax.vmap(f)).lower(params, arg).compile()
        runs[name] = lambda c=compiled, a=arg: jax.block_until_ready(c(params, a))
    return best_times(runs, repeats)


def suite(args) -> None:
    bench = LenetBench(fashion_mnist_sized(num_train=10_000), 128)
    print(
        f"\n| curvature, LeNet-300-100, 10,000 examples (best of {args.repeats}) | HVP call | HVPs/s "
        "(all replicates) | top-20 eigenvalues (60 Lanczos steps) | Hutchinson trace (100 probes) |"
        "\n|---|---|---|---|---|"
    )
    for r in (1, 4):
        t = landscape_seconds(bench, r, args.repeats)
        print(
            f"| {r} replicate(s) vmapped | {1e3 * t['hvp']:.0f} ms ({1e3 * t['hvp'] / r:.0f} ms per replicate) | "
            f"{r / t['hvp']:.1f} | {t['top']:.2f} s | {t['trace']:.2f} s |"
        )
