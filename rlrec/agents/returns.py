"""Returns of ``(T, B)`` rollouts (time first, then users), as small pure functions.

- :func:`n_step_returns`: DQN's n-step targets (Sutton and Barto, 2018, section 7.1);
- :func:`generalised_advantages`: GAE (Schulman et al., 2016), REINFORCE's Monte Carlo returns at ``lam = 1``.

``done`` ends an episode (the user left, or the horizon truncated it); ``terminated`` only where the user left,
so a value is bootstrapped across a truncation but not across a departure.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def n_step_returns(
    reward: jax.Array, done: jax.Array, terminated: jax.Array, n: int, gamma: float
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(returns, bootstrap, discount)``, each ``(T, B)``.

    ``returns[t]`` is the discounted sum of up to ``n`` rewards from ``t``, stopping after the step that ends the
    episode or at the rollout's end; ``bootstrap[t]`` the step whose next observation the target bootstraps
    from; ``discount[t]`` ``gamma^m`` for the ``m`` rewards summed, 0 when the user left at the bootstrap step.
    """
    steps = reward.shape[0]
    time = jnp.arange(steps)
    total = jnp.zeros_like(reward)
    alive = jnp.ones_like(reward, dtype=bool)  # no episode end before offset k
    last = jnp.zeros(reward.shape, jnp.int32)  # offset of the bootstrap step
    for k in range(n):
        index = jnp.minimum(time + k, steps - 1)
        inside = (time + k < steps)[:, None] & alive
        total = total + jnp.where(inside, gamma**k * reward[index], 0.0)
        last = jnp.where(inside, k, last)
        alive = inside & ~done[index]
    bootstrap = time[:, None] + last
    users = jnp.arange(reward.shape[1])[None, :]
    discount = gamma ** (last + 1).astype(jnp.float32) * (1.0 - terminated[bootstrap, users].astype(jnp.float32))
    return total, bootstrap, discount


def generalised_advantages(deltas: jax.Array, continues: jax.Array, gamma: float, lam: float) -> jax.Array:
    """``A[t] = deltas[t] + gamma lam continues[t] A[t + 1]`` (``A[T] = 0``): GAE from the TD errors ``deltas``
    (``r + gamma V(s') - V(s)``); ``continues`` is 0 at a step that ends an episode, so no advantage crosses it."""

    def accumulate(advantage, inputs):
        delta, cont = inputs
        advantage = delta + gamma * lam * cont * advantage
        return advantage, advantage

    _, advantages = jax.lax.scan(accumulate, jnp.zeros(deltas.shape[1:]), (deltas, continues), reverse=True)
    return advantages
