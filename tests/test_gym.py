"""Gymnasium adapters: check_env on every id, make_vec, action validation, seeding."""

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from synthetic import UNIT, synthetic_world

import rlrec
import rlrec.data
import rlrec.envs.spaces
from rlrec.envs.gym import InvalidActionError, validate_actions

MOVIELENS_IDS = [env_id for env_id in rlrec.registered_envs() if env_id.startswith("MovieLens")]
LARGE_IDS = [env_id for env_id in rlrec.registered_envs() if not env_id.startswith("MovieLens")]
# The registered ids with the synthetic catalog and users of conftest.py (no language model), passed as overrides
# through gymnasium.make and make_vec as a user would.
WORLD = synthetic_world(**UNIT)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("env_id", MOVIELENS_IDS)
def test_check_env_passes(env_id):
    env = gymnasium.make(f"rlrec/{env_id}", **WORLD)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("env_id", LARGE_IDS)
def test_check_env_passes_on_the_large_catalog(env_id):
    env = gymnasium.make(f"rlrec/{env_id}")
    check_env(env.unwrapped, skip_render_check=True)


def test_episode_through_gymnasium_make_with_overrides():
    env = gymnasium.make("rlrec/MovieLens-Session-v0", max_steps=5, render_mode="ansi", **WORLD)
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    for step in range(5):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert reward in (0.0, 1.0)
        assert info["regret"] >= 0.0
        assert "step" in env.render()
        if terminated or truncated:
            break
    assert terminated or truncated


def test_same_seed_same_episode():
    def run(seed):
        env = gymnasium.make("rlrec/MovieLens-BanditSlate-v0", **WORLD)
        obs, _ = env.reset(seed=seed)
        env.action_space.seed(seed)
        trace = [obs["request"]]
        for _ in range(5):
            obs, reward, *_ , info = env.step(env.action_space.sample())
            trace.append(np.array([reward, info["expected_reward"]]))
        return np.concatenate([np.ravel(t) for t in trace])

    np.testing.assert_array_equal(run(1), run(1))
    assert not np.array_equal(run(1), run(2))


def test_make_vec_batches_users_and_autoresets():
    envs = gymnasium.make_vec("rlrec/MovieLens-SessionSlate-v0", num_envs=8, max_steps=3, **WORLD)
    assert isinstance(envs.unwrapped, rlrec.envs.gym.RecVectorEnv)
    obs, _ = envs.reset(seed=0)
    assert obs["request"].shape == (8, UNIT["dim"])
    assert envs.observation_space.contains(obs)
    for _ in range(3):
        obs, rewards, terminated, truncated, info = envs.step(envs.action_space.sample())
    assert rewards.shape == (8,)
    assert (terminated | truncated).all()  # max_steps=3: everyone is done at step 3 at the latest
    assert info["_final_obs"].all()
    assert (info["final_obs"]["progress"] > 0).all()  # the finished episodes' last observations
    assert (obs["progress"] == 0).all()  # same-step auto-reset
    envs.close()


@pytest.mark.parametrize(
    ("action", "slate_size", "message"),
    [
        (np.array([1, 1, 2]), 3, "distinct items"),
        (np.array([0, 1]), 3, "shape"),
        (np.array([0, 1, 10]), 3, "Item index 10 is out of range"),
        (np.array([-1, 1, 2]), 3, "Item index -1 is out of range"),
        (np.array([0.0, 1.0, 2.0]), 3, "integer item indices"),
        (np.array([True, False, True]), 3, "integer item indices"),
        (2.0, 1, "integer item indices"),
        (np.array([1, 2]), 1, "an item index"),
        (10, 1, "out of range"),
    ],
)
def test_invalid_actions_raise_clear_errors(action, slate_size, message):
    with pytest.raises(InvalidActionError, match=message):
        validate_actions(action, num_items=10, slate_size=slate_size)


def test_adapters_validate_actions():
    env = gymnasium.make("rlrec/MovieLens-BanditSlate-v0", strict_slates=True, **WORLD).unwrapped
    env.reset(seed=0)
    assert not env.action_space.contains(np.array([1, 1, 2, 3, 4]))
    with pytest.raises(InvalidActionError, match="repeats an item"):
        env.step([1, 1, 2, 3, 4])
    with pytest.raises(InvalidActionError, match="out of range"):
        env.step([0, 1, 2, 3, UNIT["items"]])
    envs = gymnasium.make_vec("rlrec/MovieLens-Bandit-v0", num_envs=2, **WORLD)
    envs.reset(seed=0)
    with pytest.raises(InvalidActionError, match=r"shape \(2,\)"):
        envs.step(np.array([1, 2, 3]))


def test_step_before_reset_is_an_error():
    env = gymnasium.make("rlrec/MovieLens-Bandit-v0", **WORLD).unwrapped
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_bad_override_through_gymnasium_names_the_field():
    with pytest.raises(ValueError, match="initial_budget"):
        gymnasium.make("rlrec/MovieLens-Session-v0", initial_budget=-2.0, **WORLD)


def test_slate_action_spaces_sample_distinct_items():
    from rlrec.simulators.population import Population

    env = gymnasium.make(
        "rlrec/MovieLens-BanditSlate-v0",
        catalog=rlrec.data.Catalog.from_arrays(np.eye(6)),
        population=Population.from_arrays(np.eye(6)[:2], request_noise=0.5, seed=0),
    )
    env.action_space.seed(0)
    for _ in range(200):  # with 6 items, a plain MultiDiscrete would repeat an item almost every time
        slate = env.action_space.sample()
        assert len(set(slate.tolist())) == 5 and env.action_space.contains(slate)
    assert not rlrec.envs.spaces.GymSlate(6, 5).contains(np.array([0, 0, 1, 2, 3]))  # distinct=True by default
    envs = gymnasium.make_vec("rlrec/MovieLens-BanditSlate-v0", num_envs=3, **WORLD)
    slates = envs.action_space.sample()
    assert slates.shape == (3, 5) and all(len(set(row.tolist())) == 5 for row in slates)
    assert envs.action_space.contains(slates)


def test_a_repeated_item_is_shown_once_as_in_the_functional_core():
    """SB3's PPO samples slots independently; the adapters accept its repeats and show each item once."""
    env = gymnasium.make("rlrec/MovieLens-BanditSlate-v0", **WORLD).unwrapped
    assert env.action_space.contains(np.array([7, 7, 7, 7, 7]))
    assert len(set(env.action_space.sample().tolist())) == 5  # samples stay distinct
    env.reset(seed=0)
    for _ in range(20):
        obs, reward, terminated, truncated, info = env.step([7, 7, 7, 7, 7])
        assert info["clicked_slot"] in (-1, 0)  # the copies in slots 1-4 are empty: never clicked
    np.testing.assert_array_equal(obs["history_items"][-1], [7, 7, 7, 7, 7])  # what the agent sent
    envs = gymnasium.make_vec("rlrec/MovieLens-BanditSlate-v0", num_envs=3, **WORLD)
    envs.reset(seed=0)
    *_, info = envs.step(np.array([[1, 1, 2, 3, 4]] * 3))
    assert (info["clicked_slot"] != 1).all()
