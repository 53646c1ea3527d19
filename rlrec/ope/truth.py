"""The ground truth of off-policy evaluation: a target policy's exact value on the logged users.

The simulator knows every user's hidden state, so the expected clicks of any slate for the user of any logged
round are computed exactly (the env's choice model, no sampling). :func:`true_value` averages the target's
expected clicks over the log's rounds: for a deterministic target, or single items (a sum over the catalog), with
no Monte Carlo noise at all; for a stochastic slate target, from ``samples`` draws of its slate per round, with
the standard error said. :func:`on_policy_value` runs the target itself on fresh users (Monte Carlo, with its
confidence interval): the check of the exact truth, and the episode return of session envs, where what a policy
shows changes the user (drift, boredom, leaving) and a one-round counterfactual is not the whole story.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from rlrec.agents.base import Agent
from rlrec.envs.recsys import EnvParams, RecEnv
from rlrec.errors import InputError
from rlrec.ope.blocks import target_rounds
from rlrec.ope.collector import TRUTH, check_log, check_policy, state_class, stream_key
from rlrec.ope.log import Log
from rlrec.ope.policies import Policy, deterministic_slates
from rlrec.rollout.runner import run
from rlrec.simulators import choice


def slate_value(env: RecEnv, state, slate: jax.Array, params: EnvParams) -> jax.Array:
    """``()`` the exact expected clicks of ``slate`` (``(k,)``) for the user in ``state``: the env's own model."""
    utility, _, _ = env.slate_utilities(state, slate, params)
    return jnp.sum(env.slot_click_probabilities(utility, ~choice.mask_repeats(slate), params))


def item_values(env: RecEnv, state, params: EnvParams) -> jax.Array:
    """``(N,)`` the exact click probability of each item shown alone (single-item envs)."""
    utility, _, _ = env.item_utilities(state, params)
    return jax.vmap(lambda u: env.slot_click_probabilities(u[None], jnp.ones((1,), bool), params)[0])(utility)


@dataclasses.dataclass(frozen=True)
class Truth:
    """A target policy's value on a log's rounds.

    Attributes:
        value: the mean over the rounds of ``per_round``: the estimand every estimator aims at.
        per_round: ``(n,)`` the target's expected clicks at each logged round.
        samples: 0 when exact, else the Monte Carlo draws of the target's slate per round.
        stderr: the Monte Carlo standard error of ``value`` (0 when exact).
    """

    value: float
    per_round: np.ndarray
    samples: int = 0
    stderr: float = 0.0


def restore_states(env: RecEnv, params: EnvParams, log: Log):
    """The env states of a log's rounds (a pytree of ``(n, ...)`` arrays) in ``env``'s own state class.

    The class comes from the env, never from the file (a name read from a file is not something to import), and
    the log must name the same class and hold its fields, each of the env's dtype and per-round shape;
    :class:`~rlrec.errors.InputError` otherwise.
    """
    example = env.reset(jax.random.key(0), params)[1]
    cls, name = type(example), state_class(example)
    fields = [field.name for field in dataclasses.fields(example)]
    if log.state_class != name or sorted(log.states) != sorted(fields):
        raise InputError(f"The log holds states of {log.state_class} ({', '.join(sorted(log.states))}), but {env.name} "
                         f"has {name} ({', '.join(sorted(fields))}); pass the env the log was collected on.")
    for field in fields:
        value, expected = np.asarray(log.states[field]), getattr(example, field)
        if value.shape[1:] != expected.shape or value.dtype != expected.dtype:
            raise InputError(f"The log's state.{field} is {value.dtype} {value.shape[1:]} per round, but {env.name}'s "
                             f"is {expected.dtype} {expected.shape}; pass the env the log was collected on.")
    return cls(**{field: log.states[field] for field in fields})


@functools.partial(jax.jit, static_argnames=("env", "samples"))
def _true_block(keys, states, obs, slates, params, target, *, env, samples):
    def one(key, state, ob, slate):
        if target.deterministic:  # its slates were computed beforehand (deterministic_slates)
            return slate_value(env, state, slate, params), jnp.zeros(())
        if samples == 0:  # single items, probabilities exact: a sum over the catalog
            return target.marginals(key, ob, params)[0] @ item_values(env, state, params), jnp.zeros(())

        def add(totals, i):  # a scan over the draws: memory of one draw per round
            value = slate_value(env, state, target.sample(jax.random.fold_in(key, i), ob, params), params)
            return (totals[0] + value, totals[1] + value * value), None

        (total, squares), _ = jax.lax.scan(add, (jnp.zeros(()), jnp.zeros(())), jnp.arange(samples))
        mean = total / samples
        return mean, jnp.maximum(squares / samples - mean * mean, 0.0) / samples

    return jax.vmap(one)(keys, states, obs, slates)


def true_value(env: RecEnv, params: EnvParams, target: Policy, log: Log, *, samples: int = 256,
               seed: int = 0) -> Truth:
    """The exact expected clicks per round of ``target`` on the users of ``log`` (see the module docstring).

    Args:
        env, params: the env the log was collected on.
        target: the policy to evaluate.
        log: from :func:`rlrec.ope.collect`; its hidden states give each round's user.
        samples: draws of the target's slate per round where its value is not exact (stochastic slate targets, and
            Monte Carlo targets of single items).
        seed: those draws' seed (the seed's truth stream: apart from the log's and the estimators' keys).
    """
    check_policy(target, env, "target")
    check_log(log, env, params)
    if samples < 1:
        raise InputError(f"samples must be >= 1 (Monte Carlo draws of a stochastic target per round), got {samples}.")
    exact = target.deterministic or (env.slate_size == 1 and target.samples == 0)
    samples = 0 if exact else samples
    states, obs = restore_states(env, params, log), log.observations()
    slates = deterministic_slates(target, obs, params) if target.deterministic else log.slate
    keys = jax.random.split(stream_key(seed, TRUTH), log.num_rounds)
    block = target_rounds(env.slate_size, env.num_items(params), target.deterministic)
    means, variances = [], []
    for start in range(0, log.num_rounds, block):
        cut = slice(start, start + block)
        mean, variance = _true_block(keys[cut], jax.tree.map(lambda x: x[cut], states),
                                     {name: value[cut] for name, value in obs.items()}, slates[cut], params, target,
                                     env=env, samples=samples)
        means.append(np.asarray(mean))
        variances.append(np.asarray(variance))
    per_round = np.concatenate(means).astype(np.float64)
    stderr = float(np.sqrt(np.sum(np.concatenate(variances))) / log.num_rounds)
    return Truth(float(per_round.mean()), per_round, samples, stderr)


class PolicyAgent(Agent):
    """A :class:`Policy` as an agent that never learns, so :func:`rlrec.run` can run it on-policy."""

    policy: Policy = None

    def act(self, key, state, obs, env_params):
        slate = self.policy.sample(key, obs, env_params)
        return slate[0] if self.slate_size == 1 else slate


@dataclasses.dataclass(frozen=True)
class OnPolicyValue:
    """A policy's value by running it (Monte Carlo): clicks per round and per episode, each with its standard
    error over the independent user streams."""

    per_round: float
    per_round_stderr: float
    expected_per_round: float  # the same rounds' exact expected clicks (no click noise), and its standard error
    expected_per_round_stderr: float
    episode_return: float  # clicks in each stream's first episode (NaN when none ended in the window)
    episode_return_stderr: float
    episodes: int
    rounds: int


def on_policy_value(env: RecEnv, params: EnvParams, policy: Policy, *, num_users: int = 1024,
                    steps_per_user: int = 1, seed: int = 0) -> OnPolicyValue:
    """Runs ``policy`` on ``num_users`` fresh user streams for ``steps_per_user`` steps each (:func:`rlrec.run`).

    Streams are independent, so standard errors are over streams. The episode return is that of each stream's
    **first** episode (its first user, arrival to departure or truncation), over the streams whose first episode
    ended within ``steps_per_user`` steps: counting every episode that ends in the window would over-represent
    short ones. With ``steps_per_user >= params.max_steps`` every first episode ends (the horizon truncates it);
    ``episodes`` says how many did.
    """
    check_policy(policy, env, "policy")
    agent = PolicyAgent(slate_size=env.slate_size, label=policy.name, policy=policy)
    result = run(env, params, agent, num_seeds=num_users, num_steps=steps_per_user, seed=seed, accuracy_k=0)
    per_stream = result.reward.mean(axis=1)
    expected = result.expected_reward.mean(axis=1)
    done = result.done.astype(bool)
    returns = [rewards[: int(np.argmax(ends)) + 1].sum()
               for rewards, ends in zip(result.reward, done, strict=True) if ends.any()]
    returns = np.asarray(returns, np.float64)
    sqrt_n = np.sqrt(num_users)
    return OnPolicyValue(
        per_round=float(per_stream.mean()),
        per_round_stderr=float(per_stream.std(ddof=1) / sqrt_n) if num_users > 1 else float("nan"),
        expected_per_round=float(expected.mean()),
        expected_per_round_stderr=float(expected.std(ddof=1) / sqrt_n) if num_users > 1 else float("nan"),
        episode_return=float(returns.mean()) if returns.size else float("nan"),
        episode_return_stderr=float(returns.std(ddof=1) / np.sqrt(returns.size)) if returns.size > 1 else float("nan"),
        episodes=int(returns.size),
        rounds=num_users * steps_per_user,
    )
