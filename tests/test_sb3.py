"""Stable-Baselines3 unchanged on every MovieLens id: its check_env, PPO (MultiInputPolicy) on every id, DQN on
the single-item ids, and the fast path :class:`rlrec.envs.sb3.SB3VecEnv` (one jitted call for every user).

Training budgets are tiny (a rollout or two): these tests show the pieces fit, not that SB3 learns; the
learning comparison is examples/sb3_ppo.py.
"""

import gymnasium
import numpy as np
import pytest
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.vec_env import VecMonitor
from synthetic import UNIT, synthetic_env, synthetic_world

import rlrec
from rlrec.envs.gym import RecVectorEnv
from rlrec.envs.sb3 import SB3VecEnv

# Every MovieLens id with the synthetic catalog and users of conftest.py (no language model), passed as overrides.
WORLD = synthetic_world(**UNIT)
# SB3 takes no Dict action spaces, so the conversational envs (a slate and a question) are left out but for the
# clear error of SB3VecEnv (test below).
MOVIELENS_IDS = [env_id for env_id in rlrec.registered_envs()
                 if env_id.startswith("MovieLens") and "Conversational" not in env_id]
SINGLE_ITEM_IDS = [env_id for env_id in MOVIELENS_IDS if "Slate" not in env_id]
# A small PPO: one 64-step rollout per update, 2 epochs of 32-step minibatches.
SMALL_PPO = {"n_steps": 64, "batch_size": 32, "n_epochs": 2, "seed": 0, "device": "cpu"}


@pytest.mark.filterwarnings("ignore::UserWarning")  # SB3 suggests flattening the (H, k) history: a suggestion
@pytest.mark.parametrize("env_id", MOVIELENS_IDS)
def test_sb3_check_env_and_ppo_train_on_every_movielens_id(env_id):
    env = gymnasium.make(f"rlrec/{env_id}", max_steps=40, **WORLD)
    check_env(env.unwrapped)  # raises on any API problem (it was the 0-d "step" box)
    model = PPO("MultiInputPolicy", env, **SMALL_PPO).learn(128)
    assert model.num_timesteps == 128
    action, _ = model.predict(env.reset(seed=0)[0], deterministic=True)
    assert env.action_space.contains(action)
    # SB3 samples each slot of a slate on its own: the env accepted whatever it sent (repeats shown once).
    env.close()


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("env_id", SINGLE_ITEM_IDS)
def test_sb3_dqn_trains_on_the_single_item_ids(env_id):
    env = gymnasium.make(f"rlrec/{env_id}", max_steps=40, **WORLD)
    model = DQN("MultiInputPolicy", env, learning_starts=32, buffer_size=1_000, batch_size=16, train_freq=4,
                target_update_interval=50, seed=0, device="cpu").learn(128)
    assert model.num_timesteps == 128 and model._n_updates > 0
    assert model.replay_buffer.size() == 128


def test_sb3_vec_env_steps_exactly_as_the_gymnasium_vector_env():
    functional = synthetic_env("MovieLens-SessionSlate-v0", items=30, slate_size=3, max_steps=4)
    ours = SB3VecEnv(RecVectorEnv(functional=functional, num_envs=5))
    reference = RecVectorEnv(functional=functional, num_envs=5)
    ours.seed(11)
    obs = ours.reset()
    expected, _ = reference.reset(seed=11)
    assert all(np.array_equal(obs[name], expected[name]) for name in expected)
    rng = np.random.default_rng(0)
    finished = 0
    for _ in range(9):
        actions = rng.integers(0, 30, size=(5, 3))  # repeats included, as SB3 would send
        obs, rewards, dones, infos = ours.step(actions)
        expected, reward, terminated, truncated, info = reference.step(actions)
        assert all(np.array_equal(obs[name], expected[name]) for name in expected)
        np.testing.assert_array_equal(rewards, reward)
        np.testing.assert_array_equal(dones, terminated | truncated)
        assert rewards.dtype == np.float32 and dones.dtype == bool and len(infos) == 5
        for i in range(5):
            assert infos[i]["regret"] == info["regret"][i]
            assert infos[i]["TimeLimit.truncated"] == bool(truncated[i] and not terminated[i])
            assert ("terminal_observation" in infos[i]) == bool(dones[i])
            if dones[i]:
                finished += 1
                final = infos[i]["terminal_observation"]
                assert all(np.array_equal(final[name], info["final_obs"][name][i]) for name in final)
                assert ours.observation_space.contains(final)
    assert finished >= 5  # max_steps=4: every user finished at least once in 9 steps


def test_sb3_ppo_on_the_vec_env_logs_episodes():
    envs = VecMonitor(SB3VecEnv.make("MovieLens-SessionSlate-v0", num_envs=16, max_steps=8, **WORLD))
    model = PPO("MultiInputPolicy", envs, n_steps=16, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(2 * 16 * 16)
    assert model.num_timesteps == 512
    lengths = [episode["l"] for episode in model.ep_info_buffer]
    assert lengths and max(lengths) <= 8  # VecMonitor saw the episodes end (horizon 8)


def test_sb3_vec_env_refuses_what_it_cannot_wrap():
    with pytest.raises(TypeError, match="DummyVecEnv"):
        SB3VecEnv(gymnasium.make("rlrec/MovieLens-Bandit-v0", **WORLD))
    functional = synthetic_env("MovieLens-Bandit-v0")
    wrapped = gymnasium.wrappers.vector.RecordEpisodeStatistics(RecVectorEnv(functional=functional, num_envs=2))
    with pytest.raises(TypeError, match="VecMonitor"):
        SB3VecEnv(wrapped)


def test_sb3_vec_env_refuses_a_conversational_env_clearly():
    with pytest.raises(TypeError, match="does not take Dict action spaces"):
        SB3VecEnv.make("MovieLens-Conversational-v0", num_envs=2, **WORLD)
