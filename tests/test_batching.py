import jax
import jax.numpy as jnp
import numpy as np

from jaxlth.data import batching


def test_each_epoch_is_a_permutation_and_epochs_differ():
    key = jax.random.PRNGKey(3)
    n, b = 100, 7  # 14 steps per epoch, 2 examples dropped
    epoch0 = np.concatenate([batching.indices_at(key, s, n, b) for s in range(14)])
    epoch1 = np.concatenate([batching.indices_at(key, s, n, b) for s in range(14, 28)])
    for e in (epoch0, epoch1):
        assert len(e) == 98 and len(set(e.tolist())) == 98 and e.min() >= 0 and e.max() < n
    assert not np.array_equal(epoch0, epoch1)


def test_batch_is_a_pure_function_of_key_and_step():
    key = jax.random.PRNGKey(0)
    a = batching.indices_at(key, 37, 1000, 32)
    b = jax.jit(batching.indices_at, static_argnums=(2, 3))(key, jnp.int32(37), 1000, 32)
    np.testing.assert_array_equal(a, b)
    other = batching.indices_at(jax.random.PRNGKey(1), 37, 1000, 32)
    assert not np.array_equal(a, other)


def test_augment_key_depends_on_step_only_through_fold_in():
    key = jax.random.PRNGKey(0)
    assert not np.array_equal(batching.augment_key(key, 1), batching.augment_key(key, 2))
    np.testing.assert_array_equal(batching.augment_key(key, 5), batching.augment_key(key, 5))


def test_chunk_permutations_give_the_same_batches_as_from_scratch():
    key = jax.random.PRNGKey(5)
    n, b = 50, 8  # 6 steps per epoch
    start, num_steps = 7, 9  # steps 7..15 touch epochs 1 and 2
    perms = batching.chunk_permutations(key, start // 6, batching.epochs_touched(num_steps, 6), n)
    for step in range(start, start + num_steps):
        np.testing.assert_array_equal(
            batching.chunk_batch_indices(perms, start // 6, step, b, 6), batching.indices_at(key, step, n, b)
        )
