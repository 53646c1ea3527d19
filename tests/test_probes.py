"""Probe environments: exact rewards, episode lengths, auto-reset, drop-in RecEnv API, and the stated optimal
values checked against a brute-force search over every action sequence."""

import functools
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rlrec
from rlrec.agents import make_agent
from rlrec.envs import EnvParams, RecEnv
from rlrec.envs.probes import ITEM_A, ITEM_B, PROBES, ProbeEnv, TwoStepProbe, make_probe

INFO_KEYS = {
    "final_observation",
    "clicked_slot",
    "expected_reward",
    "oracle_expected_reward",
    "regret",
    "oracle_slate",
    "clicked_item",
    "satisfaction",
    "budget",
}

# A two-step variant where only B pays at step 1, with rewards other than the defaults.
PAID_BY_B = {"payoff_item": ITEM_B, "immediate_reward": 0.3, "delayed_reward": 2.0}

# (name, overrides): every probe, plus the variants with their own code paths.
CONFIGS = [
    ("one-step", {}),
    ("one-step", {"slate_size": 2}),
    ("contextual-one-step", {}),
    ("contextual-one-step", {"type_values": ((0.2, 0.9, 0.5), (0.7, 0.1, 0.3))}),
    ("two-step", {}),
    ("two-step", PAID_BY_B),
]


# Module-level jitted entry points with the env static: equal envs share one compilation across tests.
@functools.partial(jax.jit, static_argnums=0)
def reset(env, key, params):
    return env.reset(key, params)


@functools.partial(jax.jit, static_argnums=0)
def step(env, key, state, action, params):
    return env.step(key, state, action, params)


@functools.partial(jax.jit, static_argnums=0)
def observable(env, params, obs):
    """``observation_space(params).contains(obs)``, jitted (eagerly it compiles many tiny kernels)."""
    return env.observation_space(params).contains(obs)


def stacked(outputs):
    """A sequence of pytrees as one pytree with a leading axis (NumPy)."""
    return jax.tree.map(lambda *leaves: np.stack(leaves), *outputs)


def all_actions(env: ProbeEnv, params: EnvParams) -> list:
    """Every item, or every slate as a set of distinct items (a probe's slate reward ignores the order)."""
    items = range(env.num_items(params))
    if env.slate_size == 1:
        return [jnp.int32(item) for item in items]
    return [jnp.asarray(slate, jnp.int32) for slate in itertools.combinations(items, env.slate_size)]


def brute_force_q(env, params, state, gamma) -> list[float]:
    """``Q*(s, a)`` of every action, by searching every continuation with the env's own step."""
    q = []
    for action in all_actions(env, params):
        _, next_state, reward, terminated, _, _ = step(env, jax.random.key(0), state, action, params)
        future = 0.0 if bool(terminated) else gamma * max(brute_force_q(env, params, next_state, gamma))
        q.append(float(reward) + future)
    return q


@pytest.mark.parametrize("name", list(PROBES))
def test_probe_is_a_drop_in_recenv(name):
    env, params = make_probe(name)
    assert isinstance(env, RecEnv) and isinstance(params, EnvParams) and env.name == name
    num_items, dim = params.item_features.shape
    assert env.num_items(params) == num_items
    np.testing.assert_allclose(np.linalg.norm(params.item_features, axis=1), 1.0)
    assert len({tuple(row) for row in np.asarray(params.item_features)}) == num_items  # distinct items
    assert params.item_quality.shape == params.item_appeal.shape == (num_items,)
    # No item feature leaks the answer: requests are orthogonal to every item.
    assert float(jnp.max(jnp.abs(params.item_features @ params.prototype_requests[:, 0].T))) == 0.0

    obs, state = reset(env, jax.random.key(0), params)
    assert bool(observable(env, params, obs))
    assert obs["request"].shape == (dim,) and obs["history_items"].dtype == jnp.int32
    assert obs["history_items"].shape == (env.history_length, env.slate_size)
    assert obs["progress"].dtype == jnp.float32 and obs["history_feedback"].dtype == jnp.float32
    action = jnp.int32(1)
    assert bool(env.action_space(params).contains(action))
    obs, state, reward, terminated, truncated, info = step(env, jax.random.key(2), state, action, params)
    assert set(info) >= INFO_KEYS
    assert bool(observable(env, params, obs)) and bool(observable(env, params, info["final_observation"]))
    assert info["clicked_slot"].dtype == info["clicked_item"].dtype == jnp.int32
    assert info["oracle_slate"].shape == (env.slate_size,)
    assert reward.dtype == jnp.float32 and terminated.dtype == truncated.dtype == jnp.bool_


def test_one_step_pays_each_items_value_and_always_ends():
    env, params = make_probe("one-step")
    values = np.asarray(env.item_values, np.float32)
    _, state = reset(env, jax.random.key(0), params)
    items = jnp.arange(4, dtype=jnp.int32)
    obs, _, reward, terminated, truncated, info = stacked(step(env, jax.random.key(1), state, i, params) for i in items)
    np.testing.assert_array_equal(reward, values)
    assert bool(jnp.all(terminated)) and not bool(jnp.any(truncated))
    np.testing.assert_allclose(info["regret"], values.max() - values)
    np.testing.assert_array_equal(info["oracle_slate"][:, 0], 1)
    np.testing.assert_array_equal(info["clicked_slot"], np.where(values > 0, 0, -1))
    np.testing.assert_array_equal(info["clicked_item"], np.where(values > 0, items, -1))
    np.testing.assert_allclose(info["satisfaction"], values)
    # Auto-reset: the next observation starts a new episode; the finished one shows what was shown.
    np.testing.assert_array_equal(obs["progress"], 0.0)
    np.testing.assert_array_equal(obs["history_items"], -1)
    np.testing.assert_array_equal(info["final_observation"]["progress"], 1.0)  # 1 of 1 step
    np.testing.assert_array_equal(info["final_observation"]["history_items"][:, -1, 0], items)
    np.testing.assert_allclose(info["final_observation"]["history_feedback"][:, -1], values)


def test_one_step_slate_pays_the_sum_over_distinct_items():
    env, params = make_probe("one-step", slate_size=2)  # values (0.25, 1.0, 0.5, 0.0)
    _, state = reset(env, jax.random.key(0), params)
    slates = jnp.array([[1, 2], [2, 1], [0, 2], [2, 2], [3, 0]], jnp.int32)
    _, _, reward, terminated, _, info = stacked(step(env, jax.random.key(1), state, s, params) for s in slates)
    np.testing.assert_allclose(reward, [1.5, 1.5, 0.75, 0.5, 0.25])  # a repeated item pays once
    np.testing.assert_allclose(info["regret"], [0.0, 0.0, 0.75, 1.0, 1.25])
    np.testing.assert_array_equal(info["clicked_slot"], [0, 1, 1, 0, 1])  # the best-paying slot
    assert set(np.asarray(info["oracle_slate"][0]).tolist()) == {1, 2}
    assert bool(jnp.all(terminated))


def test_contextual_probe_reward_depends_on_the_request_and_vmap_equals_loop():
    env, params = make_probe("contextual-one-step")  # type 0 wants item 0, type 1 item 1

    def one_user(key):
        reset_key, step_key = jax.random.split(key)
        _, state = env.reset(reset_key, params)
        oracle = env.oracle_action(state, params)
        return state, oracle, env.step(step_key, state, jnp.int32(0), params), env.step(step_key, state, oracle, params)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def episode(keys):
        return jax.vmap(one_user)(keys)

    keys = jax.random.split(jax.random.key(0), 512)
    state, oracle, item_zero, oracle_step = episode(keys)
    episode(jax.random.split(jax.random.key(1), 512))  # same shapes: no retrace
    user_type = np.asarray(state.prototype)
    # Types are equally likely: 4 sigma = 4 * sqrt(0.25 / 512) = 0.088.
    assert abs(user_type.mean() - 0.5) < 0.088
    np.testing.assert_array_equal(state.request, params.prototype_requests[user_type, 0])
    assert not np.allclose(params.prototype_requests[0], params.prototype_requests[1])
    np.testing.assert_array_equal(item_zero[2], user_type == 0)  # a context-blind policy earns ~0.5
    np.testing.assert_array_equal(oracle, user_type)
    np.testing.assert_array_equal(oracle_step[2], 1.0)
    # vmap == loop (the loop runs the unbatched jitted step).
    for i in range(4):
        reset_key, step_key = jax.random.split(keys[i])
        looped = step(env, step_key, reset(env, reset_key, params)[1], jnp.int32(0), params)
        chex.assert_trees_all_close(jax.tree.map(lambda leaf: leaf[i], item_zero), looped)


@pytest.mark.parametrize(
    ("overrides", "expected_reward"),
    # Episodes: (A, A), (B, B), (A, B).
    [({}, [0.0, 1.0, 0.5, 0.0, 0.0, 1.0]), (PAID_BY_B, [0.0, 0.0, 0.3, 0.0, 0.0, 2.0])],
)
def test_two_step_episodes_last_two_steps_and_pay_late(overrides, expected_reward):
    env, params = make_probe("two-step", **overrides)
    actions = jnp.array([ITEM_A, ITEM_A, ITEM_B, ITEM_B, ITEM_A, ITEM_B], jnp.int32)
    _, state = reset(env, jax.random.key(0), params)
    outputs = []
    for t, action in enumerate(actions):
        obs, state, reward, terminated, truncated, info = step(env, jax.random.key(t), state, action, params)
        outputs.append((obs, reward, terminated, truncated, info))
    obs, reward, terminated, truncated, info = stacked(outputs)
    np.testing.assert_allclose(reward, expected_reward)
    np.testing.assert_array_equal(terminated, [False, True] * 3)
    assert not bool(jnp.any(truncated))
    np.testing.assert_array_equal(obs["progress"][:, 0], [0.5, 0.0] * 3)  # step / max_steps, max_steps = 2
    np.testing.assert_array_equal(info["final_observation"]["progress"][:, 0], [0.5, 1.0] * 3)
    np.testing.assert_array_equal(info["budget"], [1.0, 0.0] * 3)
    # The step-1 state tells which item came first; after a reset the history is empty again.
    np.testing.assert_array_equal(obs["history_items"][::2, -1, 0], actions[::2])
    np.testing.assert_array_equal(obs["history_items"][1::2], -1)


@pytest.mark.parametrize(("name", "overrides"), CONFIGS)
@pytest.mark.parametrize("gamma", [0.0, 0.4, 0.6, 0.99])
def test_optimal_values_match_a_brute_force_search(name, overrides, gamma):
    env, params = make_probe(name, **overrides)
    values = env.optimal_values(params, gamma)
    assert values.q_values.shape == (len(values.names), env.num_items(params))
    for index, state_name in enumerate(values.names):
        state = jax.tree.map(lambda leaf: leaf[index], values.states)
        assert bool(observable(env, params, jax.tree.map(lambda leaf: leaf[index], values.observations)))
        q = brute_force_q(env, params, state, gamma)
        slates = [np.atleast_1d(np.asarray(a)) for a in all_actions(env, params)]
        stated = [float(jnp.sum(values.q_values[index][slate])) for slate in slates]
        np.testing.assert_allclose(stated, q, atol=1e-6, err_msg=f"{name} {overrides} state {state_name!r}")
        np.testing.assert_allclose(values.values[index], max(q), atol=1e-6)
        # The stated optimal action achieves the best value (ties, e.g. after B, may pick any).
        optimal = set(np.atleast_1d(np.asarray(values.optimal_actions[index])).tolist())
        (optimal_q,) = [value for value, slate in zip(q, slates) if set(slate.tolist()) == optimal]
        assert optimal_q == pytest.approx(max(q))


def test_two_step_values_by_hand_and_the_myopic_trap():
    env, params = make_probe("two-step")
    assert env.optimal_values(params, 0.9).names == ("start", "after A", "after B")
    np.testing.assert_allclose(env.optimal_values(params, 0.9).q_values, [[0.9, 0.5], [1.0, 1.0], [0.0, 0.0]])
    # A is optimal iff gamma > immediate / delayed = 0.5; a myopic agent picks B.
    assert int(env.optimal_values(params, 0.0).optimal_actions[0]) == ITEM_B
    assert int(env.optimal_values(params, 0.45).optimal_actions[0]) == ITEM_B
    assert int(env.optimal_values(params, 0.55).optimal_actions[0]) == ITEM_A
    # The decision states' observations are the ones a rollout produces.
    _, start = reset(env, jax.random.key(0), params)
    after_a, *_ = step(env, jax.random.key(1), start, jnp.int32(ITEM_A), params)
    stated = jax.tree.map(lambda leaf: leaf[1], env.optimal_values(params, 0.9).observations)
    chex.assert_trees_all_equal(stated, after_a)
    # Regret is the undiscounted return gap: (B, anything) loses 1 - 0.5 over the episode.
    _, state, _, _, _, info_0 = step(env, jax.random.key(2), start, jnp.int32(ITEM_B), params)
    info_1 = step(env, jax.random.key(3), state, jnp.int32(ITEM_A), params)[5]
    assert float(info_0["regret"] + info_1["regret"]) == pytest.approx(0.5)


def test_runner_takes_a_probe_and_the_oracle_has_no_regret():
    env, params = make_probe("two-step")
    result = rlrec.run(env, params, make_agent("oracle", env), num_seeds=2, num_steps=6, accuracy_k=1)
    np.testing.assert_array_equal(result.regret, 0.0)
    np.testing.assert_array_equal(result.reward, [[0.0, 1.0] * 3] * 2)  # waits for the delayed reward
    np.testing.assert_array_equal(result.slates[..., 0], ITEM_A)


def test_track_regret_false_has_no_oracle():
    env, params = make_probe("one-step", track_regret=False)
    _, state = reset(env, jax.random.key(0), params)
    _, _, reward, _, _, info = step(env, jax.random.key(1), state, jnp.int32(1), params)
    assert float(reward) == 1.0 and bool(jnp.isnan(info["regret"])) and int(info["oracle_slate"][0]) == -1


def test_invalid_probes_raise():
    with pytest.raises(ValueError, match="Unknown probe"):
        make_probe("three-step")
    with pytest.raises(ValueError, match="Unknown override"):
        make_probe("one-step", choice_model="mnl")
    with pytest.raises(ValueError, match="one item per step"):
        make_probe("two-step", slate_size=2)
    with pytest.raises(ValueError, match="immediate_reward < delayed_reward"):
        make_probe("two-step", immediate_reward=1.0)
    with pytest.raises(ValueError, match="payoff_item"):
        make_probe("two-step", payoff_item=2)
    with pytest.raises(ValueError, match="unique best"):
        make_probe("one-step", item_values=(1.0, 1.0, 0.0))
    with pytest.raises(ValueError, match="unique best"):
        make_probe("one-step", slate_size=2, item_values=(1.0, 0.5, 0.5))
    with pytest.raises(ValueError, match="larger than the catalog"):
        make_probe("one-step", slate_size=5)
    with pytest.raises(ValueError, match="same best slate"):
        make_probe("contextual-one-step", type_values=((1.0, 0.0), (0.9, 0.1)))
    with pytest.raises(ValueError, match="finite"):
        make_probe("one-step", item_values=(1.0, float("nan")))
    with pytest.raises(ValueError, match="gamma"):
        make_probe("one-step")[0].optimal_values(make_probe("one-step")[1], 1.5)
    # Params of another probe do not fit.
    with pytest.raises(ValueError, match="items"):
        TwoStepProbe().reset(jax.random.key(0), make_probe("one-step")[1])
