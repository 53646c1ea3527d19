"""One environment step as the loops take it: the env step, the transition the agent learns from, the metrics.

:func:`env_step` is the only place a step's :class:`~rlrec.agents.base.Transition` is built; personal and shared
runs (:mod:`rlrec.rollout.runner`) and training rollouts (:mod:`rlrec.train.trainer`) all go through it (one user)
or :func:`batch_step` (a batch of users).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rlrec import metrics
from rlrec.agents.base import Agent, Transition, as_slate, slot_rewards
from rlrec.envs.recsys import EnvParams, RecEnv
from rlrec.rollout.seeds import init_key
from rlrec.simulators import choice


def env_step(env: RecEnv, params: EnvParams, key, env_state, obs, action, extras=None):
    """Steps one user and packs what they taught: ``(next_obs, next_state, transition, info)``."""
    next_obs, next_state, reward, terminated, truncated, info = env.step(key, env_state, action, params)
    slate = as_slate(action)
    transition = Transition(
        obs=obs,
        action=action,
        reward=reward,
        slot_rewards=slot_rewards(info["clicked_slot"], slate.shape[0]),
        next_obs=info["final_observation"],
        done=jnp.logical_or(terminated, truncated),
        terminated=terminated,
        extras={} if extras is None else extras,
    )
    return next_obs, next_state, transition, info


def batch_step(env: RecEnv, params: EnvParams, key, env_states, obs, actions, extras=None):
    """:func:`env_step` for a batch of users (leading axis ``B``), each with its own key from ``key``."""
    keys = jax.random.split(key, jax.tree.leaves(actions)[0].shape[0])  # a conversational action is a dict
    next_obs, next_states, transition, info = jax.vmap(lambda k, s, o, a: env_step(env, params, k, s, o, a))(
        keys, env_states, obs, actions
    )
    return next_obs, next_states, transition.replace(extras={} if extras is None else extras), info


def act(agent: Agent, key, agent_state, obs, params: EnvParams, env_state):
    """``agent.act``, handing it the env state only when it declares ``reads_hidden_state`` (the oracle): every
    other agent keeps the four-argument ``act`` it was written with."""
    if agent.reads_hidden_state:
        return agent.act(key, agent_state, obs, params, env_state=env_state)
    return agent.act(key, agent_state, obs, params)


def step_outputs(env: RecEnv, params: EnvParams, env_state, slate, info, accuracy_k: int) -> dict:
    """Per-user metrics of one step, computed inside the scan (no catalog-sized outputs)."""
    if accuracy_k > 0:
        utility, _, _ = env.item_utilities(env_state, params)
        _, relevant = choice.top_k(utility, accuracy_k)
    else:
        relevant = info["oracle_slate"]
    if slate.shape[-1] >= 2:
        diversity = metrics.intra_list_diversity(params.item_features[slate])
    else:
        diversity = jnp.asarray(jnp.nan, jnp.float32)
    talking = {"questions": info["asked"]} if "asked" in info else {}  # conversational envs: questions asked
    return {
        **talking,
        "regret": info["regret"],
        "expected_reward": info["expected_reward"],
        "oracle_expected_reward": info["oracle_expected_reward"],
        "precision": metrics.precision_at_k(slate, relevant),
        "recall": metrics.recall_at_k(slate, relevant),
        "ndcg": metrics.ndcg_at_k(slate, relevant),
        "diversity": diversity,
    }


def personal_step(env, agent: Agent, params, accuracy_k: int, carry, step_key):
    """One step of one user stream with its own learner; a user whose episode ends is replaced, learner too."""
    env_state, obs, agent_state = carry
    act_key, env_key, update_key, fresh_key = jax.random.split(step_key, 4)
    action = act(agent, act_key, agent_state, obs, params, env_state)
    next_obs, next_env_state, transition, info = env_step(env, params, env_key, env_state, obs, action)
    agent_state, _ = agent.update(update_key, agent_state, transition, params)
    fresh = agent.init(fresh_key, params)  # a new user gets a new learner
    done = transition.done
    agent_state = jax.tree.map(lambda new, old: jnp.where(done, new, old), fresh, agent_state)
    slate = as_slate(action)
    outputs = step_outputs(env, params, env_state, slate, info, accuracy_k)
    outputs.update(reward=transition.reward, done=done, slates=slate)
    return (next_env_state, next_obs, agent_state), outputs


def shared_step(env, agent: Agent, params, accuracy_k: int, num_users: int, carry, step_key):
    """One step of a batch of users served by one learner, which learns from the whole batch."""
    env_states, obs, agent_state = carry
    act_key, env_key, update_key = jax.random.split(step_key, 3)
    act_keys = jax.random.split(act_key, num_users)
    if agent.reads_hidden_state:  # each user's own hidden state
        actions = jax.vmap(lambda k, o, s: act(agent, k, agent_state, o, params, s))(act_keys, obs, env_states)
    else:  # one learner serves the batch: let it act on the whole batch at once
        actions, _ = agent.act_batch(act_keys, agent_state, obs, params)
    next_obs, next_env_states, transition, info = batch_step(env, params, env_key, env_states, obs, actions)
    slates = jax.vmap(as_slate)(actions)
    agent_state, _ = agent.update(update_key, agent_state, transition, params)
    per_user = jax.vmap(lambda s, a, i: step_outputs(env, params, s, a, i, accuracy_k))(env_states, slates, info)
    outputs = {name: jnp.mean(value) for name, value in per_user.items()}
    outputs.update(reward=jnp.mean(transition.reward), done=jnp.sum(transition.done), slates=slates)
    return (next_env_states, next_obs, agent_state), outputs


def start_users(env: RecEnv, agent: Agent, params: EnvParams, num_users: int | None, seed_key):
    """One seed's first ``(env_state, obs, agent_state)``: one user (``num_users`` None) or a batch of users."""
    env_key, agent_key = init_key(seed_key)
    if num_users is None:
        obs, env_state = env.reset(env_key, params)
    else:
        obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(env_key, num_users), params)
    return env_state, obs, agent.init(agent_key, params)
