"""Inputs at the edges of their ranges (issue 30, items 7-9): a conversational question that is not an integer,
linear-bandit regularisers too small for float32, and the memory of a run with pinned users."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from synthetic import synthetic_env

from rlrec.errors import InputError

# -- the question of a conversational action ------------------------------------------------------------------


@pytest.fixture(scope="module")
def talking():
    """A small conversational slate env (40 items, 8-d, 6 users), its params and a started user."""
    env, params = synthetic_env("MovieLens-ConversationalSlate-v0")
    _, state = env.reset(jax.random.key(0), params)
    return env, params, state


def _step(talking, question, jit: bool):
    env, params, state = talking
    action = {"slate": jnp.arange(env.slate_size, dtype=jnp.int32), "question": question}
    step = jax.jit(env.step) if jit else env.step
    return step(jax.random.key(1), state, action, params)


@pytest.mark.parametrize("question", [3.7, float("nan"), np.float32(3.0), np.nan, True, jnp.bool_(False)],
                         ids=["3.7", "nan", "float32-3", "numpy-nan", "True", "bool"])
def test_a_question_that_is_not_an_integer_is_refused_in_jit_and_eager_alike(talking, question):
    # One rule, decided by the dtype (static under jit): jit and eager cannot disagree. Before, 3.7 asked key-term
    # 3 and NaN asked key-term 0 under jit but nothing in eager mode.
    for jit in (False, True):
        with pytest.raises(InputError, match=r"integer.*jnp\.int32"):
            _step(talking, question, jit)


def test_a_question_of_several_values_is_refused(talking):
    for jit in (False, True):
        with pytest.raises(InputError, match=r"one key-term index"):
            _step(talking, jnp.array([1, 2], jnp.int32), jit)


@pytest.mark.parametrize("question", [-1, -5, 3, "K-1", "K", 10_000], ids=str)
def test_integer_questions_give_the_same_step_in_jit_and_eager(talking, question):
    env, params, _ = talking
    keys = env.num_key_terms(params)
    question = {"K-1": keys - 1, "K": keys}.get(question, question)
    eager = _step(talking, question, jit=False)
    jitted = _step(talking, jnp.int32(question), jit=True)
    info, jit_info = eager[5], jitted[5]
    asked = 0 <= question < keys  # outside -1 .. K-1 nothing is asked, in both modes
    assert int(info["question"]) == int(jit_info["question"]) == (question if asked else -1)
    assert float(info["asked"]) == float(jit_info["asked"]) == float(asked)
    assert float(info["answer"]) == float(jit_info["answer"])
    assert (float(info["answer"]) != 0.0) == asked
    for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
