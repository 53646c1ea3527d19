"""Policies by name (:func:`make_policy`) and learners trained, then frozen, to become policies (:func:`fitted`)."""

from __future__ import annotations

import dataclasses
import functools

import jax

from rlrec.agents.base import Agent
from rlrec.agents.registry import agent_class, make_agent
from rlrec.envs.recsys import EnvParams, RecEnv
from rlrec.errors import InputError
from rlrec.ope import policies
from rlrec.ope.collector import TRAIN, stream_key
from rlrec.ope.specs import UNIFORM, PolicySpec, parse_policy
from rlrec.rollout.steps import shared_step, start_users

TRAIN_USERS = 128  # default training of a learning agent before it is frozen: users in parallel x steps
TRAIN_STEPS = 50


@functools.partial(jax.jit, static_argnames=("env", "users", "steps"))
def _train(key, params, agent, *, env, users, steps):
    carry = start_users(env, agent, params, users, key)
    step = functools.partial(shared_step, env, agent, params, 0, users)
    (_, _, state), _ = jax.lax.scan(step, carry, jax.random.split(jax.random.fold_in(key, 1), steps))
    return state


def fitted(agent: Agent, env: RecEnv, params: EnvParams, *, num_users: int = TRAIN_USERS,
           num_steps: int = TRAIN_STEPS, seed: int = 0):
    """``agent``'s state after learning, in shared mode, from ``num_users`` users in parallel for ``num_steps``
    steps (``num_users x num_steps`` rounds): the state a frozen policy then acts from.

    The training users are their own draw (``seed`` keys a stream apart from any log's), not the users of a log.
    """
    if num_users < 1 or num_steps < 1:
        raise InputError(f"num_users and num_steps must be >= 1, got {num_users} and {num_steps}.")
    program_env = dataclasses.replace(env, track_regret=False)
    key = stream_key(seed, TRAIN)  # the seed's training stream: apart from any log's users
    return _train(key, params, agent, env=program_env, users=num_users, steps=num_steps)


def make_policy(name: str | PolicySpec, env: RecEnv, params: EnvParams, *, train_users: int = TRAIN_USERS,
                train_steps: int = TRAIN_STEPS, samples: int = 1000, seed: int = 0) -> policies.Policy:
    """The policy ``name`` (:mod:`rlrec.ope.specs`) for ``env``; learning agents are trained first (:func:`fitted`).

    An agent class that declares ``fit_settings`` learns here with them (a linear bandit: request-times-item
    features), so that one frozen state serves every user, each by their request; frozen, it scores by its
    estimate (no exploration bonus, no posterior draw), except in ``sampled:`` policies, which draw as it does.
    ``samples``: Monte Carlo draws per round of ``sampled:`` policies and of a softmax's later slots.
    """
    spec = name if isinstance(name, PolicySpec) else parse_policy(name)
    size = env.slate_size
    if spec.family == UNIFORM:
        return policies.Uniform(slate_size=size, label=spec.label)
    fit_settings = agent_class(spec.agent)[0].fit_settings
    agent = make_agent(spec.agent, env, **(fit_settings or {}))
    state = agent.init(jax.random.key(seed), params)
    if fit_settings is not None:
        state = fitted(agent, env, params, num_users=train_users, num_steps=train_steps, seed=seed)
    common = {"slate_size": size, "label": spec.label, "agent": agent, "state": state}
    if spec.family == "greedy":
        return policies.Greedy(**common)
    if spec.family == "epsilon-greedy":
        return policies.EpsilonGreedy(epsilon=spec.number, **common)
    if spec.family == "softmax":
        return policies.Softmax(temperature=spec.number, marginal_samples=samples, **common)
    return policies.Sampled(draws=samples, **common)
