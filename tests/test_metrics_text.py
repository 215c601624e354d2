"""GLUE's metrics (jaxlth.training.metrics) against hand counts and scipy, jitted and vmapped."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxlth.training import metrics

PRED = np.array([1, 1, 0, 0, 1, 0, 1, 1, 0, 0], np.int32)
TRUE = np.array([1, 0, 0, 1, 1, 0, 1, 0, 0, 0], np.int32)
# by hand: tp = 3 (0, 4, 6), fp = 2 (1, 7), fn = 1 (3), tn = 4 (2, 5, 8, 9)


def test_accuracy_f1_and_mcc_by_hand():
    assert float(metrics.accuracy(PRED, TRUE)) == pytest.approx(0.7)
    assert float(metrics.f1(PRED, TRUE)) == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))
    expected = (3 * 4 - 2 * 1) / np.sqrt((3 + 2) * (3 + 1) * (4 + 2) * (4 + 1))
    assert float(metrics.mcc(PRED, TRUE)) == pytest.approx(expected, rel=1e-6)


def test_undefined_metrics_are_zero():
    zeros = np.zeros(6, np.int32)
    assert float(metrics.f1(zeros, zeros)) == 0.0  # nothing predicted or labelled positive
    assert float(metrics.mcc(zeros, np.array([0, 1, 0, 1, 1, 0]))) == 0.0  # one predicted class only
    assert float(metrics.mcc(TRUE, TRUE)) == pytest.approx(1.0)
    assert float(metrics.mcc(1 - TRUE, TRUE)) == pytest.approx(-1.0)
    assert float(metrics.pearson(np.full(5, 2.0), np.arange(5.0))) == 0.0


def test_pearson_and_spearman_match_scipy_with_ties():
    rng = np.random.default_rng(0)
    labels = np.round(rng.uniform(0, 5, 200) * 2) / 2  # STS-B-like scores with many ties
    preds = (labels + rng.normal(0, 1, 200)).astype(np.float32)
    preds[:40] = np.round(preds[:40])  # ties in the predictions too
    assert float(metrics.pearson(preds, labels)) == pytest.approx(stats.pearsonr(preds, labels)[0], abs=1e-5)
    assert float(metrics.spearman(preds, labels)) == pytest.approx(stats.spearmanr(preds, labels)[0], abs=1e-5)
    np.testing.assert_allclose(metrics.ranks(np.array([3.0, 1.0, 3.0, 2.0, 3.0])), [4, 1, 4, 2, 4])
    np.testing.assert_allclose(metrics.ranks(labels), stats.rankdata(labels))


def test_metrics_jit_and_vmap_over_replicates():
    rng = np.random.default_rng(1)
    preds, labels = rng.integers(0, 2, (3, 50)), rng.integers(0, 2, (3, 50))
    scores, truth = rng.normal(size=(3, 50)).astype(np.float32), rng.normal(size=(3, 50)).astype(np.float32)
    for name, fn in metrics.METRICS.items():
        a, b = (scores, truth) if name in ("pearson", "spearman") else (preds, labels)
        batched = jax.jit(jax.vmap(fn))(a, b)
        assert batched.shape == (3,) and batched.dtype == jnp.float32
        np.testing.assert_allclose(batched, [fn(x, y) for x, y in zip(a, b)], rtol=1e-5, atol=1e-6)


def test_task_metrics_and_predictions():
    out = metrics.task_metrics(("accuracy", "f1"), PRED, TRUE)
    assert list(out) == ["accuracy", "f1"] and float(out["accuracy"]) == pytest.approx(0.7)
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.task_metrics(("bleu",), PRED, TRUE)
    logits = jnp.array([[0.1, 2.0], [3.0, -1.0]])
    assert metrics.predicted(logits, "classify").tolist() == [1, 0]
    assert metrics.predicted(jnp.array([[2.5], [4.0]]), "regress").tolist() == [2.5, 4.0]
