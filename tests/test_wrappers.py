"""Functional wrappers: the flat observation's order, values and space; episode returns by hand; jit + vmap;
misuse errors; and the purejaxrl-style PPO example running on a tiny budget."""

import dataclasses
import importlib.util
import sys
from pathlib import Path

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from synthetic import synthetic_catalog, synthetic_env, synthetic_population

from rlrec.envs import spaces
from rlrec.envs.wrappers import FlattenObservation, LogEnvState, LogWrapper, flatten_observation

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "purejaxrl_ppo.py"


def manual_flat(obs: dict) -> np.ndarray:
    """The documented order, written out: entries sorted by key, each raveled row-major, as float32."""
    return np.concatenate([np.asarray(obs[name], np.float32).reshape(-1) for name in sorted(obs)])


def random_scan(env, params, key, steps):
    """``steps`` uniform-random steps of one user: per-step (obs, reward, terminated, truncated, info)."""
    action_space = env.action_space(params)

    def one_step(carry, step_key):
        obs, state = carry
        action_key, env_key = jax.random.split(step_key)
        action = action_space.sample(action_key)
        obs, state, reward, terminated, truncated, info = env.step(env_key, state, action, params)
        return (obs, state), (obs, reward, terminated, truncated, info)

    reset_key, scan_key = jax.random.split(key)
    obs, state = env.reset(reset_key, params)
    _, outputs = jax.lax.scan(one_step, (obs, state), jax.random.split(scan_key, steps))
    return obs, outputs


def paired_scan(env, wrapped, params, key, steps):
    """:func:`random_scan` of ``env`` and of ``wrapped`` with the same keys, in one program (one compile)."""
    return random_scan(env, params, key, steps), random_scan(wrapped, params, key, steps)


def test_flat_and_final_observations_are_the_sorted_entries_concatenated_and_lie_in_the_space():
    # Slates of 3: history_items is (H, 3), so the row-major ravel is checked too (single items run below).
    slate_size = 3
    env, params = synthetic_env("MovieLens-Session-v0", slate_size=slate_size, max_steps=4)
    flat_env = FlattenObservation(env)
    steps = 12
    run = jax.jit(paired_scan, static_argnums=(0, 1, 4))
    (first_obs, (obs, _, terminated, truncated, info)), (flat_first, (flat_obs, *_, flat_info)) = run(
        env, flat_env, params, jax.random.key(slate_size), steps
    )

    space = flat_env.observation_space(params)
    inner_space = env.observation_space(params)
    size = sum(int(np.prod(box.shape)) for box in inner_space.spaces.values())
    assert isinstance(space, spaces.Box) and space.shape == (size,) and flat_first.dtype == jnp.float32
    assert (space.low, space.high) == (-1.0, float(env.num_items(params) - 1))
    np.testing.assert_array_equal(flat_first, manual_flat(first_obs))
    assert bool(space.contains(flat_first))
    low, high = flat_env.bounds(params)
    layout = flat_env.layout(params)
    assert list(layout) == sorted(inner_space.spaces)
    for t in range(steps):
        step_obs = jax.tree.map(lambda x: x[t], obs)
        np.testing.assert_array_equal(flat_obs[t], manual_flat(step_obs))
        assert bool(space.contains(flat_obs[t]))
        assert np.all((flat_obs[t] >= low) & (flat_obs[t] <= high))
        for name, where in layout.items():
            np.testing.assert_array_equal(flat_obs[t, where], np.ravel(step_obs[name]))
    # Item ids pass through as numbers (-1 padding before the first step, shown items after).
    items = flat_obs[:, layout["history_items"]]
    assert np.all(items == np.round(items)) and items.max() > 0 and flat_first[layout["history_items"]].min() == -1

    # The finished episode's last observation is flattened the same way; the rest of info is untouched.
    assert np.any(terminated | truncated) and flat_info["final_observation"].shape == (steps, size)
    for t in range(steps):
        expected = manual_flat(jax.tree.map(lambda x: x[t], info["final_observation"]))
        np.testing.assert_array_equal(flat_info["final_observation"][t], expected)
    np.testing.assert_array_equal(flat_info["clicked_item"], info["clicked_item"])


def test_log_wrapper_returns_and_lengths_match_a_hand_count_under_jit_and_vmap():
    # A short horizon and a small budget: some users leave (terminated), others reach the horizon (truncated).
    env, params = synthetic_env("MovieLens-Session-v0", max_steps=5, initial_budget=2.0, no_click_logit=0.0)
    log_env = LogWrapper(FlattenObservation(env))
    num_envs, steps = 4, 23
    keys = jax.random.split(jax.random.key(2), num_envs)
    run = jax.jit(jax.vmap(random_scan, in_axes=(None, None, 0, None)), static_argnums=(0, 3))
    _, (_, rewards, terminated, truncated, info) = run(log_env, params, keys, steps)
    rewards, done = np.asarray(rewards), np.asarray(terminated | truncated)
    assert done.sum() >= num_envs * 3 and rewards.sum() > 0 and terminated.any() and truncated.any()
    np.testing.assert_array_equal(info["returned_episode"], done)
    np.testing.assert_array_equal(info["timestep"], np.broadcast_to(np.arange(1, steps + 1), (num_envs, steps)))
    for user in range(num_envs):
        running, length, last_return, last_length = 0.0, 0, 0.0, 0
        for t in range(steps):
            running, length = running + rewards[user, t], length + 1
            if done[user, t]:
                last_return, last_length, running, length = running, length, 0.0, 0
            assert info["returned_episode_returns"][user, t] == pytest.approx(last_return)
            assert info["returned_episode_lengths"][user, t] == last_length


def test_log_state_wraps_the_inner_state_and_starts_at_zero():
    env, params = synthetic_env("MovieLens-Session-v0")
    obs, state = LogWrapper(env).reset(jax.random.key(3), params)
    inner_obs, inner_state = env.reset(jax.random.key(3), params)
    assert isinstance(state, LogEnvState)
    np.testing.assert_array_equal(state.env_state.interest, inner_state.interest)
    assert float(state.returned_episode_returns) == 0.0 and int(state.timestep) == 0
    assert set(obs) == set(inner_obs)  # LogWrapper alone leaves the observation alone


def test_wrappers_forward_the_env_and_refuse_misuse():
    env, params = synthetic_env("MovieLens-Bandit-v0", slate_size=2)
    wrapped = LogWrapper(FlattenObservation(env))
    assert wrapped.action_space(params) == env.action_space(params)
    assert wrapped.num_items(params) == 40 and wrapped.slate_size == 2 and wrapped.unwrapped is env
    twin = LogWrapper(FlattenObservation(env))
    assert wrapped == twin and hash(wrapped) == hash(twin)  # hashable: a static argument of jit
    assert repr(wrapped).startswith("LogWrapper(FlattenObservation(RecEnv(")
    with pytest.raises(AttributeError, match="step_env.*bypass"):
        wrapped.step_env
    with pytest.raises(AttributeError, match="no attribute 'slate_sise'.*RecEnv"):
        wrapped.slate_sise
    with pytest.raises(TypeError, match="lacks reset, step"):
        FlattenObservation(params)
    with pytest.raises(TypeError, match="not a Gymnasium env"):
        LogWrapper(gymnasium.make("CartPole-v1"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        wrapped.env = env
    _, inner_state = env.reset(jax.random.key(0), params)
    with pytest.raises(TypeError, match="LogEnvState"):
        wrapped.step(jax.random.key(0), inner_state, jnp.array([0, 1]), params)
    with pytest.raises(ValueError, match="no arrays"):
        flatten_observation({})


@pytest.fixture(scope="module")
def ppo():
    """The example file as a module (registered in sys.modules: its dataclasses look their module up)."""
    spec = importlib.util.spec_from_file_location("purejaxrl_ppo_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_example_gae_matches_a_hand_computation(ppo):
    rewards = jnp.array([[1.0], [0.0], [1.0]])
    values = jnp.array([[0.5], [0.2], [0.4]])
    dones = jnp.array([[0.0], [1.0], [0.0]])
    gamma, lam = 0.9, 0.5
    # t=2: delta = 1 + 0.9*0.3 - 0.4 = 0.87 (bootstrap from last_value 0.3); t=1 ends the episode:
    # delta = 0 - 0.2 = -0.2; t=0: delta = 1 + 0.9*0.2 - 0.5 = 0.68, A = 0.68 + 0.45*(-0.2) = 0.59.
    advantages, targets = ppo.generalized_advantages(rewards, values, dones, jnp.array([0.3]), gamma, lam)
    np.testing.assert_allclose(advantages[:, 0], [0.59, -0.2, 0.87], rtol=1e-6)
    np.testing.assert_allclose(targets, advantages + values)


def test_example_samples_items_with_their_softmax_probabilities_within_4_sigma(ppo):
    probabilities = np.array([0.5, 0.0, 0.2, 0.3])
    logits = jnp.log(jnp.asarray(probabilities, jnp.float32) + 1e-30)
    draws = 20_000
    items, log_probs = ppo.sample_items(jax.random.key(0), jnp.broadcast_to(logits, (draws, 4)))
    frequencies = np.bincount(np.asarray(items), minlength=4) / draws
    sigma = np.sqrt(probabilities * (1 - probabilities) / draws)
    assert np.all(np.abs(frequencies - probabilities) <= 4 * sigma + 1e-12), frequencies
    np.testing.assert_allclose(np.exp(log_probs), probabilities[np.asarray(items)], rtol=1e-5)


def test_example_trains_on_a_tiny_budget_with_finite_metrics(ppo):
    config = dict(
        ppo.CONFIG,
        ENV_KWARGS={
            "track_regret": False,
            "max_steps": 4,
            "catalog": synthetic_catalog(),
            "population": synthetic_population(),
        },
        TOTAL_TIMESTEPS=96,
        NUM_ENVS=4,
        NUM_STEPS=8,
        NUM_MINIBATCHES=2,
        UPDATE_EPOCHS=2,
        HIDDEN=16,
    )
    # One seed: jit(vmap(train)) over seeds, as the example runs it, compiles twice as long for no new check.
    lowered = jax.jit(ppo.make_train(config)).lower(jax.random.key(0))
    # No LAPACK (custom calls) in the training program: under vmap they have hung XLA's CPU thread pool.
    assert "custom_call" not in lowered.as_text()
    metrics = lowered.compile()(jax.random.key(0))
    assert metrics["episode_return"].shape == (3,)
    for name, values in metrics.items():
        assert np.all(np.isfinite(values)), name
    assert np.all(metrics["episodes"] >= 4) and np.all(metrics["entropy"] > 0)
    random_return, episodes = jax.jit(ppo.make_random_baseline(config, 8))(jax.random.key(1))
    assert np.isfinite(random_return) and episodes >= 4
    assert ppo.parse_args(["--num-seeds", "3", "--total-timesteps", "1000"])["NUM_SEEDS"] == 3
    with pytest.raises(ValueError, match="one item per step"):
        ppo.make_env(dict(config, ENV_NAME="MovieLens-BanditSlate-v0"))
