"""The conversational environment: answer and critique models (hand-computed and sampled), the key-term bank,
regret untouched by asking, jit == eager, vmap == loop, patience, overrides and errors."""

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from synthetic import UNIT, synthetic_catalog, synthetic_env, synthetic_world

import rlrec
from rlrec.data import Catalog
from rlrec.data.key_terms import Critiques, KeyTerms
from rlrec.data.preprocessing import CatalogError
from rlrec.envs import conversation
from rlrec.envs.conversation import ConversationalEnv

SIGMA = 4.0  # tolerance of the sampling tests, in standard errors
DRAWS = 20_000


@pytest.fixture(scope="module")
def talking():
    """``MovieLens-ConversationalSlate-v0`` on the synthetic unit world."""
    return synthetic_env("MovieLens-ConversationalSlate-v0", **UNIT)


def _hand_params(**knobs):
    """A 3-d world: items on the axes, key-terms along x and y, critiques along +x and -x; knobs as given."""
    items = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [-1.0, 0, 0]])
    catalog = Catalog.from_arrays(items)
    key_terms = KeyTerms(("x", "y"), np.array([[1.0, 0, 0], [0, 1.0, 0]]), (np.array([0]), np.array([1, 2])),
                         ("text", "text"))
    critiques = Critiques(("more x", "less x"), np.array([[1.0, 0, 0], [-1.0, 0, 0]]))
    world = synthetic_world(items=4, dim=3, users=2)
    return rlrec.make("MovieLens-ConversationalSlate-v0", catalog=catalog, population=world["population"],
                      key_terms=key_terms, critiques=critiques, slate_size=2, **knobs)


def test_answer_probability_by_hand():
    _, params = _hand_params(answer_beta=4.0, answer_bias=-1.0, answer_noise=0.2)
    interest = jnp.array([0.6, 0.8, 0.0])
    for question, match in ((0, 0.6), (1, 0.8)):
        truthful = 1.0 / (1.0 + np.exp(-(4.0 * match - 1.0)))
        expected = 0.8 * truthful + 0.1
        got = float(conversation.answer_probability(interest, jnp.int32(question), params))
        assert got == pytest.approx(expected, rel=1e-6)


def test_answers_sample_their_probabilities_within_four_sigma():
    _, params = _hand_params(answer_beta=3.0, answer_bias=0.5, answer_noise=0.1, no_answer_rate=0.25)
    interest = jnp.array([0.0, -0.6, 0.8])
    keys = jax.random.split(jax.random.key(0), DRAWS)
    answers = np.asarray(jax.vmap(lambda k: conversation.answer(k, interest, jnp.int32(1), params))(keys))
    assert set(np.unique(answers)) <= {-1.0, 0.0, 1.0}
    silent = np.mean(answers == 0.0)
    assert abs(silent - 0.25) < SIGMA * np.sqrt(0.25 * 0.75 / DRAWS)
    spoken = answers[answers != 0.0]
    p = float(conversation.answer_probability(interest, jnp.int32(1), params))
    assert abs(np.mean(spoken == 1.0) - p) < SIGMA * np.sqrt(p * (1 - p) / spoken.size)
    unasked = jax.vmap(lambda k: conversation.answer(k, interest, jnp.int32(-1), params))(keys[:100])
    assert np.all(np.asarray(unasked) == 0.0)


def test_critique_points_from_what_was_shown_toward_the_taste():
    _, params = _hand_params(critique_rate=1.0, critique_noise=0.0)
    interest = jnp.array([1.0, 0.0, 0.0])
    key = jax.random.key(1)
    # Shown: items y and z (mean (0, .5, .5)); u - m = (1, -.5, -.5): "more x" scores 1, "less x" -1.
    scores = conversation.critique_scores(interest, jnp.array([1, 2]), params)
    np.testing.assert_allclose(np.asarray(scores), [1.0, -1.0], atol=1e-6)
    assert int(conversation.critique(key, interest, jnp.array([1, 2]), jnp.bool_(False), params)) == 0
    # Shown: x twice (a repeat is shown once) -> u - m = 0: a tie; shown x and -x -> m = 0, "more x" again.
    scores = conversation.critique_scores(interest, jnp.array([0, 0]), params)
    np.testing.assert_allclose(np.asarray(scores), [0.0, 0.0], atol=1e-6)
    assert int(conversation.critique(key, -interest, jnp.array([0, 3]), jnp.bool_(False), params)) == 1
    # A click: no critique.
    assert int(conversation.critique(key, interest, jnp.array([1, 2]), jnp.bool_(True), params)) == -1


def test_critique_rate_and_noise_sample_within_four_sigma():
    _, params = _hand_params(critique_rate=0.3, critique_noise=1.0)
    interest = jnp.array([0.6, 0.8, 0.0])
    slate = jnp.array([1, 2])
    keys = jax.random.split(jax.random.key(2), DRAWS)
    said = np.asarray(jax.vmap(lambda k: conversation.critique(k, interest, slate, jnp.bool_(False), params))(keys))
    assert abs(np.mean(said >= 0) - 0.3) < SIGMA * np.sqrt(0.3 * 0.7 / DRAWS)
    # Gumbel noise of scale s makes the choice a softmax of scores / s: P("more x") = sigmoid(2 * score / 1).
    score = float(conversation.critique_scores(interest, slate, params)[0])
    p = 1.0 / (1.0 + np.exp(-2.0 * score))
    spoken = said[said >= 0]
    assert abs(np.mean(spoken == 0) - p) < SIGMA * np.sqrt(p * (1 - p) / spoken.size)


def test_observation_carries_the_last_answer_and_critique(talking):
    env, params = talking
    params = params.replace(critique_rate=jnp.float32(1.0), no_answer_rate=jnp.float32(0.0))
    obs, state = env.reset(jax.random.key(0), params)
    assert obs["question"].tolist() == [-1] and obs["answer"].tolist() == [0.0] and obs["critique"].tolist() == [-1]
    space = env.observation_space(params)
    action = {"slate": jnp.arange(5, dtype=jnp.int32), "question": jnp.int32(7)}
    step_env = jax.jit(env.step)
    for step in range(20):
        obs, state, reward, _, _, info = step_env(jax.random.key(step + 1), state, action, params)
        assert bool(space.contains(obs))
        assert obs["question"].tolist() == [7] and obs["answer"].tolist() == [float(info["answer"])] != [0.0]
        if reward > 0:
            assert obs["critique"].tolist() == [-1] and not np.any(obs["critique_embedding"])
        else:
            critique = int(obs["critique"][0])
            assert critique >= 0
            np.testing.assert_array_equal(obs["critique_embedding"], params.critique_features[critique])
    assert int(state.questions) == 20


def test_asking_changes_no_click_oracle_or_regret(talking, slate_bandit):
    env, params = talking
    plain, plain_params = slate_bandit
    keys = jax.random.split(jax.random.key(3), 30)
    questions = jax.random.randint(jax.random.key(4), (30,), -1, env.num_key_terms(params))
    slates = jax.vmap(lambda k: plain.action_space(plain_params).sample(k))(keys)

    def trace(env, params, ask):
        def one(carry, inputs):
            state = carry
            key, slate, question = inputs
            action = {"slate": slate, "question": question} if ask else slate
            _, state, reward, _, _, info = env.step(key, state, action, params)
            return state, (reward, info["expected_reward"], info["oracle_expected_reward"], info["regret"],
                           info["oracle_slate"], info["clicked_slot"])

        _, state = env.reset(jax.random.key(5), params)
        return jax.lax.scan(one, state, (keys, slates, questions))[1]

    for asked, plain_out in zip(trace(env, params, True), trace(plain, plain_params, False)):
        np.testing.assert_array_equal(np.asarray(asked), np.asarray(plain_out))


def test_jit_equals_eager_and_vmap_equals_loop(talking):
    env, params = talking
    keys = jax.random.split(jax.random.key(6), 4)
    actions = jax.vmap(lambda k: env.action_space(params).sample(k))(keys)
    _, states = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
    batched = jax.vmap(env.step, in_axes=(0, 0, 0, None))(keys, states, actions, params)
    step = jax.jit(env.step)
    for i in range(4):
        state = jax.tree.map(lambda x: x[i], states)
        action = jax.tree.map(lambda x: x[i], actions)
        jitted = step(keys[i], state, action, params)
        for a, b in zip(jax.tree.leaves(jitted), jax.tree.leaves(batched)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b)[i], rtol=1e-5, atol=1e-6)
    with jax.disable_jit():  # eager, op by op (one user: eager is slow)
        eager = env.step(keys[0], jax.tree.map(lambda x: x[0], states), jax.tree.map(lambda x: x[0], actions), params)
    for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(batched)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b)[0], rtol=1e-5, atol=1e-6)


def test_questions_cost_patience_in_the_session_setting():
    env, params = synthetic_env("MovieLens-ConversationalSession-v0", **UNIT)
    assert float(params.question_cost) == pytest.approx(0.1)
    _, state = env.reset(jax.random.key(7), params)
    step = jax.jit(env.step_env)
    slate = jnp.int32(0)
    _, silent, *_ = step(jax.random.key(8), state, {"slate": slate, "question": jnp.int32(-1)}, params)
    _, asked, *_ = step(jax.random.key(8), state, {"slate": slate, "question": jnp.int32(3)}, params)
    assert float(silent.budget - asked.budget) == pytest.approx(0.1)

    def episode_length(question):
        def one(carry, key):
            state, alive, length = carry
            _, state, _, terminated, truncated, _ = env.step_env(key, state, {"slate": slate, "question": question},
                                                                 params)
            length = length + alive
            return (state, alive & ~(terminated | truncated), length), None

        _, start = env.reset(jax.random.key(9), params)
        carry, _ = jax.lax.scan(one, (start, jnp.bool_(True), jnp.int32(0)), jax.random.split(jax.random.key(10), 100))
        return int(carry[2])

    params = params.replace(question_cost=jnp.float32(0.5))  # half a step per question: the user leaves sooner
    assert episode_length(jnp.int32(2)) < episode_length(jnp.int32(-1))


def test_key_term_relation_and_centroids_by_hand():
    key_terms = KeyTerms(("a", "b"), np.eye(2), (np.array([0, 1]), np.array([1])), ("text", "text"))
    items, ids = key_terms.relation()
    assert items.tolist() == [0, 1, 1] and ids.tolist() == [0, 0, 1]
    vectors = np.array([[2.0, 0.0], [0.0, 4.0]])
    # Item 1 belongs to two key-terms (weight 1/2), item 0 to one (weight 1): a = (1 * [2, 0] + .5 * [0, 4]) / 1.5.
    np.testing.assert_allclose(key_terms.centroids(vectors), [[4 / 3, 4 / 3], [0.0, 4.0]], rtol=1e-6)


def test_bank_errors_name_the_problem():
    catalog = synthetic_catalog(items=10, dim=4)
    with pytest.raises(CatalogError, match="non-empty list of related item indices"):
        KeyTerms(("a",), np.ones((1, 4)), (np.array([], np.int32),), ("text",))
    with pytest.raises(CatalogError, match="must be distinct"):
        KeyTerms.from_texts(catalog, ["war films", "war films"])
    with pytest.raises(CatalogError, match="wrap it in a list"):
        KeyTerms.from_texts(catalog, "war films")
    with pytest.raises(CatalogError, match="no language model"):  # a catalog of arrays cannot embed texts
        KeyTerms.from_texts(catalog, ["war films"])
    wrong_dim = KeyTerms(("a",), np.ones((1, 3)), (np.array([0]),), ("text",))
    with pytest.raises(CatalogError, match="build them with KeyTerms.from_texts"):
        wrong_dim.check_catalog(catalog)
    outside = KeyTerms(("a",), np.ones((1, 4)), (np.array([10]),), ("text",))
    with pytest.raises(CatalogError, match="outside catalog"):
        outside.check_catalog(catalog)


def test_overrides_and_their_errors():
    with pytest.raises(ValueError, match=r"belong to the Conversational envs"):
        synthetic_env("MovieLens-Bandit-v0", answer_beta=2.0)
    with pytest.raises(ValueError, match=r"answer_noise must be in \[0, 1\]"):
        synthetic_env("MovieLens-Conversational-v0", answer_noise=1.5)
    with pytest.raises(ValueError, match="key_terms must be a list of texts or a KeyTerms"):
        synthetic_env("MovieLens-Conversational-v0", key_terms=3)
    env, params = synthetic_env("MovieLens-Conversational-v0", answer_beta=2.5, critique_rate=0.0)
    assert isinstance(env, ConversationalEnv)
    assert float(params.answer_beta) == 2.5 and float(params.critique_rate) == 0.0
    names = {row.name for row in rlrec.envs.registry.overrides_of("MovieLens-ConversationalSession-v0")}
    assert {"key_terms", "critiques", "answer_beta", "question_cost"} <= names


def test_gymnasium_refuses_bad_questions_clearly():
    env = gymnasium.make("rlrec/MovieLens-ConversationalSlate-v0", **synthetic_world(**UNIT))
    env.reset(seed=0)
    slate = env.action_space["slate"].sample()
    from rlrec.envs.gym import InvalidActionError

    with pytest.raises(InvalidActionError, match=r"Question 200 is out of range: this env has key-terms 0..199"):
        env.step({"slate": slate, "question": 200})
    with pytest.raises(InvalidActionError, match="must be a dict"):
        env.step(slate)
    obs, reward, terminated, truncated, info = env.step({"slate": slate, "question": -1})
    assert info["asked"] == 0.0 and obs["answer"].tolist() == [0.0]


def test_movielens_key_terms_are_genres_decades_and_titles(movielens):
    key_terms = KeyTerms.for_catalog(movielens.with_projection(32))
    kinds = set(key_terms.kinds)
    assert kinds == {"genre", "genre pair", "decade", "like title"}
    assert 200 <= len(key_terms) <= 400
    war = key_terms.texts.index("war films")
    genre = movielens.genre_names.index("War")
    assert np.all(movielens.genres[key_terms.related[war], genre])
    assert "films from the 1980s" in key_terms.texts
    # The LM puts a key-term near the items it relates: related items are far closer than the catalog at large.
    features = movielens.with_projection(32).features
    related = np.mean([features[r].mean(0) @ k for r, k in zip(key_terms.related, key_terms.features)])
    overall = np.mean(features @ key_terms.features.T)
    assert related > overall + 0.3


def test_snapshot_round_trips_a_conversational_env(tmp_path, talking):
    from rlrec.envs.snapshot import load_env, save_env

    env, params = talking
    loaded_env, loaded = load_env(save_env(tmp_path / "talk.npz", env, params))
    assert isinstance(loaded_env, ConversationalEnv) and loaded_env == env
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(loaded)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
