"""Training loops for any agent: a batch of users per seed, ``jit(vmap(scan))`` over seeds and iterations.

One **iteration** steps ``num_users`` users (shared-mode: one learner serves them all) for the agent's
``rollout_length`` steps, then calls ``agent.update`` once with the ``(rollout_length, num_users)``
transitions. Iterations run under ``lax.scan`` in chunks (one jitted call per chunk), seeds under ``vmap``,
and the seed axis is sharded over all devices. Iteration ``i`` of seed ``s`` uses
``fold_in(split(fold_in(key(seed), s))[1], i)``, so a run cut into chunks, or stopped and resumed from a checkpoint,
computes exactly the same numbers as one uninterrupted call.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rlrec import _progress, _repr
from rlrec.agents.base import Agent
from rlrec.envs.recsys import EnvParams, RecEnv
from rlrec.errors import InputError
from rlrec.rollout.driver import join, run_chunks
from rlrec.rollout.seeds import LOOP_COMPILER_OPTIONS, SeedPlacement, stream_keys
from rlrec.rollout.steps import batch_step, start_users


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Carry:
    """Everything a training run needs to continue: per seed, the users, the learner and running returns."""

    env_state: Any
    obs: Any
    agent_state: Any
    episode_return: jax.Array  # (B,) return so far of each user's current episode
    iteration: jax.Array  # () iterations done


def _rollout_step(env, agent, params, agent_state, carry, key):
    env_state, obs, episode_return = carry
    num_users = episode_return.shape[0]
    act_key, env_key = jax.random.split(key)
    actions, extras = agent.act_batch(jax.random.split(act_key, num_users), agent_state, obs, params)
    next_obs, next_state, transition, _ = batch_step(env, params, env_key, env_state, obs, actions, extras)
    reward, done = transition.reward, transition.done
    finished_return = episode_return + reward
    stats = {"finished": done, "finished_return": jnp.where(done, finished_return, 0.0)}
    return (next_state, next_obs, jnp.where(done, 0.0, finished_return)), (transition, stats)


def iteration(env: RecEnv, agent: Agent, params: EnvParams, carry: Carry, key: jax.Array) -> tuple[Carry, dict]:
    """One training iteration for one seed: a rollout of the batch of users, then one agent update."""
    rollout_key, update_key = jax.random.split(key)
    step = functools.partial(_rollout_step, env, agent, params, carry.agent_state)
    (env_state, obs, episode_return), (transitions, stats) = jax.lax.scan(
        step,
        (carry.env_state, carry.obs, carry.episode_return),
        jax.random.split(rollout_key, agent.rollout_length),
    )
    agent_state, metrics = agent.update(update_key, carry.agent_state, transitions, params)
    outputs = {
        "reward": jnp.mean(transitions.reward),
        "episodes": jnp.sum(stats["finished"]).astype(jnp.float32),
        "return_sum": jnp.sum(stats["finished_return"]),
        **{name: jnp.asarray(value, jnp.float32) for name, value in metrics.items()},
    }
    return Carry(env_state, obs, agent_state, episode_return, carry.iteration + 1), outputs


def init_carry(env: RecEnv, agent: Agent, params: EnvParams, num_users: int, seed_key: jax.Array) -> Carry:
    """The start of one seed's run: fresh users and a fresh learner."""
    env_state, obs, agent_state = start_users(env, agent, params, num_users, seed_key)
    return Carry(
        env_state=env_state,
        obs=obs,
        agent_state=agent_state,
        episode_return=jnp.zeros(num_users, jnp.float32),
        iteration=jnp.zeros((), jnp.int32),
    )


# Module-level jitted entry points: the env and lengths are static, the agent and params are traced
# arguments (the agent's static configuration is part of its tree structure), so every Trainer with the
# same configuration reuses one compilation.
# (Not _init_seeds: it runs once, and jax.eval_shape(Trainer.init), which resuming uses, nests it under another
# trace, where jit refuses compiler options.)
@functools.partial(jax.jit, static_argnames=("env", "num_users"))
def _init_seeds(seed_keys, params, agent, *, env, num_users):
    return jax.vmap(lambda key: init_carry(env, agent, params, num_users, key))(seed_keys)


@functools.partial(
    jax.jit, static_argnames=("env", "length"), donate_argnums=(0,), compiler_options=LOOP_COMPILER_OPTIONS
)
def _advance_seeds(carry, seed_keys, params, agent, *, env, length):
    def one_seed(seed_carry, seed_key):
        keys = stream_keys(seed_key, seed_carry.iteration, length)
        return jax.lax.scan(functools.partial(iteration, env, agent, params), seed_carry, keys)

    return jax.vmap(one_seed)(carry, seed_keys)


@dataclasses.dataclass
class Trainer:
    """Compiled training of ``agent`` on ``env`` for ``num_seeds`` seeds of ``num_users`` users each.

    Use :meth:`init` then :meth:`advance` (chunks of iterations), or :func:`train` for the whole loop.
    """

    env: RecEnv
    params: EnvParams
    agent: Agent
    num_seeds: int = 1
    num_users: int = 256
    seed: int = 0

    def __post_init__(self):
        for name in ("num_seeds", "num_users"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.agent.slate_size != self.env.slate_size:
            raise InputError(
                f"The agent shows slates of {self.agent.slate_size} but the env expects {self.env.slate_size}; "
                "build the agent with slate_size=env.slate_size (rlrec.agents.make_agent does)."
            )
        self.agent.check_rollout(self.num_users)
        placement = SeedPlacement(self.seed, self.num_seeds)
        self.sharded = placement.sharded
        self.devices = placement.devices
        self.seed_keys = placement.keys
        self.params = placement.replicate(self.params)

    def init(self) -> Carry:
        """Fresh carries for every seed (leading seed axis)."""
        carry = _init_seeds(self.seed_keys, self.params, self.agent, env=self.env, num_users=self.num_users)
        return jax.device_put(carry, self.sharded)

    def advance(self, carry: Carry, iterations: int) -> tuple[Carry, dict[str, np.ndarray]]:
        """Runs ``iterations`` more iterations; returns the new carry and ``(S, iterations)`` metrics."""
        carry, outputs = _advance_seeds(carry, self.seed_keys, self.params, self.agent, env=self.env,
                                        length=iterations)
        return carry, {name: np.asarray(value) for name, value in outputs.items()}

    def env_steps_per_iteration(self) -> int:
        """Environment steps (user-steps) per iteration, over all seeds."""
        return self.num_seeds * self.num_users * self.agent.rollout_length


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns: final carries (seed axis first) and per-iteration metrics ``(S, I)``."""

    agent: Agent
    carry: Carry
    metrics: dict[str, np.ndarray]
    env_steps: int
    wall_time: float
    devices: list[str]

    @property
    def agent_states(self) -> Any:
        """The learners, one per seed (leading seed axis)."""
        return self.carry.agent_state

    def agent_state(self, seed_index: int = 0) -> Any:
        """The learner of one seed."""
        return jax.tree.map(lambda x: x[seed_index], self.carry.agent_state)

    def episode_returns(self, window: int | None = None) -> np.ndarray:
        """``(S,)`` mean return of episodes that finished in the last ``window`` iterations (all: None)."""
        episodes = self.metrics["episodes"][:, -window:] if window else self.metrics["episodes"]
        returns = self.metrics["return_sum"][:, -window:] if window else self.metrics["return_sum"]
        return returns.sum(axis=1) / np.maximum(episodes.sum(axis=1), 1)

    def __repr__(self) -> str:
        """The agent, seeds x iterations, steps, the mean episode return and time (not the learners' weights)."""
        seeds, iterations = next(iter(self.metrics.values())).shape[:2] if self.metrics else (0, 0)
        facts = {"agent": self.agent.name, "seeds": seeds, "iterations": iterations, "env_steps": self.env_steps}
        if {"episodes", "return_sum"} <= set(self.metrics):
            facts["episode_return"] = round(float(np.mean(self.episode_returns())), 4)
        facts["wall_time"] = round(self.wall_time, 2)
        return _repr.call("TrainResult", facts)


def train(
    env: RecEnv,
    params: EnvParams,
    agent: Agent,
    *,
    num_iterations: int,
    num_seeds: int = 1,
    num_users: int = 256,
    seed: int = 0,
    chunk_size: int | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Trains ``agent`` for ``num_iterations`` iterations on ``num_seeds`` independent seeds (in memory).

    ``chunk_size``: iterations per jitted call (default: all in one); with smaller chunks a progress bar moves,
    and the numbers stay the same. ``progress``: ``None`` (the default) shows a bar when someone watches (a
    terminal or a notebook) and nothing elsewhere; ``True`` also prints plain lines on stderr where nobody
    watches (a log); ``False`` shows nothing. The bar's estimate leaves out the first chunk, which also compiles;
    progress changes no number and no compiled program (as with :func:`rlrec.run`).

    For checkpoints, logs and resuming use :func:`rlrec.train.run_training` or ``rlrec train``.
    """
    if num_iterations < 1:
        raise InputError(f"num_iterations must be >= 1, got {num_iterations}.")
    trainer = Trainer(env, params, agent, num_seeds=num_seeds, num_users=num_users, seed=seed)
    chunk_size = min(chunk_size or num_iterations, num_iterations)
    started = time.perf_counter()
    carry = trainer.init()
    display = None
    if _progress.wanted(progress):
        chunks = -(-num_iterations // chunk_size)
        display = _progress.Progress(
            num_iterations, f"training {agent.name} on {env.name}", "it",
            announce=f"{num_iterations:,} iterations of {num_seeds} seed(s) x {num_users} users in {chunks} chunk(s)",
        )
        display.set_status(f"compiling and running chunk 1/{chunks}")
    carry, pieces = run_chunks(
        lambda carry, _, length: trainer.advance(carry, length), carry, start=0, stop=num_iterations,
        chunk_size=chunk_size, display=display, first_compiles=True,
        summary=lambda seconds: f"{num_iterations:,} iterations in {_progress.duration(seconds)}",
    )
    metrics = join(pieces)
    jax.block_until_ready(carry)
    return TrainResult(
        agent=agent,
        carry=carry,
        metrics=metrics,
        env_steps=trainer.env_steps_per_iteration() * num_iterations,
        wall_time=time.perf_counter() - started,
        devices=trainer.devices,
    )
