"""Stable-Baselines3 PPO on an rlrec env, next to rlrec's own jitted PPO and the myopic oracle.

What it shows: SB3 trains on rlrec unchanged (``gymnasium.make`` for one user at a time, or
:class:`rlrec.envs.sb3.SB3VecEnv` for many users in one jitted call), what SB3 gains from reading the history's
item ids as the items' features (:class:`rlrec.envs.sb3.ItemFeaturesExtractor`) instead of as numbers, and what
rlrec's jitted training loop buys: the same env-step budget, the episode return each policy reaches, and the env
steps per second of each training loop, measured in this run.

    python examples/sb3_ppo.py                    # 300,000 steps per PPO; SB3 trains twice (with the extractor)
    python examples/sb3_ppo.py --steps 40000 --single-env-steps 1024 --eval-users 32 --eval-steps 100
                                                  # the README's table: 19.5 min on a 2-core CPU shared with other jobs

Every policy is evaluated on the same number of fresh users (``--eval-users`` streams of ``--eval-steps``
steps; a user who leaves is replaced by a new one); returns are per completed episode (clicks per session),
with a 95% Student-t interval over those episodes. One training seed per PPO: a comparison within one run,
not a tuned result (``benchmarks/deep_rl.py`` trains rlrec's agents on several seeds).
"""

from __future__ import annotations

import argparse
import textwrap
import time

import gymnasium
import jax
import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecMonitor

import rlrec
from rlrec.agents import make_agent
from rlrec.agents.base import Frozen
from rlrec.envs.sb3 import ItemFeaturesExtractor, SB3VecEnv, item_features
from rlrec.metrics import episode_returns, mean_confidence_interval
from rlrec.train.trainer import Trainer


def sb3_returns(model: PPO, env_id: str, users: int, steps: int, seed: int) -> np.ndarray:
    """Completed-episode returns of ``model`` (sampling its policy) on ``users`` fresh user streams."""
    envs = SB3VecEnv.make(env_id, num_envs=users, track_regret=False)
    envs.seed(seed)
    obs = envs.reset()
    rewards, dones = np.zeros((steps, users)), np.zeros((steps, users), bool)
    for t in range(steps):
        actions, _ = model.predict(obs, deterministic=False)
        obs, rewards[t], dones[t], _ = envs.step(actions)
    return np.concatenate([episode_returns(rewards[:, u], dones[:, u]) for u in range(users)])


def rlrec_returns(env, params, agent, users: int, steps: int, seed: int) -> np.ndarray:
    result = rlrec.run(env, params, agent, num_seeds=users, num_steps=steps, seed=seed)
    return np.concatenate([episode_returns(r, d) for r, d in zip(result.reward, result.done)])


def train_sb3(env_id: str, steps: int, num_envs: int, seed: int, extractor: bool = False) -> tuple[PPO, float]:
    """SB3 PPO trained on ``SB3VecEnv``; ``extractor``: with :class:`ItemFeaturesExtractor` (default net_arch)
    in place of SB3's default extractor, every other setting the same."""
    envs = VecMonitor(SB3VecEnv.make(env_id, num_envs=num_envs, track_regret=False))
    envs.seed(seed)
    policy_kwargs = (dict(features_extractor_class=ItemFeaturesExtractor,
                          features_extractor_kwargs=dict(item_features=item_features(envs))) if extractor else None)
    # A rollout of 64 steps from every user per update (SB3's default 2048 is sized for one env), minibatches
    # of 512, 4 epochs, the discount rlrec's PPO uses.
    model = PPO("MultiInputPolicy", envs, n_steps=64, batch_size=512, n_epochs=4, gamma=0.95, seed=seed,
                device="cpu", policy_kwargs=policy_kwargs)
    started = time.perf_counter()
    model.learn(steps)
    return model, model.num_timesteps / (time.perf_counter() - started)


def sb3_single_env_speed(env_id: str, steps: int, seed: int) -> float:
    """Env steps per second of SB3 PPO on ``gymnasium.make`` (SB3's DummyVecEnv: one user, one call a step)."""
    env = gymnasium.make(f"rlrec/{env_id}", track_regret=False)
    model = PPO("MultiInputPolicy", env, n_steps=steps // 2, batch_size=64, n_epochs=4, gamma=0.95, seed=seed,
                device="cpu")
    model.learn(steps // 2)  # the first rollout compiles the env's step
    started = time.perf_counter()
    model.learn(steps // 2, reset_num_timesteps=False)
    return (steps // 2) / (time.perf_counter() - started)


def train_rlrec(env_id: str, steps: int, users: int, seed: int):
    env, params = rlrec.make(env_id, track_regret=False)
    agent = make_agent("ppo", env)
    trainer = Trainer(env, params, agent, num_seeds=1, num_users=users, seed=seed)
    iterations = max(steps // trainer.env_steps_per_iteration(), 2)
    carry = trainer.init()
    started = time.perf_counter()
    carry, _ = trainer.advance(carry, 1)  # compiles the loop
    jax.block_until_ready(carry)
    compile_seconds = time.perf_counter() - started
    started = time.perf_counter()
    carry, _ = trainer.advance(carry, iterations - 1)
    jax.block_until_ready(carry)
    speed = trainer.env_steps_per_iteration() * (iterations - 1) / (time.perf_counter() - started)
    state = jax.tree.map(lambda x: x[0], carry.agent_state)
    return Frozen.of(agent, state), trainer.env_steps_per_iteration() * iterations, speed, compile_seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--env", default="MovieLens-Session-v0", help="a single-item rlrec id")
    parser.add_argument("--steps", type=int, default=300_000, help="training env steps for each PPO")
    parser.add_argument("--num-envs", type=int, default=64, help="users SB3 steps at once (SB3VecEnv)")
    parser.add_argument("--rlrec-users", type=int, default=256, help="users rlrec's PPO steps at once")
    parser.add_argument("--single-env-steps", type=int, default=2048,
                        help="SB3 PPO steps on gymnasium.make (one user) to measure that path's speed; 0 skips")
    parser.add_argument("--eval-users", type=int, default=64)
    parser.add_argument("--eval-steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if "Slate" in args.env:
        parser.error("--env: this comparison uses a single-item id (rlrec's PPO table is on MovieLens-Session-v0).")
    rlrec.enable_compilation_cache()
    print(f"{args.env}: {args.steps:,} training env steps per PPO; evaluation on {args.eval_users} user streams x "
          f"{args.eval_steps} steps", flush=True)

    print("training SB3 PPO on SB3VecEnv ...", flush=True)
    sb3_model, sb3_speed = train_sb3(args.env, args.steps, args.num_envs, args.seed)
    print("training SB3 PPO with ItemFeaturesExtractor on SB3VecEnv ...", flush=True)
    featured_model, featured_speed = train_sb3(args.env, args.steps, args.num_envs, args.seed, extractor=True)
    single_speed = sb3_single_env_speed(args.env, args.single_env_steps, args.seed) if args.single_env_steps else None
    print("training rlrec PPO ...", flush=True)
    frozen, rlrec_steps, rlrec_speed, compile_seconds = train_rlrec(args.env, args.steps, args.rlrec_users, args.seed)

    print("evaluating ...", flush=True)
    env, params = rlrec.make(args.env, track_regret=False)
    evaluation = dict(users=args.eval_users, steps=args.eval_steps, seed=args.seed + 1000)
    rows = [
        (f"SB3 PPO (SB3VecEnv, {args.num_envs} users)", sb3_returns(sb3_model, args.env, **evaluation),
         sb3_model.num_timesteps, sb3_speed),
        (f"SB3 PPO + ItemFeaturesExtractor ({args.num_envs} users)",
         sb3_returns(featured_model, args.env, **evaluation), featured_model.num_timesteps, featured_speed),
        (f"rlrec PPO (jitted, {args.rlrec_users} users)", rlrec_returns(env, params, frozen, **evaluation),
         rlrec_steps, rlrec_speed),
        ("myopic oracle (reads the taste)", rlrec_returns(env, params, make_agent("oracle", env), **evaluation),
         None, None),
        ("random", rlrec_returns(env, params, make_agent("random", env), **evaluation), None, None),
    ]
    print(f"\n{'policy':<42}{'episode return':>17}{'env steps':>11}{'steps/s':>10}")
    for name, returns, steps, speed in rows:
        mean, half = mean_confidence_interval(returns)
        trained = f"{steps:>11,}" if steps else f"{'-':>11}"
        rate = f"{speed:>10,.0f}" if speed else f"{'-':>10}"
        print(f"{name:<42}{mean:>9.2f} ± {half:<5.2f}{trained}{rate}")
    if single_speed:
        print(f"{'SB3 PPO on gymnasium.make (1 user)':<42}{'-':>17}{args.single_env_steps // 2:>11,}"
              f"{single_speed:>10,.0f}")
    sessions = ", ".join(str(returns.size) for _, returns, _, _ in rows)
    footer = (f"steps/s: training env steps per second, updates included (rlrec's after its {compile_seconds:.0f} s "
              f"compile). Returns: clicks per completed session, 95% CI over sessions ({sessions} sessions).")
    print("\n" + textwrap.fill(footer, width=80))


if __name__ == "__main__":
    main()
