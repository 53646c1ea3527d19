"""``rlrec.run``: any agent on any env, ``lax.scan`` over steps, ``vmap`` over seeds, sharded over devices.

Two learning modes (docs/design.md section 7):

- **personal**: each seed is one user stream with its own agent state, learning that user from scratch
  (cold start). When a user's episode ends, a fresh user arrives and the agent state is re-initialised.
  ``users=`` pins the stream to given users of the population (each of them x every seed, in one program).
- **shared**: each seed is a batch of ``num_users`` users stepping in parallel, all served by one agent state
  that learns from the whole batch (population-level learning).

Per-step keys are ``fold_in(seed_key, t)`` (:mod:`rlrec.rollout.seeds`), so results do not depend on how the
run is chunked, and 1 CPU, 8 forced CPU devices or a GPU give the same numbers.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rlrec import _progress, _repr, metrics
from rlrec.agents.base import Agent
from rlrec.envs.recsys import EnvParams, RecEnv
from rlrec.errors import InputError
from rlrec.rollout.driver import join, run_chunks
from rlrec.rollout.modes import MODES, PERSONAL, SHARED
from rlrec.rollout.seeds import RUNNER_COMPILER_OPTIONS, SeedPlacement, in_seed_blocks, seed_block, stream_keys
from rlrec.rollout.steps import personal_step, shared_step, start_users


@dataclasses.dataclass
class RunResult:
    """Per-step arrays (NumPy) of a run, seeds first.

    ``reward``, ``regret``, ``expected_reward``, ``oracle_expected_reward``, ``precision``, ``recall``,
    ``ndcg`` and ``diversity`` (intra-list, NaN for single items) are ``(S, T)`` (shared mode: means over the
    batch of users); ``done`` is ``(S, T)`` (shared: number of users whose episode ended); ``slates`` are
    ``(S, T, k)`` or ``(S, T, B, k)`` item ids shown. On conversational envs ``questions`` is ``(S, T)``, 1 where
    a question was asked (shared mode: the share of users asked), else ``None``. With pinned users
    (``run(users=...)``) the rows are user-major: row ``u * seeds + s`` is user ``pinned[u * seeds + s]`` with
    seed ``s`` (:meth:`by_user`).
    """

    env_id: str
    agent: str
    mode: str
    num_users: int
    reward: np.ndarray
    regret: np.ndarray
    expected_reward: np.ndarray
    oracle_expected_reward: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    ndcg: np.ndarray
    diversity: np.ndarray
    done: np.ndarray
    slates: np.ndarray
    wall_time: float
    devices: list[str]
    compile_time: float = 0.0  # of wall_time, seconds spent compiling (0 when the programs were cached)
    pinned: np.ndarray | None = None  # (S,) the population user (prototype) of each row; None: drawn at random
    questions: np.ndarray | None = None  # (S, T) questions asked (conversational envs; shared: per user); else None

    @property
    def num_seeds(self) -> int:
        """Rows of the per-step arrays (with pinned users: users x seeds)."""
        return int(self.reward.shape[0])

    @property
    def num_steps(self) -> int:
        return int(self.reward.shape[1])

    def cumulative_regret(self) -> np.ndarray:
        """``(S, T)`` running regret per seed."""
        return np.asarray(metrics.cumulative_regret(self.regret))

    def user_steps(self) -> int:
        return self.num_seeds * self.num_steps * self.num_users

    def by_user(self, name: str) -> np.ndarray:
        """A per-step array of a pinned-users run as ``(users, seeds, T, ...)``, users in the order asked."""
        if self.pinned is None:
            raise InputError("by_user needs a run with pinned users: rlrec.run(..., users=[...]).")
        users = len(dict.fromkeys(self.pinned.tolist()))
        values = getattr(self, name)
        return values.reshape((users, values.shape[0] // users) + values.shape[1:])

    def __repr__(self) -> str:
        """What ran, its size and time, and two headline means (never the per-step arrays)."""
        with np.errstate(all="ignore"):
            mean_reward = float(np.mean(self.reward)) if self.reward.size else float("nan")
            regret = float(np.mean(np.sum(self.regret, axis=-1))) if self.regret.size else float("nan")
        facts = {"env_id": self.env_id, "agent": self.agent, "mode": self.mode, "seeds": self.num_seeds,
                 "steps": self.num_steps, "users": self.num_users}
        if self.pinned is not None:
            facts["pinned_users"] = len(dict.fromkeys(self.pinned.tolist()))
        facts.update(mean_reward=round(mean_reward, 4), cumulative_regret=round(regret, 3),
                     wall_time=round(self.wall_time, 2), compile_time=round(self.compile_time, 2))
        return _repr.call("RunResult", facts)


def _row_params(env: RecEnv, params: EnvParams, prototype):
    """``params`` of one row: with pinned users, a population of that row's user alone (:meth:`RecEnv.pin_user`)."""
    return params if prototype is None else env.pin_user(params, prototype)


# Module-level jitted programs: env, mode and sizes are static; params and the agent are traced arguments (an
# agent's static configuration is part of its tree structure), so repeated runs reuse one compilation.
@functools.partial(jax.jit, static_argnames=("env", "mode", "users"), compiler_options=RUNNER_COMPILER_OPTIONS)
def _init_seeds(seed_keys, params, agent, row_users, *, env, mode, users):
    def one_seed(key, user):
        return start_users(env, agent, _row_params(env, params, user), None if mode == PERSONAL else users, key)

    return jax.vmap(one_seed)(seed_keys, row_users)


@functools.partial(
    jax.jit, static_argnames=("env", "mode", "users", "accuracy_k", "chunk_size", "seed_block"), donate_argnums=(0,),
    compiler_options=RUNNER_COMPILER_OPTIONS,
)
def _run_chunk(carry, seed_keys, start, params, agent, row_users, *, env, mode, users, accuracy_k, chunk_size,
               seed_block):
    def one_seed(seed_carry, seed_key, user):
        row_params = _row_params(env, params, user)
        if mode == PERSONAL:
            step_fn = functools.partial(personal_step, env, agent, row_params, accuracy_k)
        else:
            step_fn = functools.partial(shared_step, env, agent, row_params, accuracy_k, users)
        return jax.lax.scan(step_fn, seed_carry, stream_keys(seed_key, start, chunk_size))

    return in_seed_blocks(jax.vmap(one_seed), (carry, seed_keys, row_users), seed_block)


def _pinned_rows(users, params: EnvParams, num_seeds: int, mode: str):
    """``(prototype of each row, seed of each row)`` of pinned users, ``(rows,)`` each; Nones otherwise."""
    if users is None:
        return None, None
    if mode != PERSONAL:
        raise InputError("users= pins personal-mode user streams; shared mode serves a batch of random users.")
    count = int(params.prototype_log_weights.shape[0])
    users = list(range(count)) if isinstance(users, str) and users == "all" else users
    if isinstance(users, str) or not isinstance(users, Sequence | np.ndarray) or len(users) == 0:
        raise InputError(
            f"users must be 'all' or a non-empty list of population users (0..{count - 1}), got {users!r}."
        )
    chosen = np.asarray(users)
    if chosen.dtype.kind not in "iu" or chosen.ndim != 1 or chosen.min() < 0 or chosen.max() >= count:
        raise InputError(f"users must be population users 0..{count - 1} (the prototypes of params), got {users!r}.")
    if len(set(chosen.tolist())) != len(chosen):
        raise InputError(f"users lists a user twice: {users!r}; each pinned user runs every seed once already.")
    # Rows hold a user's index, not sampling weights over the population: memory linear in users x seeds.
    return np.repeat(chosen, num_seeds), np.tile(np.arange(num_seeds), len(chosen))


@dataclasses.dataclass
class _Compiled:
    """What :func:`run` executes: the compiled programs, their placed inputs and the first carry."""

    chunk: jax.stages.Compiled
    carry: object
    seed_keys: jax.Array
    params: EnvParams
    agent: Agent
    row_users: jax.Array | None
    pinned: np.ndarray | None
    chunk_size: int
    users: int
    devices: list[str]
    compile_time: float


def _compile(env, params, agent, *, num_seeds, num_steps, seed, mode, num_users, accuracy_k, chunk_size,
             users=None) -> _Compiled:
    """Checks the arguments of :func:`run`, places its inputs and compiles its programs."""
    if mode not in MODES:
        raise InputError(f"mode must be one of {MODES}, got {mode!r}.")
    if agent.learns_from_rollouts:
        raise InputError(
            f"{agent.name} learns from whole rollouts, not step by step: train it with rlrec.train (or `rlrec "
            "train`), then run the trained learner with rlrec.agents.base.Frozen.of(agent, state)."
        )
    if agent.slate_size != env.slate_size:
        raise InputError(
            f"The agent shows slates of {agent.slate_size} but the env expects {env.slate_size}; build the agent "
            f"with slate_size=env.slate_size."
        )
    for name, value in (("num_seeds", num_seeds), ("num_steps", num_steps), ("num_users", num_users)):
        if value < 1:
            raise InputError(f"{name} must be >= 1, got {value}.")
    if accuracy_k < 0 or accuracy_k > env.num_items(params):
        raise InputError(f"accuracy_k must be in 0..{env.num_items(params)}, got {accuracy_k}.")
    pinned, row_seeds = _pinned_rows(users, params, num_seeds, mode)
    rows = num_seeds if pinned is None else len(pinned)
    chunk_size = min(chunk_size or num_steps, num_steps)
    batch = num_users if mode == SHARED else 1

    placement = SeedPlacement(seed, rows, row_seeds)
    seed_keys, params = placement.keys, placement.replicate(params)
    row_users = None if pinned is None else placement.shard(pinned.astype(np.int32))
    started = time.perf_counter()
    # Compiled ahead of time so compilation is timed on its own; JAX caches lowerings and executables, so a
    # second run of the same configuration compiles nothing. Display names are left out of the programs (the
    # env's name and the agent's label), so "linucb" and "lm-linucb" (the same class, other numbers), or the
    # Bandit and Drift settings (the same shapes, other parameters), share one compilation.
    init = _init_seeds.lower(seed_keys, params, agent, row_users, env=env, mode=mode, users=batch).compile()
    carry = placement.shard(init(seed_keys, params, agent, row_users))
    chunk = _run_chunk.lower(
        carry, seed_keys, jnp.asarray(0, jnp.int32), params, agent, row_users, env=env,
        mode=mode, users=batch, accuracy_k=accuracy_k, chunk_size=chunk_size,
        seed_block=seed_block(env.num_items(params), batch, rows, placement.mesh.devices.size),
    ).compile()
    return _Compiled(chunk, carry, seed_keys, params, agent, row_users, pinned, chunk_size, batch,
                     placement.devices, time.perf_counter() - started)


def compile_run(env: RecEnv, params: EnvParams, agent: Agent, **settings: Any) -> float:
    """Compiles what :func:`run` with the same arguments would compile, without running it; returns the seconds.

    ``settings``: :func:`run`'s keyword arguments (``num_seeds``, ``num_steps``, ``mode``, ...; ``progress`` is
    ignored). A later :func:`run` of the same configuration in this process then compiles nothing. Safe to call
    from another thread while a run goes on: the benchmark suites compile the next cells' programs this way
    (``rlrec.bench.run_suite(compile_ahead=True)``).
    """
    settings.pop("progress", None)
    defaults = {name: parameter.default for name, parameter in inspect.signature(run).parameters.items()
                if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name != "progress"}
    unknown = sorted(set(settings) - set(defaults))
    if unknown:
        raise TypeError(f"compile_run got unknown setting(s) {unknown}; it takes run's: {sorted(defaults)}.")
    return _compile(env, params, agent, **{**defaults, **settings}).compile_time


def run(
    env: RecEnv,
    params: EnvParams,
    agent: Agent,
    *,
    num_seeds: int = 8,
    num_steps: int = 200,
    seed: int = 0,
    mode: str = PERSONAL,
    num_users: int = 64,
    accuracy_k: int = 10,
    chunk_size: int | None = None,
    progress: bool | None = False,
    users: Sequence[int] | str | None = None,
) -> RunResult:
    """Runs ``agent`` on ``env`` for ``num_steps`` steps and ``num_seeds`` independent seeds in one program.

    Args:
        env, params: from :func:`rlrec.make` (or your own :class:`~rlrec.envs.recsys.EnvParams`).
        agent: any :class:`~rlrec.agents.base.Agent`; its ``slate_size`` must match the env's.
        num_seeds: independent replicas, vmapped and sharded over devices.
        num_steps: steps per seed.
        seed: the root seed; seed ``s`` uses ``fold_in(key(seed), s)``.
        mode: ``"personal"`` (one learner per user) or ``"shared"`` (one learner for ``num_users`` users).
        num_users: users per seed in shared mode.
        accuracy_k: size of each user's true top set for precision/recall/NDCG (0: the oracle slate).
        chunk_size: steps per jitted call (default: all); smaller chunks let a progress bar move.
        progress: ``True``: a progress bar over chunks where someone watches (a terminal or a notebook), its
            estimate from the running chunks only (compiling comes first and is shown apart), and a plain line on
            stderr elsewhere; ``None``: the bar where someone watches, nothing elsewhere; ``False``: nothing.
            Progress changes no number and no compiled program.
        users: personal mode only: pin the user streams to these users of the population (indices into the
            prototypes of ``params``, e.g. every user of your own ``Population``), or ``"all"``. Each user runs
            with every seed (the same seeds for every user, so users compare pairwise), a fresh draw of the same
            user after each episode; the rows are user-major (:meth:`RunResult.by_user`). ``None`` (the
            default): each stream draws its users from the population at random.

    Returns:
        A :class:`RunResult` with per-step arrays.
    """
    started = time.perf_counter()
    display = None
    if _progress.wanted(progress):
        display = _progress.Progress(num_steps, f"{agent.name} on {env.name}", "step", interval=None)
        display.set_status("compiling")
    try:
        compiled = _compile(env, params, agent, num_seeds=num_seeds, num_steps=num_steps, seed=seed, mode=mode,
                            num_users=num_users, accuracy_k=accuracy_k, chunk_size=chunk_size, users=users)
    except BaseException:
        if display is not None:
            display.close()
        raise
    compiled_in = _progress.duration(compiled.compile_time)
    if display is not None:
        display.restart()  # the estimate counts running chunks, not compiling
        display.set_status(f"compiled {compiled_in}")

    def advance(carry, position, length):
        return compiled.chunk(carry, compiled.seed_keys, jnp.asarray(position, jnp.int32), compiled.params,
                              compiled.agent, compiled.row_users)

    _, pieces = run_chunks(
        advance, compiled.carry, start=0, stop=num_steps, chunk_size=compiled.chunk_size, display=display,
        summary=lambda seconds: (f"compiled {compiled_in}, ran {num_steps:,} steps x {num_seeds:,} seeds in "
                                 f"{_progress.duration(seconds)}"),
    )
    outputs = join(pieces, num_steps)
    # regret and the oracle's expected reward are NaN by design when the env does not track regret.
    checked = ("reward", "expected_reward") + (("regret", "oracle_expected_reward") if env.track_regret else ())
    metrics.check_finite(outputs, checked, f"{agent.name} on {env.name}")
    return RunResult(
        env_id=env.name,
        agent=agent.name,
        mode=mode,
        num_users=compiled.users,
        wall_time=time.perf_counter() - started,
        compile_time=compiled.compile_time,
        devices=compiled.devices,
        pinned=compiled.pinned,
        **{name: np.asarray(value) for name, value in outputs.items()},
    )
