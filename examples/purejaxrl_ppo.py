"""PPO in the purejaxrl style on the functional core: the whole training run is one jitted function.

What it shows: rlrec's gymnax-style env, wrapped in :class:`~rlrec.envs.wrappers.FlattenObservation` (one
float32 vector per observation) and :class:`~rlrec.envs.wrappers.LogWrapper` (episode returns in ``info``),
drops into a single-file PPO written as purejaxrl writes them: a config dict, ``make_train(config)`` returning
``train(rng)``, the rollout a ``lax.scan`` over steps of a ``vmap``-ed env, GAE, minibatch epochs with optax,
a Flax actor-critic MLP with a categorical head over all ``N`` items, and several seeds at once with
``jax.jit(jax.vmap(train))``. At the end it prints the mean episode return (clicks per session) of the first
and last updates, the env steps per second of the run (compile time apart) and a uniform-random policy's
return measured on the same env.

Run from the repository root (about 1.5 minutes on a 2-core CPU: ~6 s loading the catalog, ~20 s compiling,
~50 s training 2 seeds x 49,152 steps; measured: the return goes from ~1.5 to ~8 clicks per session, a
uniform-random policy gets ~0.8)::

    python examples/purejaxrl_ppo.py
    python examples/purejaxrl_ppo.py --total-timesteps 500000 --num-seeds 4 --env MovieLens-Drift-v0

The MLP reads the flat observation (request embedding, shown item ids, clicks, feedback, episode progress)
scaled to [-1, 1] by the wrapper's bounds. Its policy head dots a learned query with each item's fixed
features, plus a learned per-item bias (see :class:`ActorCritic`).
"""

from __future__ import annotations

import argparse
import time
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training.train_state import TrainState

import rlrec
from rlrec.envs.recsys import bandit_features
from rlrec.envs.wrappers import FlattenObservation, LogWrapper

CONFIG: dict[str, Any] = {
    "ENV_NAME": "MovieLens-Session-v0",
    # No oracle: training never reads the regret, and a step then scores only the shown item.
    "ENV_KWARGS": {"track_regret": False},
    "TOTAL_TIMESTEPS": 50_000,  # per seed (whole rollouts: 48 updates of 32 x 32 steps)
    "NUM_ENVS": 32,
    "NUM_STEPS": 32,  # rollout length per update
    "UPDATE_EPOCHS": 4,
    "NUM_MINIBATCHES": 4,
    "LR": 1e-3,
    "ANNEAL_LR": True,
    "GAMMA": 0.99,
    "GAE_LAMBDA": 0.95,
    "CLIP_EPS": 0.2,
    "ENT_COEF": 0.01,
    "VF_COEF": 0.5,
    "MAX_GRAD_NORM": 0.5,
    "HIDDEN": 64,
    "NUM_SEEDS": 2,
    "SEED": 0,
}


def make_env(config: dict[str, Any]) -> tuple[LogWrapper, Any]:
    """The wrapped env and its params: ``LogWrapper(FlattenObservation(core))``."""
    env, env_params = rlrec.make(config["ENV_NAME"], **config.get("ENV_KWARGS", {}))
    if env.slate_size != 1:
        raise ValueError(f"This PPO picks one item per step; {config['ENV_NAME']} shows slates of {env.slate_size}.")
    return LogWrapper(FlattenObservation(env)), env_params


class ActorCritic(nn.Module):
    """Tanh MLPs on the observation: a categorical policy over all ``N`` items, and the state value.

    The policy's logit for item ``i`` is ``<query(obs), x_i> + b_i`` with ``x_i`` the item's fixed features
    (embedding, quality, appeal: :func:`rlrec.envs.recsys.bandit_features`) and ``b_i`` a learned per-item
    bias: a softmax over the whole catalog, like ``Dense(N)``, but what it learns about one item carries to
    similar ones, and the head has ``N + (d + 2) hidden`` weights to train instead of ``N hidden`` (on a
    2-core CPU a ``Dense(N)`` head made training several times slower for 9,066 items).
    """

    hidden: int = 64

    @nn.compact
    def __call__(self, obs: jax.Array, item_features: jax.Array) -> tuple[jax.Array, jax.Array]:
        def dense(features: int, scale: float) -> nn.Dense:
            # The gain of purejaxrl's orthogonal(scale), without its QR: a LAPACK call, and LAPACK calls under
            # vmap have hung XLA's CPU thread pool (benchmarks/README.md, bandit_hang_check.py).
            kernel_init = nn.initializers.variance_scaling(scale**2, "fan_in", "truncated_normal")
            return nn.Dense(features, kernel_init=kernel_init, bias_init=nn.initializers.zeros)

        actor = nn.tanh(dense(self.hidden, np.sqrt(2))(obs))
        actor = nn.tanh(dense(self.hidden, np.sqrt(2))(actor))
        query = dense(item_features.shape[1], 0.01)(actor)  # small: the first policy is near uniform
        item_bias = self.param("item_bias", nn.initializers.zeros, (item_features.shape[0],))
        logits = query @ item_features.T + item_bias
        critic = nn.tanh(dense(self.hidden, np.sqrt(2))(obs))
        critic = nn.tanh(dense(self.hidden, np.sqrt(2))(critic))
        value = dense(1, 1.0)(critic)[..., 0]
        return logits, value


def sample_items(key: jax.Array, logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(item (B,), log_prob (B,))`` drawn from ``softmax(logits (B, N))`` by inverting the CDF: one uniform
    number per row (``jax.random.categorical`` draws ``N`` Gumbel numbers per row)."""
    log_probs = jax.nn.log_softmax(logits)
    cdf = jnp.cumsum(jnp.exp(log_probs), axis=-1)
    uniform = jax.random.uniform(key, logits.shape[:-1]) * cdf[..., -1]
    item = jnp.sum(cdf < uniform[..., None], axis=-1, dtype=jnp.int32)  # the first index with cdf >= u
    item = jnp.minimum(item, logits.shape[-1] - 1)
    return item, jnp.take_along_axis(log_probs, item[:, None], axis=1)[:, 0]


class Transition(NamedTuple):
    """One env step of the rollout, batched over envs (a leading time axis once scanned)."""

    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    done: jax.Array
    episode_return: jax.Array  # LogWrapper's returned_episode_returns
    episode_ended: jax.Array  # LogWrapper's returned_episode


class Runner(NamedTuple):
    """What the update loop carries from one update to the next."""

    train_state: TrainState
    env_state: Any
    obs: jax.Array


def generalized_advantages(
    rewards: jax.Array, values: jax.Array, dones: jax.Array, last_value: jax.Array, gamma: float, lam: float
) -> tuple[jax.Array, jax.Array]:
    """GAE (Schulman et al. 2016), ``(advantages, value targets)``, each ``(T, B)``.

    ``A_t = delta_t + gamma lam (1 - done_t) A_{t+1}``, ``delta_t = r_t + gamma (1 - done_t) V_{t+1} - V_t``;
    ``done_t`` marks the last step of an episode (the next value belongs to a new user).
    """

    def backward(carry, step):
        next_advantage, next_value = carry
        reward, value, done = step
        keep = 1.0 - done
        delta = reward + gamma * keep * next_value - value
        advantage = delta + gamma * lam * keep * next_advantage
        return (advantage, value), advantage

    start = (jnp.zeros_like(last_value), last_value)
    _, advantages = jax.lax.scan(backward, start, (rewards, values, dones), reverse=True)
    return advantages, advantages + values


def ppo_loss(params, apply_fn, batch: Transition, advantages, targets, config) -> tuple[jax.Array, dict]:
    """Clipped-surrogate PPO loss with a clipped value loss and an entropy bonus (Schulman et al. 2017)."""
    logits, values = apply_fn(params, batch.obs)
    log_probs = jax.nn.log_softmax(logits)
    log_prob = jnp.take_along_axis(log_probs, batch.action[:, None], axis=1)[:, 0]
    entropy = -jnp.sum(jnp.exp(log_probs) * log_probs, axis=1).mean()

    ratio = jnp.exp(log_prob - batch.log_prob)
    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    clipped_ratio = jnp.clip(ratio, 1.0 - config["CLIP_EPS"], 1.0 + config["CLIP_EPS"])
    actor_loss = -jnp.minimum(ratio * advantages, clipped_ratio * advantages).mean()

    clipped_values = batch.value + jnp.clip(values - batch.value, -config["CLIP_EPS"], config["CLIP_EPS"])
    value_loss = 0.5 * jnp.maximum((values - targets) ** 2, (clipped_values - targets) ** 2).mean()

    total = actor_loss + config["VF_COEF"] * value_loss - config["ENT_COEF"] * entropy
    return total, {"actor_loss": actor_loss, "value_loss": value_loss, "entropy": entropy}


def make_train(config: dict[str, Any]):
    """``train(rng) -> metrics``, jittable and vmappable over ``rng`` (one seed per key).

    ``metrics`` holds one value per update: ``episode_return`` (mean return of the episodes that ended in
    that update's rollout, NaN if none did), ``episodes`` (how many), ``actor_loss``, ``value_loss``,
    ``entropy`` (means over the update's minibatches).
    """
    env, env_params = make_env(config)
    num_envs, num_steps = config["NUM_ENVS"], config["NUM_STEPS"]
    batch_size = num_envs * num_steps
    if batch_size % config["NUM_MINIBATCHES"]:
        raise ValueError(f"NUM_ENVS * NUM_STEPS ({batch_size}) must divide into NUM_MINIBATCHES.")
    num_updates = config["TOTAL_TIMESTEPS"] // batch_size
    if num_updates < 1:
        raise ValueError(f"TOTAL_TIMESTEPS ({config['TOTAL_TIMESTEPS']}) is less than one rollout ({batch_size}).")
    minibatch_size = batch_size // config["NUM_MINIBATCHES"]

    # The flat observation mixes item ids (up to N - 1), feedback in [0, 1] and embeddings in [-1, 1]: scale
    # every element to [-1, 1] by its own bounds so no entry swamps the others.
    low, high = env.bounds(env_params)
    center, half_width = (high + low) / 2, np.maximum((high - low) / 2, 1e-6)
    network = ActorCritic(config["HIDDEN"])
    item_features = bandit_features(env_params)

    def apply_fn(params, obs):
        return network.apply(params, (obs - center) / half_width, item_features)

    reset = jax.vmap(env.reset, in_axes=(0, None))
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def train(rng: jax.Array) -> dict[str, jax.Array]:
        init_key, reset_key, loop_key = jax.random.split(rng, 3)
        obs_size = env.observation_space(env_params).shape[0]
        if config["ANNEAL_LR"]:
            total_steps = num_updates * config["UPDATE_EPOCHS"] * config["NUM_MINIBATCHES"]
            learning_rate = optax.linear_schedule(config["LR"], 0.0, total_steps)
        else:
            learning_rate = config["LR"]
        train_state = TrainState.create(
            apply_fn=apply_fn,
            params=network.init(init_key, jnp.zeros((obs_size,), jnp.float32), item_features),
            tx=optax.chain(optax.clip_by_global_norm(config["MAX_GRAD_NORM"]), optax.adam(learning_rate, eps=1e-5)),
        )
        obs, env_state = reset(jax.random.split(reset_key, num_envs), env_params)

        def env_step(runner: Runner, key: jax.Array) -> tuple[Runner, Transition]:
            policy_key, step_key = jax.random.split(key)
            logits, value = runner.train_state.apply_fn(runner.train_state.params, runner.obs)
            action, log_prob = sample_items(policy_key, logits)
            next_obs, env_state, reward, terminated, truncated, info = step(
                jax.random.split(step_key, num_envs), runner.env_state, action, env_params
            )
            # Truncation counts as an end: the observation holds the episode's progress, so the horizon is
            # part of the state and the value after the last step is zero, as after termination.
            done = jnp.logical_or(terminated, truncated).astype(jnp.float32)
            transition = Transition(
                runner.obs, action, log_prob, value, reward, done,
                info["returned_episode_returns"], info["returned_episode"],
            )
            return Runner(runner.train_state, env_state, next_obs), transition

        def update_minibatch(train_state: TrainState, minibatch) -> tuple[TrainState, dict]:
            batch, advantages, targets = minibatch
            grad_fn = jax.grad(ppo_loss, has_aux=True)
            grads, losses = grad_fn(train_state.params, train_state.apply_fn, batch, advantages, targets, config)
            return train_state.apply_gradients(grads=grads), losses

        def update_epoch(train_state: TrainState, key: jax.Array, rollout, advantages, targets):
            order = jax.random.permutation(key, batch_size)

            def to_minibatches(x):
                flat = x.reshape((batch_size,) + x.shape[2:])
                return flat[order].reshape((config["NUM_MINIBATCHES"], minibatch_size) + x.shape[2:])

            minibatches = jax.tree.map(to_minibatches, (rollout, advantages, targets))
            return jax.lax.scan(update_minibatch, train_state, minibatches)

        def update(runner: Runner, key: jax.Array) -> tuple[Runner, dict]:
            rollout_key, epoch_key = jax.random.split(key)
            runner, rollout = jax.lax.scan(env_step, runner, jax.random.split(rollout_key, num_steps))
            _, last_value = runner.train_state.apply_fn(runner.train_state.params, runner.obs)
            advantages, targets = generalized_advantages(
                rollout.reward, rollout.value, rollout.done, last_value, config["GAMMA"], config["GAE_LAMBDA"]
            )

            def epoch(train_state, key):
                return update_epoch(train_state, key, rollout, advantages, targets)

            epoch_keys = jax.random.split(epoch_key, config["UPDATE_EPOCHS"])
            train_state, losses = jax.lax.scan(epoch, runner.train_state, epoch_keys)
            episodes = jnp.sum(rollout.episode_ended)
            returns = jnp.sum(jnp.where(rollout.episode_ended, rollout.episode_return, 0.0))
            metrics = {
                "episode_return": jnp.where(episodes > 0, returns / jnp.maximum(episodes, 1), jnp.nan),
                "episodes": episodes,
                **jax.tree.map(jnp.mean, losses),
            }
            return runner._replace(train_state=train_state), metrics

        runner = Runner(train_state, env_state, obs)
        _, metrics = jax.lax.scan(update, runner, jax.random.split(loop_key, num_updates))
        return metrics

    return train


def make_random_baseline(config: dict[str, Any], num_steps: int):
    """``evaluate(rng) -> (mean return, episodes)`` of a uniform-random policy over ``NUM_ENVS`` envs."""
    env, env_params = make_env(config)
    action_space = env.action_space(env_params)
    num_envs = config["NUM_ENVS"]
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def evaluate(rng: jax.Array) -> tuple[jax.Array, jax.Array]:
        reset_key, loop_key = jax.random.split(rng)
        _, env_state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(reset_key, num_envs), env_params)

        def env_step(env_state, key):
            action_key, step_key = jax.random.split(key)
            actions = jax.vmap(action_space.sample)(jax.random.split(action_key, num_envs))
            _, env_state, _, _, _, info = step(jax.random.split(step_key, num_envs), env_state, actions, env_params)
            return env_state, (info["returned_episode_returns"], info["returned_episode"])

        _, (returns, ended) = jax.lax.scan(env_step, env_state, jax.random.split(loop_key, num_steps))
        episodes = jnp.sum(ended)
        return jnp.sum(jnp.where(ended, returns, 0.0)) / jnp.maximum(episodes, 1), episodes

    return evaluate


def parse_args(argv=None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description="Minimal purejaxrl-style PPO on an rlrec env through FlattenObservation + LogWrapper."
    )
    parser.add_argument("--env", default=CONFIG["ENV_NAME"], help="a single-item env id (rlrec.registered_envs())")
    parser.add_argument("--total-timesteps", type=int, default=CONFIG["TOTAL_TIMESTEPS"], help="env steps per seed")
    parser.add_argument("--num-envs", type=int, default=CONFIG["NUM_ENVS"], help="parallel users per seed")
    parser.add_argument("--num-steps", type=int, default=CONFIG["NUM_STEPS"], help="rollout length per update")
    parser.add_argument("--num-seeds", type=int, default=CONFIG["NUM_SEEDS"], help="seeds trained at once (vmap)")
    parser.add_argument("--seed", type=int, default=CONFIG["SEED"])
    parser.add_argument("--lr", type=float, default=CONFIG["LR"], help="Adam learning rate (annealed to 0)")
    parser.add_argument("--ent-coef", type=float, default=CONFIG["ENT_COEF"], help="entropy bonus weight")
    parser.add_argument("--hidden", type=int, default=CONFIG["HIDDEN"], help="width of the MLP layers")
    args = parser.parse_args(argv)
    return dict(
        CONFIG,
        ENV_NAME=args.env,
        TOTAL_TIMESTEPS=args.total_timesteps,
        NUM_ENVS=args.num_envs,
        NUM_STEPS=args.num_steps,
        NUM_SEEDS=args.num_seeds,
        SEED=args.seed,
        LR=args.lr,
        ENT_COEF=args.ent_coef,
        HIDDEN=args.hidden,
    )


def main(argv=None) -> None:
    config = parse_args(argv)
    rng = jax.random.key(config["SEED"])
    train_key, random_key = jax.random.split(rng)
    seed_keys = jax.random.split(train_key, config["NUM_SEEDS"])

    start = time.perf_counter()
    train = jax.jit(jax.vmap(make_train(config)))
    setup_s = time.perf_counter() - start
    start = time.perf_counter()
    compiled = train.lower(seed_keys).compile()
    compile_s = time.perf_counter() - start
    start, start_cpu = time.perf_counter(), time.process_time()
    metrics = jax.block_until_ready(compiled(seed_keys))
    run_s, run_cpu_s = time.perf_counter() - start, time.process_time() - start_cpu

    num_updates = metrics["episode_return"].shape[1]
    steps = num_updates * config["NUM_ENVS"] * config["NUM_STEPS"] * config["NUM_SEEDS"]
    window = max(1, num_updates // 10)
    returns = np.asarray(metrics["episode_return"])
    first, last = np.nanmean(returns[:, :window], axis=1), np.nanmean(returns[:, -window:], axis=1)

    random_steps = max(1, 20_000 // config["NUM_ENVS"])
    random_return, random_episodes = jax.jit(make_random_baseline(config, random_steps))(random_key)

    env_id = config["ENV_NAME"]
    print(f"PPO on {env_id}: {config['NUM_SEEDS']} seeds x {num_updates} updates x "
          f"{config['NUM_ENVS']} envs x {config['NUM_STEPS']} steps = {steps:,} env steps")
    print(f"env + catalog setup {setup_s:.1f} s, compile {compile_s:.1f} s, "
          f"run {run_s:.1f} s: {steps / run_s:,.0f} env steps/s (rollout and PPO updates together; "
          f"{run_cpu_s:.1f} CPU-seconds, {steps / run_cpu_s:,.0f} steps per CPU-second)")
    env, env_params = make_env(config)  # the catalog is loaded once per process: this is cheap
    uniform_entropy = np.log(env.num_items(env_params))
    print(f"policy entropy {np.asarray(metrics['entropy'])[:, -1].mean():.2f} nats at the end "
          f"(uniform over the {env.num_items(env_params)} items: {uniform_entropy:.2f})")
    print(f"mean episode return (clicks per session) of completed episodes, first/last {window} updates:")
    for seed, (a, b) in enumerate(zip(first, last)):
        print(f"  seed {seed}: start {a:.2f} -> end {b:.2f}")
    print(f"  mean over seeds: start {first.mean():.2f} -> end {last.mean():.2f}")
    print(f"uniform-random policy: {float(random_return):.2f} "
          f"({int(random_episodes)} episodes, {random_steps * config['NUM_ENVS']:,} env steps)")


if __name__ == "__main__":
    main()
