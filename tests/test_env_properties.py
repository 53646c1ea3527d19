"""Every environment knob over its whole documented range gives finite numbers, and bad values are refused.

The ranges live in ``rlrec.envs.registry.KNOBS``; this is the test their docstring points to. Hypothesis draws
knob settings (derandomised: the same examples on every run) and a jitted rollout checks each step: rewards,
expected rewards and regret are finite, regret is >= 0, and the oracle's slate has regret exactly 0.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from synthetic import synthetic_catalog, synthetic_population

import rlrec
from rlrec.agents.base import random_slate
from rlrec.envs.recsys import RecEnv
from rlrec.envs.registry import KNOBS, build_params

SLATE = 3
CATALOG = synthetic_catalog(items=30, dim=6, seed=1)
POPULATION = synthetic_population(users=5, dim=6, seed=1)
STEPS = 12


def _strategy(knob):
    if knob.integer:
        return st.integers(int(knob.low), int(min(knob.high, 50)))  # the horizon only decides when episodes end
    # Values as the simulator holds them (float32): 5e-324 > 0 in float64 is 0 in float32, and refused.
    low, high = np.float32(knob.low), np.float32(knob.high)
    low = np.nextafter(low, np.float32(np.inf)) if low < knob.low else low
    high = np.nextafter(high, np.float32(-np.inf)) if high > knob.high else high
    values = st.floats(float(low), float(high), exclude_min=knob.low_open, allow_nan=False, allow_infinity=False,
                       width=32)
    if knob.name == "position_bias":
        return st.lists(values, min_size=SLATE, max_size=SLATE)
    return values


KNOB_SETTINGS = st.fixed_dictionaries(
    {}, optional={name: _strategy(knob) for name, knob in KNOBS.items() if name != "position_decay"}
)


def _rollout(env: RecEnv):
    @jax.jit
    def rollout(params, key):
        reset_key, steps_key = jax.random.split(key)
        _, state = env.reset(reset_key, params)

        def step(state, step_key):
            act_key, env_key = jax.random.split(step_key)
            action = random_slate(act_key, env.num_items(params), SLATE)
            oracle = env.oracle_action(state, params)
            *_, oracle_info = env.step_env(env_key, state, oracle, params)
            _, state, reward, _, _, info = env.step(env_key, state, action, params)
            outputs = {
                "reward": reward,
                "regret": info["regret"],
                "expected_reward": info["expected_reward"],
                "oracle_expected_reward": info["oracle_expected_reward"],
                "oracle_regret": oracle_info["regret"],
                "satisfaction": info["satisfaction"],
                "budget": info["budget"],
                "interest": state.interest,
            }
            return state, outputs

        return jax.lax.scan(step, state, jax.random.split(steps_key, STEPS))[1]

    return rollout


ROLLOUTS = {model: _rollout(RecEnv(slate_size=SLATE, choice_model=model)) for model in ("mnl", "cascade")}


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(knobs=KNOB_SETTINGS, choice_model=st.sampled_from(sorted(ROLLOUTS)), seed=st.integers(0, 2**16))
def test_every_documented_knob_value_gives_finite_results(knobs, choice_model, seed):
    params = build_params(CATALOG, POPULATION, slate_size=SLATE, position_decay=0.3, **knobs)
    out = jax.tree.map(np.asarray, ROLLOUTS[choice_model](params, jax.random.key(seed)))
    for name, values in out.items():
        assert np.isfinite(values).all(), (name, knobs)
    assert (out["regret"] >= 0).all() and (out["oracle_regret"] == 0).all(), knobs
    assert ((out["expected_reward"] >= 0) & (out["expected_reward"] <= 1 + 1e-6)).all(), knobs


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        # Finite in float64, inf in float32 (the dtype the simulator computes in).
        ("no_click_logit", 1e39, r"no_click_logit must be in \[-10000, 10000\]"),
        ("affinity_weight", 1e39, "affinity_weight must be in"),
        # Positive in float64, a denormal in float32 that overflows no_click_logit / temperature.
        ("temperature", 1e-45, r"temperature must be in \[0.001, 10000\]"),
        ("temperature", 0.0, "temperature must be in"),
        ("temperature", float("nan"), "temperature must be in"),
        ("drift_rate", 1.5, r"drift_rate must be in \[0, 1\]"),
        ("interest_noise", -0.1, "interest_noise must be in"),
        ("initial_budget", 0.0, r"initial_budget must be in \(0, 1e\+06\]"),
        ("max_steps", 2.5, "max_steps must be a whole number"),
        ("max_steps", 0, "max_steps must be in"),
        ("step_cost", "abc", "step_cost must be a number"),
        ("position_bias", [0.0, 1e39, 0.0], "position_bias must be in"),
    ],
)
def test_out_of_range_knobs_are_refused_naming_the_range(name, value, message):
    with pytest.raises(ValueError, match=message):
        build_params(CATALOG, POPULATION, slate_size=SLATE, position_decay=0.3, **{name: value})
    with pytest.raises(ValueError, match=message):
        rlrec.make("MovieLens-BanditSlate-v0", catalog=CATALOG, population=POPULATION, slate_size=SLATE,
                   **{name: value})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"slate_size": "abc"}, "slate_size must be a positive whole number, got 'abc'"),
        ({"slate_size": 0}, "slate_size must be a positive whole number"),
        ({"history_length": 2.5}, "history_length must be a positive whole number"),
        ({"choice_model": "probit"}, "choice_model must be one of"),
        ({"track_regret": "yes"}, "track_regret must be True or False"),
        ({"no_such_knob": 1.0}, "Unknown override"),
    ],
)
def test_static_overrides_are_checked(overrides, message):
    with pytest.raises(ValueError, match=message):
        rlrec.make("MovieLens-Bandit-v0", catalog=CATALOG, population=POPULATION, **overrides)


def test_knob_values_are_kept_in_the_simulators_dtype():
    env, params = rlrec.make("MovieLens-Bandit-v0", catalog=CATALOG, population=POPULATION, temperature=2,
                             max_steps=7.0)
    assert params.temperature.dtype == jnp.float32 and float(params.temperature) == 2.0
    assert params.max_steps.dtype == jnp.int32 and int(params.max_steps) == 7
