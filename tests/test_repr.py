"""Short reprs: every object a notebook displays fits in BOUND characters, names its sizes and prints no array
contents, and reprs of traced or vmapped pytrees neither raise nor change what jit and vmap do."""

from __future__ import annotations

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from synthetic import synthetic_catalog, synthetic_env, synthetic_population

from rlrec import _repr
from rlrec.agents import make_agent
from rlrec.bench.suite import Suite
from rlrec.bench.suite_results import Cell, SuiteResult
from rlrec.rollout.runner import RunResult
from rlrec.train.trainer import TrainResult

BOUND = 300  # characters; rlrec._repr.LIMIT aims at 240
ARRAY_CONTENTS = ("[[", "Array(", "array(", "Traced<", "dtype=")
# Numbers listed inside brackets ("[0.1, 0.2", "[1 2"), unlike a shape ("float32[9066,32]").
LISTED_NUMBERS = re.compile(r"\[\s*-?\d[\d.e+-]*(,\s+|\s+)-?\d")


def assert_short(text: str, *facts: str) -> None:
    assert len(text) <= BOUND, (len(text), text)
    assert "\n" not in text
    for fact in facts:
        assert fact in text, (fact, text)
    for contents in ARRAY_CONTENTS:
        assert contents not in text, (contents, text)
    assert not LISTED_NUMBERS.search(text), text


@pytest.fixture(scope="module")
def env_and_params():
    return synthetic_env("MovieLens-BanditSlate-v0", items=40, dim=8, users=6, slate_size=3)


def test_describe_by_hand():
    assert _repr.describe(np.zeros((9066, 32), np.float32)) == "float32[9066,32]"
    assert _repr.describe(jnp.zeros((), jnp.int32)) == "0"
    assert _repr.describe(jnp.asarray(0.3, jnp.float32)) == "0.3"
    assert _repr.describe(1.0) == "1.0" and _repr.describe(5e-7) == "5e-07" and _repr.describe(50_000.0) == "50000.0"
    assert _repr.describe(True) == "True" and _repr.describe(None) == "None" and _repr.describe("mnl") == "'mnl'"
    assert _repr.describe(("a", "b")) == "('a', 'b')"
    assert _repr.describe(tuple(f"item {i}" for i in range(9066))) == "tuple[9066]"
    assert _repr.describe({"a": "x", "b": 1}) == "dict[2]"
    assert _repr.describe({"x": np.ones(3)}) == "dict(1 array, 3 numbers)"
    assert _repr.describe([jnp.ones((4, 5)), jnp.ones(5)]) == "list(2 arrays, 25 numbers)"
    assert len(_repr.describe("x" * 500)) == 120
    assert _repr.describe(np.asarray("mnl")) == "str96[]"  # a 0-d array of text is not a number


def test_catalog_projection_and_population():
    catalog = synthetic_catalog(40, 8).with_projection(4)
    assert_short(repr(catalog), "name='synthetic-40x8'", "items=40", "dim=4", "input_dim=8", "model=None")
    assert_short(repr(catalog.projection), "input_dim=8", "dim=4", "explained_variance=")
    population = synthetic_population(6, 8)
    assert_short(repr(population), "name='synthetic-users'", "users=6", "dim=8", "requests_per_user=3")


def test_movielens_catalog_repr_is_short():
    """The default dataclass repr of this catalog was 531,170 characters."""
    from rlrec.data import load_catalog

    text = repr(load_catalog("movielens", dim=32))
    assert_short(text, "name='movielens'", "items=9066", "dim=32", "all-MiniLM-L6-v2", "genres=19",
                 "interactions=100004", "input_dim=384")


def test_env_params_state_and_env(env_and_params):
    env, params = env_and_params
    assert_short(repr(params), "items=40", "dim=8", "prototypes=6", "requests=3", "max_steps=",
                 "position_bias=float32[3]")
    _, state = env.reset(jax.random.key(0), params)
    assert_short(repr(state), "interest=float32[8]", "history_items=int32[8,3]", "step=0")
    assert_short(repr(env), "slate_size=3", "choice_model=")


def test_env_params_repr_under_jit_and_vmap(env_and_params):
    env, params = env_and_params
    traced = []

    def identity(p):
        traced.append(repr(p))  # at trace time: every leaf is a tracer
        return p

    same = jax.jit(identity)(params)
    assert jax.tree.structure(same) == jax.tree.structure(params)
    assert "items=40" in traced[0] and "affinity_weight=float32[]" in traced[0]
    assert not any(contents in traced[0] for contents in ARRAY_CONTENTS)

    # A population of environments: one knob batched, the catalog shared.
    def reset(p):
        traced.append(repr(p))
        return env.reset(jax.random.key(0), p)

    batched = params.replace(affinity_weight=jnp.asarray([1.0, 2.0, 5.0]))
    axes = jax.tree.map(lambda _: None, params).replace(affinity_weight=0)
    _, states = jax.vmap(reset, in_axes=(axes,))(batched)
    assert states.interest.shape == (3, 8)
    assert "affinity_weight=float32[]" in traced[-1]
    assert_short(repr(batched), "affinity_weight=float32[3]", "items=40")
    # Stacked whole (every leaf batched): the batch shows, the sizes stay right.
    stacked = jax.tree.map(lambda x: jnp.stack([jnp.asarray(x)] * 2), params)
    assert_short(repr(stacked), "items=40", "dim=8", "batch=(2,)")


@pytest.mark.parametrize("name", ["linucb", "lm-lints", "epsilon-greedy", "ppo", "reinforce", "dqn", "oracle",
                                  "random"])
def test_agent_reprs(env_and_params, name):
    env, _ = env_and_params
    agent = make_agent(name, env)
    assert_short(repr(agent), f"name='{name}'", "slate_size=3", type(agent).__name__ + "(")
    if name == "linucb":
        assert "alpha=0.3" in repr(agent) and "defaults" not in repr(agent)  # short enough to show everything
    if name == "reinforce":  # what makes it REINFORCE is shown even when defaults are elided
        assert "clip=0.0" in repr(agent) and "gae_lambda=1.0" in repr(agent)


def test_agent_repr_under_jit_and_vmap(env_and_params):
    env, _ = env_and_params
    agent = make_agent("linucb", env)
    traced = []

    def identity(a):
        traced.append(repr(a))
        return a

    same = jax.jit(identity)(agent)
    assert jax.tree.structure(same) == jax.tree.structure(agent) and float(same.alpha) == pytest.approx(0.3)
    assert "alpha=float32[]" in traced[0] and "name='linucb'" in traced[0]
    population = agent.replace(alpha=jnp.asarray([0.1, 0.3, 1.0, 3.0]))
    out = jax.vmap(identity, in_axes=(jax.tree.map(lambda _: None, agent).replace(alpha=0),))(population)
    assert out.alpha.shape == (4,)
    assert_short(repr(population), "alpha=float32[4]", "name='linucb'")


@pytest.mark.parametrize("name, facts", [
    ("ucb1", ("UCB1State(", "counts=float32[40]", "steps=0")),
    ("linucb", ("LinearState(", "covariance_root=float32[10,10]", "steps=0")),
    ("ppo", ("PGState(", "params=State(", "arrays", "updates=0")),
    ("dqn", ("DQNState(", "buffer=", "numbers")),
])
def test_agent_state_reprs(env_and_params, name, facts):
    """Agent states hold networks, optimiser states and replay buffers (PPO's ran to 54,282 characters)."""
    env, params = env_and_params
    settings = {"buffer_size": 64, "batch_size": 8} if name == "dqn" else {}
    state = make_agent(name, env, **settings).init(jax.random.key(0), params)
    assert_short(repr(state), *facts)
    batched = jax.tree.map(lambda x: jnp.stack([x, x]), state)
    assert_short(repr(batched), type(state).__name__ + "(")


def test_frozen_agent_shows_its_state_by_size(env_and_params):
    from rlrec.agents.base import Frozen

    env, params = env_and_params
    agent = make_agent("linucb", env)
    frozen = Frozen.of(agent, agent.init(jax.random.key(0), params))
    assert_short(repr(frozen), "name='linucb'", "LinUCB(", "LinearState(", "arrays")


def test_result_reprs(tmp_path: Path, env_and_params):
    seeds, steps = 2, 5
    arrays = {name: np.full((seeds, steps), 0.5, np.float32)
              for name in ("reward", "regret", "expected_reward", "oracle_expected_reward", "precision", "recall",
                           "ndcg", "diversity", "done")}
    run = RunResult(env_id="MovieLens-BanditSlate-v0", agent="linucb", mode="personal", num_users=1,
                    slates=np.zeros((seeds, steps, 3), np.int32), wall_time=1.234, devices=["cpu:0"], **arrays)
    assert_short(repr(run), "env_id='MovieLens-BanditSlate-v0'", "agent='linucb'", "seeds=2", "steps=5",
                 "mean_reward=0.5", "cumulative_regret=2.5", "wall_time=1.23")

    cell = Cell("MovieLens-Bandit-v0", "random", {"ctr": np.ones(seeds)},
                np.cumsum(np.ones((seeds, steps), np.float32), axis=1),
                {"wall_time_s": 2.0, "compile_time_s": 1.0, "user_steps": 10, "devices": ["cpu:0"],
                 "suite": {"name": "x", "envs": ["MovieLens-Bandit-v0"] * 50}})
    assert_short(repr(cell), "env='MovieLens-Bandit-v0'", "agent='random'", "seeds=2", "steps=5",
                 "cumulative_regret=5.0")
    suite = Suite(name="tiny", envs=("MovieLens-Bandit-v0",), agents=("random", "linucb"), seeds=seeds, steps=steps)
    result = SuiteResult(suite, tmp_path, [cell], [("MovieLens-Bandit-v0", "random")])
    assert_short(repr(result), "suite='tiny'", "agents=2", "cells=1", "ran=1", "seeds=2", "steps=5")

    metrics = {"episodes": np.ones((seeds, 3)), "return_sum": np.full((seeds, 3), 4.0), "loss": np.zeros((seeds, 3))}
    env, _ = env_and_params
    trained = TrainResult(make_agent("ppo", env), carry=None, metrics=metrics, env_steps=96, wall_time=3.0,
                          devices=["cpu:0"])
    assert_short(repr(trained), "agent='ppo'", "seeds=2", "iterations=3", "env_steps=96", "episode_return=4.0")
