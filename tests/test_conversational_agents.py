"""Conversational agents (rlrec.agents.conversational): ConUCB == a float64 NumPy reference from the paper's formulas,
question schedules counted, answers moving the posterior the right way, asking LinUCB reducing to LinUCB, shared
mode, and an agent told the true answers approaching the oracle. Synthetic worlds only (no language model)."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from synthetic import UNIT, synthetic_catalog, synthetic_env, synthetic_population

import rlrec
from rlrec.agents import agent_names, make_agent
from rlrec.agents.base import Transition
from rlrec.agents.conversational import AskingLinUCB, ConUCB, question_budget
from rlrec.data.key_terms import KeyTerms
from rlrec.envs.recsys import bandit_features
from rlrec.rollout.steps import env_step

STEPS = 30  # of the smoke runs


@pytest.fixture(scope="module")
def talking_slate():
    """``MovieLens-ConversationalSlate-v0`` on the unit world (200 key-terms "items like <id>", 32 critiques)."""
    return synthetic_env("MovieLens-ConversationalSlate-v0", **UNIT)


@pytest.fixture(scope="module")
def small_world():
    """30 items in 6-d, slates of 5, and 8 key-terms of our own whose related items overlap (so ConUCB's
    ``1 / n_a`` weights matter)."""
    rng = np.random.default_rng(4)
    catalog = synthetic_catalog(30, 6, seed=4)
    related = tuple(np.sort(rng.choice(30, size=rng.integers(3, 8), replace=False)).astype(np.int32) for _ in range(8))
    features = np.stack([catalog.features[items].mean(axis=0) for items in related])
    key_terms = KeyTerms(tuple(f"key-term {j}" for j in range(8)), features, related, ("text",) * 8)
    env, params = rlrec.make("MovieLens-ConversationalSlate-v0", catalog=catalog,
                             population=synthetic_population(6, 6, seed=4), key_terms=key_terms, answer_bias=0.0)
    return env, params, related


@functools.partial(jax.jit, static_argnames=("env", "steps"))
def drive(env, params, agent, seed, *, steps):
    """``steps`` rounds of one user served by ``agent`` through the real env step (the loops' ``env_step``): per step
    the action, the clicked slot, the answer heard, the agent state after learning, and the user's hidden taste."""
    key = jax.random.key(seed)
    reset_key, init_key, steps_key = jax.random.split(key, 3)
    obs, env_state = env.reset(reset_key, params)

    def one(carry, step_key):
        env_state, obs, agent_state = carry
        act_key, env_key, update_key = jax.random.split(step_key, 3)
        action = agent.act(act_key, agent_state, obs, params)
        next_obs, next_state, transition, info = env_step(env, params, env_key, env_state, obs, action)
        agent_state, _ = agent.update(update_key, agent_state, transition, params)
        record = {"action": action, "clicked_slot": info["clicked_slot"], "answer": transition.next_obs["answer"][0],
                  "state": agent_state, "interest": env_state.interest, "request": obs["request"],
                  "done": transition.done}
        return (next_state, next_obs, agent_state), record

    carry = (env_state, obs, agent.init(init_key, params))
    return jax.lax.scan(one, carry, jax.random.split(steps_key, steps))[1]


def schedule(kind: str, scale: float, steps: int) -> np.ndarray:
    """The questions the schedule asks, 1 per asking round: round t asks iff questions so far < b(t)."""
    asked, questions = [], 0
    for t in range(1, steps + 1):
        budget = scale * math.floor(math.log(t)) if kind == "log" else math.floor(scale * t) if kind == "linear" else 0
        asked.append(int(questions < budget))
        questions += asked[-1]
    return np.asarray(asked)


def test_question_budget_is_b_of_t():
    rounds = jnp.arange(1, 30)
    t = np.arange(1, 30)
    np.testing.assert_array_equal(question_budget("log", 5.0, rounds), 5.0 * np.floor(np.log(t)))
    np.testing.assert_array_equal(question_budget("linear", 0.5, rounds), np.floor(0.5 * t))
    np.testing.assert_array_equal(question_budget("never", 5.0, rounds), np.zeros(29))
    # The paper's 5 floor(log t): 5 questions by round 3, 10 by round 8, 15 by 21, 20 by 55.
    assert schedule("log", 5.0, 60).sum() == 20 and schedule("log", 5.0, 60)[:2].sum() == 0


@pytest.mark.parametrize("name", agent_names("asks"))
def test_asking_agents_refuse_a_plain_env(slate_bandit, name):
    env, _ = slate_bandit
    with pytest.raises(ValueError, match="asks questions: use a Conversational env such as MovieLens-Conversational"):
        make_agent(name, env)


def _reference_top(scores: np.ndarray, chosen: np.ndarray, tolerance: float) -> None:
    """``chosen`` are the best ``len(chosen)`` of ``scores``, best first, up to ties within ``tolerance``."""
    best = np.sort(scores)[::-1][: len(chosen)]
    np.testing.assert_allclose(scores[chosen], best, rtol=0, atol=tolerance)


# The paper's settings (ConUCB's class defaults); the registry's "conucb" is tuned for MovieLens (registry.py).
PAPER = {"yes_reward": 1.0, "no_reward": 0.0, "arm_weight": 0.5, "alpha": 0.25, "key_term_alpha": 0.25}


@pytest.mark.parametrize("settings", [PAPER, {}], ids=["paper", "registry"])
def test_conucb_matches_a_float64_reference_of_the_paper(small_world, settings):
    """60 rounds of ConUCB through the real env against Algorithm 1 of Zhang et al. (2020) in float64 NumPy with
    explicit inverses: the same question and the same slate every round (up to float32 ties; measured: all 60
    slates identical), and theta, theta~ within 1e-4 of their largest entry (float32 square-root updates; measured
    4e-6)."""
    env, params, related = small_world
    agent = make_agent("conucb", env, **settings)
    rounds = 60
    record = jax.device_get(drive(env, params, agent, 2, steps=rounds))
    assert not record["done"].any()

    features = np.asarray(bandit_features(params), np.float64)
    # The env's key-term vectors are the paper's: each key-term's mean of its items, item a weighted 1 / n_a.
    per_item = np.bincount(np.concatenate(related), minlength=features.shape[0])
    centroids = np.stack([(features[items] / per_item[items, None]).sum(0) / (1.0 / per_item[items]).sum()
                          for items in related])
    np.testing.assert_allclose(params.key_term_centroids, centroids, rtol=0, atol=1e-6)

    lam, lam_tilde, alpha, alpha_tilde = agent.arm_weight, agent.key_term_regulariser, agent.alpha, agent.key_term_alpha
    yes, no = agent.yes_reward, agent.no_reward
    size = features.shape[1]
    arm, arm_response = (1 - lam) * np.eye(size), np.zeros(size)
    key_term, key_term_response = lam_tilde * np.eye(size), np.zeros(size)
    questions = 0
    answers_heard = []
    for t in range(1, rounds + 1):
        arm_inverse, key_term_inverse = np.linalg.inv(arm), np.linalg.inv(key_term)
        theta_tilde = key_term_inverse @ key_term_response
        theta = arm_inverse @ (arm_response + (1 - lam) * theta_tilde)
        spread = features @ arm_inverse
        scores = (features @ theta + lam * alpha * np.sqrt(np.einsum("if,fg,ig->i", features, arm_inverse, features))
                  + (1 - lam) * alpha_tilde * np.sqrt(np.einsum("if,fg,ig->i", spread, key_term_inverse, spread)))
        slate = record["action"]["slate"][t - 1]
        _reference_top(scores, slate, 1e-5)
        question = record["action"]["question"][t - 1]
        if questions < 5 * math.floor(math.log(t)):
            pulled = centroids @ arm_inverse
            credit = (np.sum((pulled @ features.T) ** 2, axis=1)
                      / (1 + np.einsum("kf,fg,kg->k", centroids, key_term_inverse, centroids)))
            _reference_top(credit, np.asarray([question]), 1e-5 * credit.max())
            questions += 1
            answer = record["answer"][t - 1]
            answers_heard.append(answer)
            if answer != 0:
                key_term += np.outer(centroids[question], centroids[question])
                key_term_response += (yes if answer > 0 else no) * centroids[question]
        else:
            assert question == -1
        clicks = np.arange(5) == record["clicked_slot"][t - 1]
        arm += lam * features[slate].T @ features[slate]
        arm_response += lam * features[slate].T @ clicks

        state = jax.tree.map(lambda x: x[t - 1], record["state"])
        theta_tilde = np.linalg.solve(key_term, key_term_response)
        theta = np.linalg.solve(arm, arm_response + (1 - lam) * theta_tilde)
        scale = max(np.abs(theta).max(), 1e-3)
        np.testing.assert_allclose(agent.estimate(state), theta, rtol=0, atol=1e-4 * scale)
        np.testing.assert_allclose(agent.key_term_estimate(state), theta_tilde, rtol=0,
                                   atol=1e-4 * max(np.abs(theta_tilde).max(), 1e-3))
    assert questions == 20 == int(state.questions) and int(state.steps) == rounds
    assert {1.0, -1.0} <= set(answers_heard)  # both kinds of answer were learnt from


def test_informative_question_is_the_largest_variance_reduction(talking_slate):
    """``question_scores`` (through the kept Gram matrix ``X^T X``) equals the summed drop of every item's posterior
    variance, from explicit float64 algebra, in both contexts."""
    env, params = talking_slate
    obs, _ = env.reset(jax.random.key(0), params)
    request = np.asarray(obs["request"], np.float64)
    rng = np.random.default_rng(0)
    for context in ("item", "request-item"):
        agent = AskingLinUCB(slate_size=5, context=context, answer_weight=2.0)
        state = agent.init(jax.random.key(0), params)
        # Some observations first, so A is not a multiple of I.
        rows = jnp.asarray(rng.normal(size=(40, state.estimate.shape[0])), jnp.float32)
        state = jax.jit(agent.observe)(state, rows, jnp.zeros(40), params)
        covariance = np.asarray(state.covariance, np.float64)
        scale = np.concatenate([request, [1.0, 1.0]]) if context == "request-item" else np.ones(covariance.shape[0])
        catalog = np.asarray(bandit_features(params), np.float64) * scale
        terms = np.asarray(params.key_term_features, np.float64)
        answer_rows = np.sqrt(2.0) * np.pad(terms, ((0, 0), (0, 2))) * scale
        before = np.einsum("if,fg,ig->i", catalog, covariance, catalog)
        drops = []
        for x in answer_rows:  # Sherman-Morrison by hand: the posterior after observing x
            after = covariance - np.outer(covariance @ x, covariance @ x) / (1 + x @ covariance @ x)
            drops.append(np.sum(before - np.einsum("if,fg,ig->i", catalog, after, catalog)))
        got = np.asarray(agent.question_scores(state, params, obs["request"]))
        np.testing.assert_allclose(got, drops, rtol=1e-3)
        asking = state.replace(steps=jnp.asarray(3, jnp.int32))  # round 4: b(4) = 5 > 0 questions, so it asks
        chosen = int(agent.question(jax.random.key(0), asking, obs, params))
        assert chosen == int(np.argmax(got)) and drops[chosen] >= (1 - 1e-4) * max(drops)


def test_random_and_informative_ask_different_questions(small_world):
    env, params, _ = small_world
    every_step = {"question_schedule": "linear", "question_scale": 1.0}
    asked = {name: np.asarray(drive(env, params, make_agent(name, env, **every_step), 0, steps=20)["action"]
                                 ["question"])
             for name in ("ask-linucb", "ask-random")}
    assert all((questions >= 0).all() and (questions < 8).all() for questions in asked.values())  # every step asks
    assert not np.array_equal(asked["ask-linucb"], asked["ask-random"])


def _one_step(agent, params, obs, question: int, answer: float, critique: int = -1):
    """A hand-made transition: the first five items shown without a click, ``question`` asked, ``answer`` heard,
    ``critique`` said (-1: none)."""
    told = dict(obs, question=jnp.asarray([question], jnp.int32), answer=jnp.asarray([answer], jnp.float32),
                critique=jnp.asarray([critique], jnp.int32),
                critique_embedding=params.critique_features[max(critique, 0)] * (critique >= 0))
    action = {"slate": jnp.arange(5, dtype=jnp.int32), "question": jnp.asarray(question, jnp.int32)}
    return Transition(obs=obs, action=action, reward=jnp.asarray(0.0), slot_rewards=jnp.zeros(5), next_obs=told,
                      done=jnp.asarray(False))


@pytest.mark.parametrize("name", ["ask-linucb", "ask-lints", "ask-lm-linucb", "conucb"])
def test_answers_move_the_posterior_the_right_way(talking_slate, name):
    """A yes to key-term j raises the mean's score of j's direction, a no lowers it, no answer changes nothing; a
    critique raises the score along it. ConUCB's direction of j is its key-term vector x~_j; with the paper's
    rewards its no (r~ = 0) only narrows M~ (the registry's conucb, r~ = -0.5 for a no, is checked below too)."""
    env, params = talking_slate
    agent = make_agent(name, env, **(PAPER if name == "conucb" else {}))
    obs, _ = env.reset(jax.random.key(3), params)
    state = agent.init(jax.random.key(0), params)
    j = 7

    def learnt(answer, critique=-1):
        return agent.update(jax.random.key(0), state, _one_step(agent, params, obs, j, answer, critique), params)[0]

    if name == "conucb":
        direction = params.key_term_centroids[j]
        yes, no, silent = learnt(1.0), learnt(-1.0), learnt(0.0)
        assert float(agent.key_term_estimate(yes) @ direction) > 0.05
        assert float(agent.estimate(yes) @ direction) > float(agent.estimate(silent) @ direction) + 0.05
        np.testing.assert_array_equal(agent.key_term_estimate(no), 0.0)
        assert float(no.key_term_root[0] @ no.key_term_root[0]) < float(state.key_term_root[0] @ state.key_term_root[0])
        np.testing.assert_array_equal(silent.key_term_root, state.key_term_root)
        assert int(yes.questions) == int(silent.questions) == 1
        tuned = make_agent("conucb", env)  # a no is r~ = -0.5: it lowers the key-term estimate along x~_j
        no = tuned.update(jax.random.key(0), tuned.init(jax.random.key(0), params),
                          _one_step(tuned, params, obs, j, -1.0, -1), params)[0]
        assert float(tuned.key_term_estimate(no) @ direction) < -0.02
        return
    request = obs["request"]
    direction = jnp.pad(params.key_term_features[j], (0, 2))
    silent = learnt(0.0)
    base = float(agent.mean(silent, params, request) @ direction)
    assert float(agent.mean(learnt(1.0), params, request) @ direction) > base + 0.01
    assert float(agent.mean(learnt(-1.0), params, request) @ direction) < base - 0.01
    # No answer and no critique: only the clicks' rows changed anything (the answer and critique rows are zero).
    clicks_only = agent.observe(state, bandit_features(params)[:5], jnp.zeros(5), params)  # the slate 0..4, no click
    np.testing.assert_array_equal(silent.covariance_root, clicks_only.covariance_root)
    np.testing.assert_array_equal(silent.estimate, clicks_only.estimate)
    critique = 3
    critique_direction = jnp.pad(params.critique_features[critique], (0, 2))
    critiqued = learnt(0.0, critique)
    assert float(agent.mean(critiqued, params, request) @ critique_direction) > float(
        agent.mean(silent, params, request) @ critique_direction) + 0.01
    if name != "ask-lints":  # LinUCB keeps every item's variance: still exact after the answer's rank-1 update
        yes = learnt(1.0)
        root = np.asarray(yes.covariance_root, np.float64)
        exact = np.sum((np.asarray(bandit_features(params), np.float64) @ root) ** 2, axis=1)
        np.testing.assert_allclose(yes.variances, exact, rtol=1e-5)


def test_asking_nothing_and_ignoring_critiques_is_linucb(talking_slate):
    """AskingLinUCB with ``question_scale`` 0 (b(t) = 0) and ``critique_weight`` 0: LinUCB slate for slate. (The
    runs' shapes are those of the next test, which then reuses both compiled programs.)"""
    env, params = talking_slate
    quiet = make_agent("ask-linucb", env, question_schedule="linear", question_scale=0.0, critique_weight=0.0)
    asking = rlrec.run(env, params, quiet, num_seeds=64, num_steps=200, seed=1, accuracy_k=1, progress=False)
    plain = rlrec.run(env, params, make_agent("linucb", env), num_seeds=64, num_steps=200, seed=1, accuracy_k=1,
                      progress=False)
    np.testing.assert_array_equal(asking.slates, plain.slates)
    np.testing.assert_array_equal(asking.regret, plain.regret)
    assert asking.questions.sum() == 0


@pytest.mark.parametrize("name", agent_names("asks"))
def test_every_asking_agent_runs_and_asks_on_schedule(talking_slate, name):
    env, params = talking_slate
    result = rlrec.run(env, params, make_agent(name, env), num_seeds=2, num_steps=STEPS, seed=0, progress=False)
    assert np.isfinite(result.reward).all() and np.isfinite(result.regret).all() and (result.regret >= 0).all()
    assert not result.done.any()
    np.testing.assert_array_equal(result.questions, np.broadcast_to(schedule("log", 5.0, STEPS), (2, STEPS)))


def test_shared_mode_runs_asking_agents(talking_slate):
    env, params = talking_slate
    agent = make_agent("ask-linucb", env, question_schedule="linear", question_scale=0.5)
    result = rlrec.run(env, params, agent, num_seeds=2, num_steps=STEPS, mode="shared", num_users=8, progress=False)
    assert np.isfinite(result.regret).all()
    # Every user of a step gets the same decision: half the steps ask all 8 users (a round is one user's step).
    np.testing.assert_array_equal(result.questions, np.broadcast_to(np.arange(STEPS) % 2, (2, STEPS)))


@pytest.mark.parametrize("name", ["conucb", "ask-linucb"])
def test_shared_mode_learns_a_batch_as_one_user_at_a_time(talking_slate, name):
    """One step of 8 users sharing one state (act_batch, then one update of the batch), as shared mode takes it: the
    same posterior as the 8 users' transitions learnt one by one, every user asked, 8 rounds and 8 questions."""
    env, params = talking_slate
    agent = make_agent(name, env, question_schedule="linear", question_scale=1.0)
    users = 8
    state = agent.init(jax.random.key(0), params)

    @jax.jit
    def one_step(state):
        reset_keys, act_keys, step_keys = jnp.split(jax.random.split(jax.random.key(5), 3 * users), 3)
        obs, env_states = jax.vmap(env.reset, in_axes=(0, None))(reset_keys, params)
        actions, _ = agent.act_batch(act_keys, state, obs, params)
        _, _, batch, _ = jax.vmap(lambda k, s, o, a: env_step(env, params, k, s, o, a))(step_keys, env_states, obs,
                                                                                         actions)
        return obs, actions, batch

    obs, actions, batch = one_step(state)
    assert (actions["question"] >= 0).all()
    update = jax.jit(lambda state, transition: agent.update(jax.random.key(0), state, transition, params)[0])
    together = update(state, batch)
    one_by_one = state
    for i in range(users):
        one_by_one = update(one_by_one, jax.tree.map(lambda x: x[i], batch))
    for kept, followed in zip(_posterior(agent, together, params, obs), _posterior(agent, one_by_one, params, obs)):
        np.testing.assert_allclose(kept, followed, rtol=0, atol=1e-5 * np.abs(followed).max())
    assert int(together.steps) == int(together.questions) == users


def _posterior(agent, state, params, obs) -> list:
    """What a posterior means, whatever square roots it is kept in (they depend on the order of the updates)."""
    if isinstance(agent, ConUCB):
        return [state.arm_root @ state.arm_root.T, state.key_term_root @ state.key_term_root.T, agent.estimate(state),
                agent.key_term_estimate(state)]
    return [state.covariance, agent.mean(state, params, obs["request"][0]), state.variances]


def test_told_the_true_answers_it_approaches_the_oracle():
    """Deterministic answers (answer_noise 0, answer_beta 1e3: yes iff <u, k> > 0.001), one question every step, no
    critiques: paired over the same 64 users x 200 steps, AskingLinUCB's regret over the last 50 steps is below
    LinUCB's by more than 3 standard errors, and it shows the oracle's top item in at least 70% of them.

    Why it approaches but does not reach the oracle: an answer is only the sign of <u, k>, and a linear model of
    signs recovers the taste's direction up to the sign-regression bias (here cos(theta, u) plateaus near 0.85),
    so the slate approaches the oracle's without reaching it. Measured: regret 0.046 vs LinUCB's 0.069 per step (a
    4.2-sigma lead), the top item shown in 78% of late steps (LinUCB 72%).
    """
    env, params = synthetic_env("MovieLens-ConversationalSlate-v0", **UNIT, answer_noise=0.0, answer_beta=1e3,
                                critique_rate=0.0)
    every_step = make_agent("ask-linucb", env, question_schedule="linear", question_scale=1.0)
    runs = {label: rlrec.run(env, params, agent, num_seeds=64, num_steps=200, seed=5, accuracy_k=1, progress=False)
            for label, agent in (("asking", every_step), ("linucb", make_agent("linucb", env)))}
    late = slice(150, 200)
    assert runs["asking"].questions.min() == 1.0
    lead = runs["linucb"].regret[:, late].sum(1) - runs["asking"].regret[:, late].sum(1)
    assert lead.mean() > 3 * lead.std(ddof=1) / np.sqrt(len(lead)), (lead.mean(), lead.std(ddof=1))
    assert runs["asking"].recall[:, late].mean() >= 0.7  # accuracy_k=1: recall is "the oracle's top item is shown"


@pytest.mark.slow
def test_on_movielens_asking_beats_never_asking_over_the_first_50_steps():
    """MovieLens-ConversationalSlate-v0, 128 cold-start users x 50 steps, paired (the same users for every agent):
    ConUCB and the LM-native asking LinUCB both end with less cumulative regret than never-asking LinUCB, and the
    questions themselves pay: ask-linucb beats its silent twin (the same learner asking nothing, still hearing
    critiques). Budget: the paired saving is more than 2.5 standard errors for ConUCB (measured 2.13 +- 0.59 of
    19.42, 3.6), 5 for ask-linucb (5.00 +- 0.50, 9.9) and 3 over the twin (1.31 +- 0.29, 4.5)."""
    env, params = rlrec.make("MovieLens-ConversationalSlate-v0")

    def regret(name, **settings):
        agent = make_agent(name, env, **settings)
        return rlrec.run(env, params, agent, num_seeds=128, num_steps=50, seed=0, progress=False).regret.sum(axis=1)

    never, asking = regret("linucb"), regret("ask-linucb")
    for saved, sigmas in ((never - regret("conucb"), 2.5), (never - asking, 5.0),
                          (regret("ask-linucb", question_scale=0.0) - asking, 3.0)):
        assert saved.mean() > sigmas * saved.std(ddof=1) / np.sqrt(saved.size), (sigmas, saved.mean())
