"""Fuzzing the Gymnasium adapters' actions: any dtype, shape or value either steps with exactly that slate or
raises the documented InvalidActionError. Never a crash inside JAX, never a silently different slate.

Hypothesis draws actions (derandomised: the same cases every run): Python ints, floats, bools, strings, None,
lists (ragged too), and NumPy arrays of random shape and dtype, with values in and out of range.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from synthetic import synthetic_env

from rlrec.envs.gym import InvalidActionError, RecGymEnv, RecVectorEnv

ITEMS = 12
SINGLE = synthetic_env("MovieLens-Bandit-v0", items=ITEMS)
SLATE = synthetic_env("MovieLens-BanditSlate-v0", items=ITEMS, slate_size=3)
NUM_ENVS = 2

scalars = st.one_of(
    st.integers(-3, ITEMS + 3),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
    st.complex_numbers(max_magnitude=20),
)
dtypes = st.one_of(hnp.integer_dtypes(), hnp.unsigned_integer_dtypes(), hnp.floating_dtypes(), hnp.boolean_dtypes())
arrays = hnp.arrays(dtypes, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
integer_arrays = hnp.arrays(
    st.sampled_from([np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]),
    st.sampled_from([(), (1,), (2,), (3,), (4,), (2, 3), (NUM_ENVS,), (NUM_ENVS, 3)]),
    elements=st.integers(0, ITEMS + 2),
)
actions = st.one_of(
    scalars,
    st.lists(scalars, max_size=4),
    st.lists(st.lists(st.integers(-1, ITEMS), max_size=3), max_size=3),  # often ragged
    arrays,
    integer_arrays,
)


def _expected_slate(action, slate_size, batch=None, distinct=False):
    """What a valid action means, computed independently: its integer values, or None if it is invalid.

    A slate may repeat an item (it is shown once) unless ``distinct`` (``strict_slates=True``)."""
    try:
        array = np.asarray(action)
    except (ValueError, TypeError, OverflowError):
        return None
    if array.dtype == bool or not np.issubdtype(array.dtype, np.integer):
        return None
    one = () if slate_size == 1 else (slate_size,)  # the shape of one slate
    shape = one if batch is None else (batch, *one)
    if slate_size == 1 and batch is None and array.shape == (1,):
        array = array.reshape(())
    if array.shape != shape:
        return None
    values = array.astype(object)
    if any(v < 0 or v >= ITEMS for v in np.ravel(values)):
        return None
    if distinct and slate_size > 1 and any(
        len(set(row)) < slate_size for row in values.reshape(-1, slate_size).tolist()
    ):
        return None
    return array.astype(np.int64)


GYM = {"single": RecGymEnv(functional=SINGLE), "slate": RecGymEnv(functional=SLATE),
       "strict-slate": RecGymEnv(functional=SLATE, strict_slates=True)}
VECTOR = {"single": RecVectorEnv(functional=SINGLE, num_envs=NUM_ENVS),
          "slate": RecVectorEnv(functional=SLATE, num_envs=NUM_ENVS),
          "strict-slate": RecVectorEnv(functional=SLATE, num_envs=NUM_ENVS, strict_slates=True)}
FUZZ = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("kind", sorted(GYM))
@FUZZ
@given(action=actions)
def test_gym_env_steps_exactly_the_action_or_raises_invalid_action(kind, action):
    env = GYM[kind]
    env.reset(seed=0)
    expected = _expected_slate(action, env.env.slate_size, distinct=env.strict_slates)
    if expected is None:
        with pytest.raises(InvalidActionError):
            env.step(action)
        return
    obs, reward, terminated, truncated, info = env.step(action)
    assert np.array_equal(np.asarray(env._last["action"]), expected)
    assert np.array_equal(obs["history_items"][-1], np.atleast_1d(expected))  # the slate the user was shown
    assert np.isfinite(reward) and np.isfinite(info["regret"])


@pytest.mark.parametrize("kind", sorted(VECTOR))
@FUZZ
@given(action=actions)
def test_vector_env_steps_exactly_the_actions_or_raises_invalid_action(kind, action):
    envs = VECTOR[kind]
    envs.reset(seed=0)
    expected = _expected_slate(action, envs.env.slate_size, batch=NUM_ENVS, distinct=envs.strict_slates)
    if expected is None:
        with pytest.raises(InvalidActionError):
            envs.step(action)
        return
    obs, rewards, *_ = envs.step(action)
    assert np.array_equal(obs["history_items"][:, -1].reshape(expected.shape), expected)
    assert np.isfinite(rewards).all()
