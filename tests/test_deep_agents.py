"""Deep RL agents learn the probe environments' known optimal values and policies; networks and tree."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from synthetic import UNIT, synthetic_env

from rlrec.agents import item_tree, make_agent, networks
from rlrec.envs.probes import ITEM_A, ITEM_B, make_probe
from rlrec.train.trainer import train

GAMMA = 0.9
# Synthetic worlds (no language model): UNIT (conftest.py's; PPO's item tree has 16 leaves of 13 slots, the last
# padded), and one of MovieLens's size, whose tree has MovieLens's 128 leaves of 71 slots, which the group sizes
# (users per leaf) of test_leaf_products_equal_the_direct_gather are written for.
MOVIELENS_SIZED = {"items": 9066, "dim": 32, "users": 64}
# Small, fast learners for 4-item worlds.
DQN_PROBE = dict(
    gamma=GAMMA, learning_rate=3e-3, buffer_size=2048, batch_size=64, learning_starts=64, target_period=20,
    epsilon_decay_steps=2000.0, epsilon_end=0.1, hidden=32, target_tau=0.02,
    rollout_length=1, n_step=1, gradient_steps=2,  # one-step TD: exact values under any behaviour policy
)
PPO_PROBE = dict(gamma=GAMMA, learning_rate=3e-3, rollout_length=4, hidden=32, entropy_coef=0.0)


def q_table(agent, state, values, params):
    return np.asarray(jax.jit(jax.vmap(lambda o: agent.q_values(state, o, params)))(values.observations))


def probabilities(agent, state, values, params):
    return np.asarray(jax.jit(jax.vmap(lambda o: agent.item_probabilities(state, o, params)))(values.observations))


SLOW = pytest.mark.slow  # the two-step probes (the harder ones) run by default, the rest in the slow step


@pytest.mark.parametrize(
    "probe", [pytest.param("one-step", marks=SLOW), pytest.param("contextual-one-step", marks=SLOW), "two-step"]
)
def test_dqn_learns_probe_values(probe):
    """Learnt Q-values of every reachable state within 0.1 of Q* (exact, deterministic rewards), and the
    greedy action is an optimal one (ties: any of them); two seeds."""
    env, params = make_probe(probe)
    agent = make_agent("dqn", env, **DQN_PROBE)
    result = train(env, params, agent, num_iterations=600, num_seeds=2, num_users=16, seed=0)
    values = env.optimal_values(params, GAMMA)
    for seed in range(2):
        learnt = q_table(agent, result.agent_state(seed), values, params)
        np.testing.assert_allclose(learnt, np.asarray(values.q_values), atol=0.1)
        q_star = np.asarray(values.q_values)
        greedy = q_star[np.arange(len(q_star)), learnt.argmax(axis=1)]
        np.testing.assert_array_equal(greedy, q_star.max(axis=1))


@pytest.mark.parametrize(
    "name, probe",
    [
        ("ppo", "two-step"),
        pytest.param("ppo", "contextual-one-step", marks=SLOW),
        pytest.param("reinforce", "two-step", marks=SLOW),
        pytest.param("reinforce", "contextual-one-step", marks=SLOW),
    ],
)
def test_policy_gradient_learns_probe_policies(name, probe):
    """The optimal item gets >= 0.9 of the policy's probability in every decision state where the choice
    matters (after B in the two-step probe nothing pays, so any item is optimal), and the critic's value of
    the start state is within 0.15 of V*."""
    env, params = make_probe(probe)
    agent = make_agent(name, env, **PPO_PROBE)
    result = train(env, params, agent, num_iterations=300, num_seeds=2, num_users=32, seed=0)
    values = env.optimal_values(params, GAMMA)
    q_star = np.asarray(values.q_values)
    matters = q_star.max(axis=1) > q_star.min(axis=1)
    for seed in range(2):
        state = result.agent_state(seed)
        probs = probabilities(agent, state, values, params)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        best = probs[np.arange(len(probs)), np.asarray(values.optimal_actions)]
        assert np.all(best[matters] >= 0.9), (values.names, probs)
        start_value = float(agent.value(state, jax.tree.map(lambda x: x[0], values.observations), params))
        assert abs(start_value - float(values.values[0])) < 0.15, start_value


def test_two_step_probe_is_not_solved_myopically():
    """Sanity check of the probe itself: with gamma 0.9 the far-sighted first action is A, a myopic one B."""
    env, params = make_probe("two-step")
    assert int(env.optimal_values(params, GAMMA).optimal_actions[0]) == ITEM_A
    assert int(env.optimal_values(params, 0.0).optimal_actions[0]) == ITEM_B


def test_training_is_deterministic_and_chunking_invariant():
    """Same seed, same curves and parameters, whether run in one call or in chunks."""
    env, params = make_probe("two-step")
    agent = make_agent("ppo", env, **PPO_PROBE)
    whole = train(env, params, agent, num_iterations=12, num_seeds=2, num_users=8, seed=3, chunk_size=12)
    again = train(env, params, agent, num_iterations=12, num_seeds=2, num_users=8, seed=3, chunk_size=12)
    chunked = train(env, params, agent, num_iterations=12, num_seeds=2, num_users=8, seed=3, chunk_size=4)
    for other in (again, chunked):
        for name in whole.metrics:
            np.testing.assert_array_equal(whole.metrics[name], other.metrics[name])
        jax.tree.map(np.testing.assert_array_equal, whole.agent_states, other.agent_states)
    different = train(env, params, agent, num_iterations=12, num_seeds=2, num_users=8, seed=4, chunk_size=12)
    assert not np.array_equal(whole.metrics["loss"], different.metrics["loss"])


def test_item_tree_is_a_balanced_partition():
    env, params = make_probe("one-step")
    params = params.replace(
        item_features=jax.random.normal(jax.random.key(0), (1000, 8)),
        item_quality=jnp.zeros(1000),
        item_appeal=jnp.zeros(1000),
    )
    tree = jax.jit(item_tree.build_item_tree)(params)
    leaves = np.asarray(tree.leaves)
    assert leaves.shape == item_tree.tree_shape(1000) == (32, 32)
    items = leaves[leaves >= 0]
    assert sorted(items.tolist()) == list(range(1000))  # every item exactly once
    assert np.all((leaves >= 0).sum(axis=1)[:-1] == 32)  # only the last leaf is padded
    np.testing.assert_array_equal(leaves[np.asarray(tree.leaf_of), np.asarray(tree.slot_of)], np.arange(1000))
    # Leaves group similar items: mean within-leaf cosine well above the catalog's.
    unit = np.asarray(params.item_features) / np.linalg.norm(np.asarray(params.item_features), axis=1, keepdims=True)
    within = np.mean([np.mean(unit[leaf[leaf >= 0]] @ unit[leaf[leaf >= 0]].T) for leaf in leaves])
    assert within > np.mean(unit @ unit.T) + 0.1


def test_networks_serve_any_catalog_size():
    """The same parameters score a 4-item and a 1000-item catalog (item scoring through features)."""
    env, params = make_probe("one-step")
    agent = make_agent("dqn", env)
    state = agent.init(jax.random.key(0), params)
    obs, _ = env.reset(jax.random.key(1), params)
    q_values = jax.jit(agent.q_values)
    assert q_values(state, obs, params).shape == (4,)
    bigger = params.replace(
        item_features=jnp.tile(params.item_features, (250, 1)),
        item_quality=jnp.zeros(1000),
        item_appeal=jnp.zeros(1000),
    )
    assert q_values(state, obs, bigger).shape == (1000,)


def test_policy_gradient_rejects_single_step_updates():
    env, params = make_probe("one-step")
    agent = make_agent("ppo", env)
    state = agent.init(jax.random.key(0), params)
    obs, _ = env.reset(jax.random.key(1), params)
    from rlrec.agents.base import Transition

    transition = Transition(obs, jnp.int32(0), jnp.float32(1), jnp.ones(1), obs, jnp.bool_(True), jnp.bool_(True),
                            {"log_prob": jnp.float32(0), "value": jnp.float32(0)})
    with pytest.raises(ValueError, match="rollout"):
        agent.update(jax.random.key(2), state, transition, params)


def test_n_step_returns_stop_at_episode_and_rollout_ends():
    """Hand-computed 3-step returns (gamma 0.5) over a 4-step rollout where the user leaves at step 1."""
    from rlrec.agents.base import Transition

    env, params = make_probe("one-step")
    agent = make_agent("dqn", env, gamma=0.5, n_step=3)
    obs = jax.tree.map(lambda x: jnp.stack([x] * 4)[:, None], env.reset(jax.random.key(0), params)[0])
    marked = dict(obs, progress=jnp.arange(4, dtype=jnp.float32)[:, None, None])  # tells the bootstraps apart
    done = jnp.array([[False], [True], [False], [False]])
    transition = Transition(obs, jnp.zeros((4, 1), jnp.int32), jnp.ones((4, 1)), jnp.zeros((4, 1, 1)), marked,
                            done, done)
    out = agent._n_step(transition)
    np.testing.assert_allclose(out.reward[:, 0], [1.5, 1.0, 1.5, 1.0])
    np.testing.assert_allclose(out.extras["discount"][:, 0], [0.0, 0.0, 0.25, 0.5])
    np.testing.assert_array_equal(out.next_obs["progress"][:, 0, 0], [1, 1, 3, 3])


@pytest.mark.parametrize("slate_size", [1, 3])
def test_slateq_picks_the_slate_of_highest_value(slate_size):
    """SlateQ's greedy slate maximises Q(s, A) = (sum_A e^v Qbar + V_none) / (sum_A e^v + 1) over every slate
    of k candidates (brute force), on random scores where clickbait (a high click logit, a low Qbar) tempts
    SlateQ's top-k heuristic (rank by e^v Qbar) away from it."""
    import itertools

    env, params = make_probe("one-step")
    agent = make_agent("slateq", env).replace(slate_size=slate_size)
    select = jax.jit(agent._select)
    rng = np.random.default_rng(0)
    heuristic_misses = 0
    for trial in range(40):
        qbar = rng.normal(5.0, 1.0, 9).astype(np.float32)
        logits = rng.normal(0.0, 3.0, 9).astype(np.float32)
        none_value = np.float32(rng.normal(4.5, 0.5))
        valid = np.arange(9) < 8  # the last candidate is padding and must never be chosen
        logits[8], qbar[8] = 30.0, 100.0

        def value(slate):
            w = np.exp(logits[list(slate)].astype(np.float64))
            return (np.sum(w * qbar[list(slate)]) + none_value) / (np.sum(w) + 1.0)

        best = max(value(s) for s in itertools.combinations(range(8), slate_size))
        chosen = np.asarray(select(jnp.stack([qbar, logits]), none_value, jnp.asarray(valid)))
        assert len(set(chosen.tolist())) == slate_size and np.all(chosen < 8)
        np.testing.assert_allclose(value(chosen), best, rtol=1e-5)
        heuristic = np.argsort(-np.exp(logits[:8]) * qbar[:8])[:slate_size]
        heuristic_misses += value(heuristic) < best - 1e-3
    assert heuristic_misses >= 5  # the test cases do tell the exact rule from the heuristic


def test_inverse_cdf_sampling_matches_the_softmax():
    """sample_by_cdf draws option i with probability softmax(logits)_i: 200k draws from a 5-option softmax with a
    masked option; every frequency within 4 sigma of its probability, and the masked option never drawn."""
    from rlrec.agents.deep import sample_by_cdf

    logits = jnp.array([0.5, -1.0, 2.0, item_tree.MASKED, 0.0])
    draws = 200_000
    uniform = jax.random.uniform(jax.random.key(0), (draws,))
    picked = np.asarray(sample_by_cdf(uniform, jnp.broadcast_to(logits, (draws, 5))))
    probs = np.asarray(jax.nn.softmax(logits))
    frequency = np.bincount(picked, minlength=5) / draws
    sigma = np.sqrt(probs * (1 - probs) / draws)
    assert frequency[3] == 0
    np.testing.assert_array_less(np.abs(frequency - probs), 4 * sigma + 1e-12)


def test_log_softmax_entropy_matches_the_two_exp_formula():
    """log_softmax_entropy gives jax.nn.log_softmax and -sum(p log p), and the same gradients of a loss mixing both,
    on rows with masked logits (probability 0, finite gradients) and with large logits (no overflow)."""
    from rlrec.agents.deep import log_softmax_entropy

    logits = jnp.array(
        [[0.5, -1.0, 2.0, item_tree.MASKED, 0.0], [300.0, 299.0, -5.0, 0.0, 1.0], [1.0, item_tree.MASKED] + [0.0] * 3]
    )
    weights = jax.random.normal(jax.random.key(0), logits.shape)

    def reference(x):
        log_probs = jax.nn.log_softmax(x)
        return log_probs, -jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1)

    def loss(fn, x):
        log_probs, entropy = fn(x)
        return jnp.sum(jnp.where(x > item_tree.MASKED, log_probs, 0.0) * weights) + 0.3 * jnp.sum(entropy)

    for got, want in zip(log_softmax_entropy(logits), reference(logits)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    got, want = jax.grad(lambda x: loss(log_softmax_entropy, x))(logits), jax.grad(lambda x: loss(reference, x))(logits)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("env_id", ["MovieLens-Session-v0", "MovieLens-SessionSlate-v0"])
def test_batched_policy_matches_its_parts(env_id):
    """PPO's batched acting (users grouped by leaf) agrees with the per-user definition: each user's item
    scores within a leaf equal the direct gather, and the returned log-probability is that of the chosen slate
    under the leaf softmax and Plackett-Luce."""
    env, params = synthetic_env(env_id, **UNIT, track_regret=False)
    agent = make_agent("ppo", env)
    slate_size = env.slate_size
    state = agent.init(jax.random.key(0), params)
    users = 300
    obs, _ = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.key(1), users), params)
    actions, extras = jax.jit(lambda k, o: agent.act_batch(k, state, o, params))(
        jax.random.split(jax.random.key(2), users), obs
    )
    outputs, memory = agent.tower(state.params, obs, params)
    head = networks.select_head(outputs, 0)
    tree = state.tree
    slates = np.asarray(actions).reshape(users, slate_size)
    leaf = np.asarray(tree.leaf_of)[slates[:, 0]]
    assert (np.asarray(tree.leaf_of)[slates] == leaf[:, None]).all()  # a slate comes from one leaf
    similarity = item_tree.leaf_item_similarity(tree, memory, jnp.asarray(leaf))
    np.testing.assert_allclose(np.asarray(extras["item_similarity"]), np.asarray(similarity), rtol=1e-6)
    blocked = np.asarray(item_tree.leaf_item_scores(tree, head, similarity, jnp.asarray(leaf)))
    direct = np.asarray(
        jax.vmap(lambda h, m, c: networks.score_items(h, tree.leaf_features[c], tree.leaf_embeddings[c], m))(
            head, memory, jnp.asarray(leaf)
        )
    )
    real = np.asarray(tree.leaves)[leaf] >= 0
    np.testing.assert_allclose(blocked[real], direct[real], rtol=1e-5, atol=1e-5)
    assert (blocked[~real] == item_tree.MASKED).all()
    leaf_log_probs = np.asarray(
        jax.nn.log_softmax(item_tree.centroid_scores(tree, head, item_tree.centroid_similarity(tree, memory)))
    )
    slots = np.asarray(tree.slot_of)[slates]
    plackett_luce = np.zeros(users)
    for user in range(users):  # each slot: softmax over the leaf's items not yet shown
        remaining = real[user].copy()
        for slot in slots[user]:
            logits = np.where(remaining, blocked[user].astype(np.float64), -np.inf)
            plackett_luce[user] += logits[slot] - np.logaddexp.reduce(logits)
            remaining[slot] = False
    expected = leaf_log_probs[np.arange(users), leaf] + plackett_luce
    np.testing.assert_allclose(np.asarray(extras["log_prob"]), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(extras["value"]), np.asarray(outputs["value"]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("users, group", [(1, None), (7, None), (128, 4), (1100, 8), (2500, 16)])
def test_leaf_products_equal_the_direct_gather(users, group):
    """Scores of a leaf's items, computed per user in blocks (fewer users than leaves) or for users grouped by
    leaf (groups of 4, 8 or 16 users by batch size; crowded leaves spanning several groups, empty leaves, the
    padded last leaf), equal the direct per-user gather, and so do their gradients."""
    env, params = synthetic_env("MovieLens-Session-v0", **MOVIELENS_SIZED, track_regret=False)
    tree = item_tree.build_item_tree(params)
    num_leaves = tree.leaves.shape[0]
    if group is not None:
        assert item_tree.leaf_group_size(users, num_leaves) == group
    keys = jax.random.split(jax.random.key(users), 4)
    crowded = jax.random.uniform(keys[0], (users,)) < 0.5  # half the users in three leaves, one of them the last
    leaves = jnp.where(
        crowded,
        jnp.array([0, 5, num_leaves - 1])[jax.random.randint(keys[1], (users,), 0, 3)],
        jax.random.randint(keys[2], (users,), 0, num_leaves // 2),
    )
    head = {
        "query": jax.random.normal(keys[3], (users, tree.leaf_features.shape[-1])),
        "boredom": jnp.linspace(0.0, 2.0, users),
        "bias": jnp.linspace(-1.0, 1.0, users),
    }
    memory = jax.random.normal(keys[0], (users, tree.leaf_embeddings.shape[-1]))

    def direct(head, memory):
        scores = jax.vmap(lambda h, m, c: networks.score_items(h, tree.leaf_features[c], tree.leaf_embeddings[c], m))(
            head, memory, leaves
        )
        return jnp.where(tree.leaves[leaves] >= 0, scores, item_tree.MASKED)

    def grouped(head, memory):
        similarity = item_tree.leaf_item_similarity(tree, memory, leaves)
        return item_tree.leaf_item_scores(tree, head, similarity, leaves)

    np.testing.assert_allclose(
        np.asarray(grouped(head, memory)), np.asarray(direct(head, memory)), rtol=1e-5, atol=1e-4
    )

    def loss(fn):
        return lambda h, m: jnp.sum(jnp.where(tree.leaves[leaves] >= 0, jnp.tanh(fn(h, m)), 0.0))

    expected = jax.grad(loss(direct), argnums=(0, 1))(head, memory)
    got = jax.grad(loss(grouped), argnums=(0, 1))(head, memory)
    for want, have in zip(jax.tree.leaves(expected), jax.tree.leaves(got)):
        np.testing.assert_allclose(np.asarray(have), np.asarray(want), rtol=1e-4, atol=1e-4)


def test_next_values_reuse_the_rollout_exactly():
    """The critic's next values, taken from the rollout where users stayed and computed only where the rollout
    was cut or an episode truncated, equal the critic run on every next observation. A tiny max_steps makes
    truncations happen inside the rollout; a max_steps shorter than the rollout takes the full branch."""
    from rlrec.rollout.steps import batch_step

    env, params = synthetic_env("MovieLens-Session-v0", **UNIT, track_regret=False)
    agent = make_agent("ppo", env, rollout_length=3)
    state = agent.init(jax.random.key(0), params)
    users = 64
    for max_steps in (3, 2):  # 3: at most one truncation per user per rollout; 2: more, the full branch
        env_params = params.replace(max_steps=jnp.asarray(max_steps, jnp.int32))
        obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.key(1), users), env_params)

        def step(carry, key, env_params=env_params):
            env_state, obs = carry
            act_key, env_key = jax.random.split(key)
            actions, extras = agent.act_batch(jax.random.split(act_key, users), state, obs, env_params)
            next_obs, env_state, transition, _ = batch_step(env, env_params, env_key, env_state, obs, actions, extras)
            return (env_state, next_obs), transition

        # One step first, so that users who stay are truncated inside the rollout, not at its end.
        (env_state, obs), _ = jax.lax.scan(step, (env_state, obs), jax.random.split(jax.random.key(2), 1))
        _, transition = jax.lax.scan(step, (env_state, obs), jax.random.split(jax.random.key(3), 3))
        truncated = np.asarray(transition.done & ~transition.terminated)
        assert truncated[:-1].any()
        fast = agent._next_values(state.params, transition, transition.terminated, env_params)
        full = agent.tower(state.params, transition.next_obs, env_params)[0]["value"]
        keep = ~np.asarray(transition.terminated)
        np.testing.assert_allclose(np.asarray(fast)[keep], np.asarray(full)[keep], rtol=1e-5, atol=1e-5)


def test_shuffled_is_a_uniform_permutation():
    """shuffled(key, n) is a permutation of range(n), for sizes that are and are not powers of two; over 20k
    shuffles of 5 items each item lands in each position with frequency 1/5 within 4 sigma."""
    from rlrec.agents.deep import shuffled

    for size in (1, 5, 16, 1000, 16384):
        order = np.asarray(shuffled(jax.random.key(size), size))
        assert sorted(order.tolist()) == list(range(size))
    trials = 20_000
    orders = np.asarray(jax.vmap(lambda k: shuffled(k, 5))(jax.random.split(jax.random.key(0), trials)))
    counts = np.stack([(orders == item).sum(axis=0) for item in range(5)]) / trials  # (item, position)
    sigma = np.sqrt(0.2 * 0.8 / trials)
    np.testing.assert_array_less(np.abs(counts - 0.2), 4 * sigma)


def test_tree_leaves_can_be_chosen():
    """tree_shape honours a power-of-two number of leaves and names the fix for any other; PPO builds it."""
    assert item_tree.tree_shape(9066, num_leaves=64) == (64, 142)
    assert item_tree.tree_shape(9066) == (128, 71)
    problems = {48: "must be a power of two", 256: "leave 150 slots empty", 16384: "leave 7318 slots empty"}
    for bad, problem in problems.items():  # not a power of two; too many leaves for the padding to fit
        with pytest.raises(ValueError, match=f"cannot have {bad} leaves: .*{problem}"):
            item_tree.tree_shape(9066, num_leaves=bad)
    _, params = make_probe("two-step")
    agent = make_agent("ppo", make_probe("two-step")[0], tree_leaves=2)
    assert agent.init(jax.random.key(0), params).tree.leaves.shape[0] == 2


def test_trainer_rejects_a_rollout_larger_than_the_replay_buffer():
    """A DQN rollout that cannot fit in its replay buffer is refused up front, naming both sizes and the fix."""
    from rlrec.train.trainer import Trainer

    env, params = make_probe("two-step")
    agent = make_agent("dqn", env, buffer_size=32, rollout_length=4)
    with pytest.raises(ValueError, match=r"64 transitions \(4 steps x 16 users\).*buffer of 32.*buffer_size >= 64"):
        Trainer(env, params, agent, num_users=16)
    Trainer(env, params, agent, num_users=8)  # 32 transitions fit


def test_policy_gradient_update_recomputes_what_acting_did_not_keep():
    """A rollout whose extras hold only the log-probabilities and values (collected by other code than
    act_batch) updates PPO to the same parameters as the rollout with act_batch's extras."""
    from rlrec.rollout.steps import batch_step

    env, params = make_probe("two-step")
    agent = make_agent("ppo", env, **PPO_PROBE)
    state = agent.init(jax.random.key(0), params)
    obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.key(1), 8), params)

    def step(carry, key):
        env_state, obs = carry
        act_key, env_key = jax.random.split(key)
        actions, extras = agent.act_batch(jax.random.split(act_key, 8), state, obs, params)
        next_obs, env_state, transition, _ = batch_step(env, params, env_key, env_state, obs, actions, extras)
        return (env_state, next_obs), transition

    _, rollout = jax.lax.scan(step, (env_state, obs), jax.random.split(jax.random.key(2), agent.rollout_length))
    bare = rollout.replace(extras={name: rollout.extras[name] for name in ("log_prob", "value")})
    kept, _ = agent.update(jax.random.key(3), state, rollout, params)
    recomputed, _ = agent.update(jax.random.key(3), state, bare, params)
    for want, have in zip(jax.tree.leaves(kept.params), jax.tree.leaves(recomputed.params)):
        np.testing.assert_allclose(np.asarray(have), np.asarray(want), rtol=1e-5, atol=1e-6)
    changed = [not np.allclose(a, b) for a, b in zip(jax.tree.leaves(kept.params), jax.tree.leaves(state.params))]
    assert any(changed)  # the update did something


def test_generalised_advantages_by_hand():
    """GAE over a 3-step rollout of 2 users (gamma 0.5, lambda 0.5); the second user's episode ends at step 0."""
    from rlrec.agents.returns import generalised_advantages

    deltas = jnp.array([[1.0, 1.0], [2.0, 2.0], [4.0, 4.0]])
    continues = jnp.array([[1.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    # user 0: A2 = 4, A1 = 2 + 0.25 * 4 = 3, A0 = 1 + 0.25 * 3 = 1.75; user 1: A0 = 1 (nothing crosses the end).
    np.testing.assert_allclose(generalised_advantages(deltas, continues, 0.5, 0.5), [[1.75, 1.0], [3.0, 3.0],
                                                                                     [4.0, 4.0]])
    # lambda 1: Monte Carlo returns of the TD errors (REINFORCE with a baseline).
    np.testing.assert_allclose(generalised_advantages(deltas, continues, 1.0, 1.0)[:, 0], [7.0, 6.0, 4.0])


def test_n_step_returns_by_hand():
    """The pure function behind DQN's n-step targets: a truncation (done, not terminated) keeps the bootstrap."""
    from rlrec.agents.returns import n_step_returns

    reward = jnp.ones((4, 1))
    done = jnp.array([[False], [True], [False], [False]])
    terminated = jnp.array([[False], [False], [False], [False]])  # step 1 is a truncation: still bootstrapped
    total, bootstrap, discount = n_step_returns(reward, done, terminated, 3, 0.5)
    np.testing.assert_allclose(total[:, 0], [1.5, 1.0, 1.5, 1.0])
    np.testing.assert_array_equal(bootstrap[:, 0], [1, 1, 3, 3])
    np.testing.assert_allclose(discount[:, 0], [0.25, 0.5, 0.25, 0.5])


def test_a_deep_agent_without_act_with_extras_says_so():
    """Agent.act_with_extras calls act and DeepAgent.act calls act_with_extras: a subclass that defines neither
    gets a clear error, not a RecursionError."""
    from rlrec.agents.deep import DeepAgent

    class Incomplete(DeepAgent):
        pass

    with pytest.raises(NotImplementedError, match="Incomplete must define act_with_extras"):
        Incomplete().act(None, None, None, None)
