"""The replicates' keys: one compiled program, bitwise the keys of ``fold_in(PRNGKey(seed + r), stream)``."""

import jax
import numpy as np
import pytest

from jaxlth import rng


def formula(seed: int, replicates: int, number: int) -> np.ndarray:
    return np.stack([np.asarray(jax.random.fold_in(jax.random.PRNGKey(seed + r), number)) for r in range(replicates)])


@pytest.mark.parametrize(
    "seed, replicates, stream",
    [
        (0, 4, rng.INIT),
        (7, 3, rng.DATA),
        (-3, 5, 11),  # negative seeds, as PRNGKey takes them
        (2**31 - 3, 2, rng.branch_stream("random_reinit", 5)),  # the last int32 seeds, a hashed stream
        (123456, 1, 0x7FFFFFFF),
    ],
)
def test_replicate_keys_are_the_formulas_keys(seed, replicates, stream):
    number = stream.at() if isinstance(stream, rng.Stream) else stream
    keys = rng.replicate_keys(seed, replicates, stream)
    assert keys.shape == (replicates, 2) and keys.dtype == np.uint32
    np.testing.assert_array_equal(np.asarray(keys), formula(seed, replicates, number))


def test_seeds_past_int32_take_the_formulas_path():
    keys = rng.replicate_keys(2**31 - 1, 3, rng.INIT)
    np.testing.assert_array_equal(np.asarray(keys), formula(2**31 - 1, 3, rng.INIT.at()))


def test_every_seed_and_stream_shares_one_program():
    rng.replicate_keys(0, 3, rng.INIT)
    before = rng._replicate_keys._cache_size()
    rng.replicate_keys(5, 3, rng.DATA)
    rng.replicate_keys(9, 3, 12345)
    assert rng._replicate_keys._cache_size() == before
