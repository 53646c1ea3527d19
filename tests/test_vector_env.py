"""``gymnasium.make_vec("rlrec/<id>")``: Gymnasium's vector-env contract on every MovieLens id.

Gymnasium ships no checker for vector envs, so these tests check its documented contract: batched spaces made
by ``batch_space``, observations inside them with the declared dtypes, ``(num_envs,)`` rewards and flags,
``metadata["autoreset_mode"]`` (SAME_STEP: the step that ends an episode returns the next user's first
observation and ``infos["final_obs"]``), seeding, and Gymnasium's own vector wrappers and sync mode.
"""

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space
from synthetic import UNIT, synthetic_env, synthetic_world

import rlrec
from rlrec.envs.gym import RecVectorEnv

MOVIELENS_IDS = [env_id for env_id in rlrec.registered_envs() if env_id.startswith("MovieLens")]
NUM_ENVS = 4
WORLD = synthetic_world(**UNIT)  # the synthetic catalog and users of conftest.py, as make_vec overrides (no LM)


def _check_observations(space: gymnasium.spaces.Dict, obs: dict) -> None:
    assert set(obs) == set(space.spaces)
    for name, box in space.spaces.items():
        assert obs[name].shape == box.shape and obs[name].dtype == box.dtype, name
    assert space.contains(obs)


@pytest.mark.parametrize("env_id", MOVIELENS_IDS)
def test_make_vec_follows_the_vector_env_contract(env_id):
    envs = gymnasium.make_vec(f"rlrec/{env_id}", num_envs=NUM_ENVS, max_steps=3, **WORLD)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert envs.num_envs == NUM_ENVS
    assert envs.observation_space == batch_space(envs.single_observation_space, NUM_ENVS)
    assert envs.action_space == batch_space(envs.single_action_space, NUM_ENVS)
    assert not any(len(box.shape) == 0 for box in envs.single_observation_space.spaces.values())  # no 0-d boxes
    obs, info = envs.reset(seed=0)
    _check_observations(envs.observation_space, obs)
    assert isinstance(info, dict)
    envs.action_space.seed(0)
    trace = [obs]
    for step in range(1, 5):
        obs, rewards, terminated, truncated, info = envs.step(envs.action_space.sample())
        _check_observations(envs.observation_space, obs)
        assert rewards.shape == terminated.shape == truncated.shape == (NUM_ENVS,)
        assert terminated.dtype == truncated.dtype == np.bool_ and np.isin(rewards, (0.0, 1.0)).all()
        assert all(np.shape(value)[0] == NUM_ENVS for value in info.values() if isinstance(value, np.ndarray))
        done = terminated | truncated
        if step == 3:
            assert done.all()  # max_steps=3
        if done.any():
            np.testing.assert_array_equal(info["_final_obs"], done)
            _check_observations(envs.observation_space, info["final_obs"])
            np.testing.assert_array_equal(obs["progress"][done], 0.0)  # same-step autoreset: a new user
        else:
            assert "final_obs" not in info
        trace.append(obs)
    envs.close()
    again = gymnasium.make_vec(f"rlrec/{env_id}", num_envs=NUM_ENVS, max_steps=3, **WORLD)
    again.action_space.seed(0)
    replay = [again.reset(seed=0)[0]] + [again.step(again.action_space.sample())[0] for _ in range(4)]
    assert data_equivalence(trace, replay)  # same seeds, same users and clicks


def test_different_seeds_draw_different_users():
    envs = RecVectorEnv(functional=synthetic_env("MovieLens-Bandit-v0"), num_envs=NUM_ENVS)
    first, _ = envs.reset(seed=0)
    second, _ = envs.reset(seed=1)
    assert not np.array_equal(first["request"], second["request"])
    assert len({row.tobytes() for row in first["request"]}) > 1  # users differ within a batch too


def test_gymnasium_record_episode_statistics_sums_each_episode():
    envs = gymnasium.wrappers.vector.RecordEpisodeStatistics(
        RecVectorEnv(functional=synthetic_env("MovieLens-Session-v0", max_steps=4), num_envs=NUM_ENVS)
    )
    envs.reset(seed=3)
    running, episodes = np.zeros(NUM_ENVS), 0
    for _ in range(12):
        _, rewards, terminated, truncated, info = envs.step(np.arange(NUM_ENVS))
        running += rewards
        done = terminated | truncated
        if done.any():
            np.testing.assert_array_equal(info["_episode"], done)
            np.testing.assert_allclose(info["episode"]["r"][done], running[done])
            episodes += int(done.sum())
            running[done] = 0.0
    assert episodes >= NUM_ENVS * 2  # horizon 4, 12 steps


def test_sync_vectorisation_of_the_single_env_also_works():
    envs = gymnasium.make_vec("rlrec/MovieLens-BanditSlate-v0", num_envs=2, vectorization_mode="sync", max_steps=2,
                              **WORLD)
    obs, _ = envs.reset(seed=0)
    _check_observations(envs.observation_space, obs)
    for _ in range(3):
        obs, rewards, *_ = envs.step(envs.action_space.sample())
    _check_observations(envs.observation_space, obs)
    envs.close()
