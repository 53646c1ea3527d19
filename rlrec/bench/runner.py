"""One runner for every agent: ``lax.scan`` over steps, ``vmap`` over seeds, sharded over devices.

Two learning modes (docs/design.md section 7):

- **personal**: each seed is one user stream with its own agent state, learning that user from scratch
  (cold start). When a user's episode ends, a fresh user arrives and the agent state is re-initialised.
- **shared**: each seed is a batch of ``num_users`` users stepping in parallel, all served by one agent state
  that learns from the whole batch (population-level learning).

Per-step keys are ``fold_in(seed_key, t)``, so results do not depend on how the run is chunked; the seed
axis is sharded over all devices (``jax.sharding``), so 1 CPU, 8 forced CPU devices or a GPU give the same
numbers.
"""

from __future__ import annotations

import dataclasses
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from rlrec import _progress, _repr, metrics
from rlrec.agents.base import Agent, Transition, as_slate, slot_rewards
from rlrec.envs.recsys import EnvParams, RecEnv
from rlrec.simulators import choice

PERSONAL = "personal"
SHARED = "shared"
MODES = (PERSONAL, SHARED)


@dataclasses.dataclass
class RunResult:
    """Per-step arrays (NumPy) of a run, seeds first.

    ``reward``, ``regret``, ``expected_reward``, ``oracle_expected_reward``, ``precision``, ``recall``,
    ``ndcg`` and ``diversity`` (intra-list, NaN for single items) are ``(S, T)`` (shared mode: means over the
    batch of users); ``done`` is ``(S, T)`` (shared: number of users whose episode ended); ``slates`` are
    ``(S, T, k)`` or ``(S, T, B, k)`` item ids shown.
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

    @property
    def num_seeds(self) -> int:
        return int(self.reward.shape[0])

    @property
    def num_steps(self) -> int:
        return int(self.reward.shape[1])

    def cumulative_regret(self) -> np.ndarray:
        """``(S, T)`` running regret per seed."""
        return np.asarray(metrics.cumulative_regret(self.regret))

    def user_steps(self) -> int:
        return self.num_seeds * self.num_steps * self.num_users

    def __repr__(self) -> str:
        """What ran, its size and time, and two headline means (never the per-step arrays)."""
        with np.errstate(all="ignore"):
            mean_reward = float(np.mean(self.reward)) if self.reward.size else float("nan")
            regret = float(np.mean(np.sum(self.regret, axis=-1))) if self.regret.size else float("nan")
        return _repr.call(
            "RunResult",
            {
                "env_id": self.env_id,
                "agent": self.agent,
                "mode": self.mode,
                "seeds": self.num_seeds,
                "steps": self.num_steps,
                "users": self.num_users,
                "mean_reward": round(mean_reward, 4),
                "cumulative_regret": round(regret, 3),
                "wall_time": round(self.wall_time, 2),
                "compile_time": round(self.compile_time, 2),
            },
        )


def _step_outputs(env: RecEnv, params: EnvParams, env_state, slate, info, accuracy_k: int) -> dict:
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
    return {
        "regret": info["regret"],
        "expected_reward": info["expected_reward"],
        "oracle_expected_reward": info["oracle_expected_reward"],
        "precision": metrics.precision_at_k(slate, relevant),
        "recall": metrics.recall_at_k(slate, relevant),
        "ndcg": metrics.ndcg_at_k(slate, relevant),
        "diversity": diversity,
    }


def _act(agent: Agent, key, agent_state, obs, params, env_state):
    if agent.reads_hidden_state:
        return agent.act(key, agent_state, obs, params, env_state=env_state)
    return agent.act(key, agent_state, obs, params)


def _personal_step(env, agent, params, accuracy_k, carry, step_key):
    env_state, obs, agent_state = carry
    act_key, env_key, update_key, init_key = jax.random.split(step_key, 4)
    action = _act(agent, act_key, agent_state, obs, params, env_state)
    next_obs, next_env_state, reward, terminated, truncated, info = env.step(env_key, env_state, action, params)
    done = jnp.logical_or(terminated, truncated)
    slate = as_slate(action)
    transition = Transition(
        obs=obs,
        action=action,
        reward=reward,
        slot_rewards=slot_rewards(info["clicked_slot"], slate.shape[0]),
        next_obs=info["final_observation"],
        done=done,
        terminated=terminated,
    )
    agent_state, _ = agent.update(update_key, agent_state, transition, params)
    fresh = agent.init(init_key, params)  # a new user gets a new learner
    agent_state = jax.tree.map(lambda new, old: jnp.where(done, new, old), fresh, agent_state)
    outputs = _step_outputs(env, params, env_state, slate, info, accuracy_k)
    outputs.update(reward=reward, done=done, slates=slate)
    return (next_env_state, next_obs, agent_state), outputs


def batch_step(env, params, key, env_states, obs, actions, extras=None):
    """Steps a batch of users and packs what they taught: ``(next_obs, next_states, transition, info)``."""
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    next_obs, next_states, rewards, terminated, truncated, info = step(
        jax.random.split(key, actions.shape[0]), env_states, actions, params
    )
    slate_size = jax.vmap(as_slate)(actions).shape[-1]
    transition = Transition(
        obs=obs,
        action=actions,
        reward=rewards,
        slot_rewards=jax.vmap(slot_rewards, in_axes=(0, None))(info["clicked_slot"], slate_size),
        next_obs=info["final_observation"],
        done=jnp.logical_or(terminated, truncated),
        terminated=terminated,
        extras={} if extras is None else extras,
    )
    return next_obs, next_states, transition, info


def _shared_step(env, agent, params, accuracy_k, num_users, carry, step_key):
    env_states, obs, agent_state = carry
    act_key, env_key, update_key = jax.random.split(step_key, 3)
    act_keys = jax.random.split(act_key, num_users)
    if agent.reads_hidden_state:
        actions = jax.vmap(lambda k, o, s: _act(agent, k, agent_state, o, params, s))(act_keys, obs, env_states)
    else:  # one learner serves the batch: let it act on the whole batch at once
        actions, _ = agent.act_batch(act_keys, agent_state, obs, params)
    next_obs, next_env_states, transition, info = batch_step(env, params, env_key, env_states, obs, actions)
    rewards, done, slates = transition.reward, transition.done, jax.vmap(as_slate)(actions)
    agent_state, _ = agent.update(update_key, agent_state, transition, params)
    per_user = jax.vmap(lambda s, a, i: _step_outputs(env, params, s, a, i, accuracy_k))(env_states, slates, info)
    outputs = {name: jnp.mean(value) for name, value in per_user.items()}
    outputs.update(reward=jnp.mean(rewards), done=jnp.sum(done), slates=slates)
    return (next_env_states, next_obs, agent_state), outputs


def _init(env, agent, params, mode, num_users, seed_key):
    init_key, _ = jax.random.split(seed_key)  # the second half drives the steps
    env_key, agent_key = jax.random.split(init_key)
    if mode == PERSONAL:
        obs, env_state = env.reset(env_key, params)
    else:
        obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(env_key, num_users), params)
    return env_state, obs, agent.init(agent_key, params)


# XLA compiler options of the trainer's compiled loop (rlrec.train.trainer; this module's own loop does not take
# them yet: not measured for bandits). XLA's CPU backend (jaxlib 0.10) hands dots *and* the element-wise ops
# and reductions around them to YNNPACK as one fusion by default; under ``vmap`` over seeds some of those fused
# reductions ran 10-50x slower than XLA's own loops (PPO's training step on a 2-core CPU: two reductions of the
# minibatch loss took 5 of 21 us per env step). Handing YNNPACK only the dots themselves ("individual dots")
# took PPO's training from 44-46 k to 50-64 k env steps/s there (benchmarks/README.md). A CPU debug option:
# other backends ignore it.
LOOP_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}


# XLA options of the runner's programs: LLVM optimisation level 1 instead of 2. Compiling is most of a short
# run's time (a regret-benchmark cell: ~5 s of XLA work for ~0.3 s of running on a 2-core CPU); level 1 cut the
# quick suite's compiling from 95 s to 64 s with the same numbers, bit for bit, and no measurable loss of
# running speed (LinUCB, LinTS, random on the MovieLens slate env, alternating runs; benchmarks/README.md).
# Not taken: xla_cpu_use_fusion_emitters=False (XLA's older CPU emitters) halved compiling again, but one quick
# suite in five then ran the popularity agent's cell with the random agent's program (a 0.8 s "compile" and the
# random agent's numbers): wrong results are not worth seconds.
RUNNER_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}


# Module-level jitted programs: env, mode and sizes are static; params and the agent are traced arguments (an
# agent's static configuration is part of its tree structure), so repeated runs reuse one compilation.
@functools.partial(jax.jit, static_argnames=("env", "mode", "users"), compiler_options=RUNNER_COMPILER_OPTIONS)
def _init_seeds(seed_keys, params, agent, *, env, mode, users):
    return jax.vmap(lambda key: _init(env, agent, params, mode, users, key))(seed_keys)


@functools.partial(
    jax.jit, static_argnames=("env", "mode", "users", "accuracy_k", "chunk_size", "seed_block"), donate_argnums=(0,),
    compiler_options=RUNNER_COMPILER_OPTIONS,
)
def _run_chunk(carry, seed_keys, start, params, agent, *, env, mode, users, accuracy_k, chunk_size, seed_block):
    if mode == PERSONAL:
        step_fn = functools.partial(_personal_step, env, agent, params, accuracy_k)
    else:
        step_fn = functools.partial(_shared_step, env, agent, params, accuracy_k, users)

    def one_seed(seed_carry, seed_key):
        _, stream_key = jax.random.split(seed_key)
        step_keys = jax.vmap(lambda t: jax.random.fold_in(stream_key, t))(start + jnp.arange(chunk_size))
        return jax.lax.scan(step_fn, seed_carry, step_keys)

    return in_seed_blocks(jax.vmap(one_seed), (carry, seed_keys), seed_block)


def in_seed_blocks(batched, args, block: int):
    """``batched(*args)`` over the leading (seed) axis, ``block`` seeds at a time (``lax.scan`` over blocks).

    Each block's arrays stay in the CPU's caches: the catalog-sized per-seed arrays of a whole batch (e.g. 1,024
    seeds x 9,066 item scores, 37 MB per array) do not, and then every elementwise pass runs at memory speed.
    Measured on a 2-core CPU: blocks of 64 seeds ran LinUCB on the MovieLens slate env 10-40% faster than one
    vmap over 256-1,024 seeds. Same numbers either way (tested): each seed's computation is unchanged, and blocks
    hold at least 8 seeds (with 4, XLA's CPU code vectorised some float reductions differently and the last bit
    of a regret changed). ``block`` of 0, or not smaller than the batch and dividing it, is one call.
    """
    count = jax.tree.leaves(args)[0].shape[0]
    if block <= 0 or block >= count or count % block:
        return batched(*args)
    blocks = count // block
    split = jax.tree.map(lambda x: x.reshape((blocks, block) + x.shape[1:]), args)
    _, outputs = jax.lax.scan(lambda _, block_args: (None, batched(*block_args)), None, split)
    return jax.tree.map(lambda x: x.reshape((count,) + x.shape[2:]), outputs)


# Per-seed arrays of about this many floats per block of seeds (4 MB: half of a 2-core CPU's caches).
_BLOCK_FLOATS = 1 << 20


def seed_block(num_items: int, users: int, num_seeds: int, devices: int) -> int:
    """Seeds per block on a single CPU device (0: no blocks; accelerators want the widest batch)."""
    if devices > 1 or jax.default_backend() != "cpu":
        return 0
    block = 1 << max(int(np.log2(max(_BLOCK_FLOATS // max(num_items * users, 1), 1))), 3)
    block = min(block, 1024)
    while num_seeds % block and block > 8:
        block //= 2
    return block if block < num_seeds and num_seeds % block == 0 else 0


def _fetch(array: jax.Array) -> np.ndarray:
    """A (possibly sharded) result as one host array; with several processes (``jax.distributed``) every
    process gathers the shards of all of them."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(array, tiled=True))
    return np.asarray(array)


def _unnamed(thing):
    """``thing`` without its display name (an env's ``name``, an agent's ``label``), where it has one."""
    for field in ("name", "label"):
        if dataclasses.is_dataclass(thing) and field in {f.name for f in dataclasses.fields(thing)}:
            thing = dataclasses.replace(thing, **{field: ""})
    return thing


def seed_mesh(num_seeds: int) -> Mesh:
    """A 1-D mesh over the devices that divide the seed batch (all of them when they do).

    With several processes (``jax.distributed``) every process must hold seeds (each runs the program and
    gathers the results), so the mesh takes the same number of devices from each process.
    """
    devices = jax.devices()
    processes = jax.process_count()
    if processes == 1:
        usable = max(d for d in range(1, len(devices) + 1) if num_seeds % d == 0)
        return Mesh(np.array(devices[:usable]), ("seeds",))
    by_process = [[d for d in devices if d.process_index == p] for p in range(processes)]
    local = min(len(group) for group in by_process)
    per_process = [n for n in range(1, local + 1) if num_seeds % (n * processes) == 0]
    if not per_process:
        raise ValueError(
            f"With {processes} processes num_seeds must be a multiple of {processes} (every process runs an equal "
            f"share of the seeds), got {num_seeds}."
        )
    return Mesh(np.array([d for group in by_process for d in group[: max(per_process)]]), ("seeds",))


@dataclasses.dataclass
class _Compiled:
    """What :func:`run` executes: the compiled programs, their placed inputs and the first carry."""

    init: jax.stages.Compiled
    chunk: jax.stages.Compiled
    carry: object
    seed_keys: jax.Array
    params: EnvParams
    agent: Agent
    chunk_size: int
    users: int
    devices: list[str]
    compile_time: float


def _compile(env, params, agent, *, num_seeds, num_steps, seed, mode, num_users, accuracy_k, chunk_size) -> _Compiled:
    """Checks the arguments of :func:`run`, places its inputs and compiles its programs."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    if getattr(agent, "learns_from_rollouts", False):
        raise ValueError(
            f"{agent.name} learns from whole rollouts, not step by step: train it with rlrec.train (or `rlrec "
            "train`), then run the trained learner with rlrec.agents.base.Frozen.of(agent, state)."
        )
    if agent.slate_size != env.slate_size:
        raise ValueError(
            f"The agent shows slates of {agent.slate_size} but the env expects {env.slate_size}; build the agent "
            f"with slate_size=env.slate_size."
        )
    for name, value in (("num_seeds", num_seeds), ("num_steps", num_steps), ("num_users", num_users)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}.")
    if accuracy_k < 0 or accuracy_k > env.num_items(params):
        raise ValueError(f"accuracy_k must be in 0..{env.num_items(params)}, got {accuracy_k}.")
    chunk_size = min(chunk_size or num_steps, num_steps)
    users = num_users if mode == SHARED else 1

    mesh = seed_mesh(num_seeds)
    sharded = NamedSharding(mesh, PartitionSpec("seeds"))
    replicated = NamedSharding(mesh, PartitionSpec())
    root = jax.random.key(seed)
    seed_keys = jax.vmap(lambda s: jax.random.fold_in(root, s))(jnp.arange(num_seeds))
    # Typed keys as their raw uint32 data: with several processes (jax.distributed) device_put only places
    # plain arrays on a mesh spanning other processes' devices.
    seed_keys = jax.random.wrap_key_data(
        jax.device_put(jax.random.key_data(seed_keys), sharded), impl=jax.random.key_impl(seed_keys)
    )
    params = jax.device_put(params, replicated)

    started = time.perf_counter()
    # Compiled ahead of time so compilation is timed on its own; JAX caches lowerings and executables, so a
    # second run of the same configuration compiles nothing. Names are display-only and left out of the
    # programs, so "linucb" and "lm-linucb" (the same class, other numbers), or the Bandit and Drift settings
    # (the same shapes, other parameters), share one compilation.
    program_env = _unnamed(env)
    program_agent = _unnamed(agent)
    init = _init_seeds.lower(seed_keys, params, program_agent, env=program_env, mode=mode, users=users).compile()
    carry = jax.device_put(init(seed_keys, params, program_agent), sharded)
    chunk = _run_chunk.lower(
        carry, seed_keys, jnp.asarray(0, jnp.int32), params, program_agent, env=program_env, mode=mode,
        users=users, accuracy_k=accuracy_k, chunk_size=chunk_size,
        seed_block=seed_block(env.num_items(params), users, num_seeds, mesh.devices.size),
    ).compile()
    return _Compiled(init, chunk, carry, seed_keys, params, program_agent, chunk_size, users,
                     [str(device) for device in mesh.devices.ravel()], time.perf_counter() - started)


def compile_run(
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
) -> float:
    """Compiles what :func:`run` with the same arguments would compile, without running it; returns the seconds.

    A later :func:`run` of the same configuration in this process then compiles nothing. Safe to call from
    another thread while a run goes on: the benchmark suites compile the next cells' programs this way
    (``rlrec.bench.run_suite(compile_ahead=True)``).
    """
    return _compile(env, params, agent, num_seeds=num_seeds, num_steps=num_steps, seed=seed, mode=mode,
                    num_users=num_users, accuracy_k=accuracy_k, chunk_size=chunk_size).compile_time


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
) -> RunResult:
    """Runs ``agent`` on ``env`` for ``num_steps`` steps and ``num_seeds`` independent seeds in one program.

    Args:
        env, params: from :func:`rlrec.make`.
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
                            num_users=num_users, accuracy_k=accuracy_k, chunk_size=chunk_size)
        chunk_size, users, carry = compiled.chunk_size, compiled.users, compiled.carry
        seed_keys, params, program_agent, chunk = compiled.seed_keys, compiled.params, compiled.agent, compiled.chunk
        if display is not None:
            display.restart()  # the estimate counts running chunks, not compiling
            display.set_status(f"compiled {_progress.duration(compiled.compile_time)}")
        pieces = []
        ran_from = time.perf_counter()
        for start in range(0, num_steps, chunk_size):
            carry, outputs = chunk(carry, seed_keys, jnp.asarray(start, jnp.int32), params, program_agent)
            pieces.append(outputs)
            if display is not None:
                jax.block_until_ready(outputs)
                display.update(min(chunk_size, num_steps - start))
        if display is not None:
            jax.block_until_ready(pieces)
            display.close(f"compiled {_progress.duration(compiled.compile_time)}, ran {num_steps:,} steps x "
                          f"{num_seeds:,} seeds in {_progress.duration(time.perf_counter() - ran_from)}")
    finally:
        if display is not None:
            display.close()
    outputs = jax.tree.map(lambda *chunks: np.concatenate([_fetch(c) for c in chunks], axis=1), *pieces)
    outputs = jax.tree.map(lambda x: x[:, :num_steps], outputs)
    # regret and the oracle's expected reward are NaN by design when the env does not track regret.
    checked = ("reward", "expected_reward") + (("regret", "oracle_expected_reward") if env.track_regret else ())
    metrics.check_finite(outputs, checked, f"{agent.name} on {env.name}")
    wall_time = time.perf_counter() - started
    return RunResult(
        env_id=env.name,
        agent=agent.name,
        mode=mode,
        num_users=users,
        wall_time=wall_time,
        compile_time=compiled.compile_time,
        devices=compiled.devices,
        **{name: np.asarray(value) for name, value in outputs.items()},
    )
