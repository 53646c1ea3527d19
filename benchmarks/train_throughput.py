"""Environment steps per second *while training* (rollouts + updates), vmapped over seeds.

For each agent and batch of users, compiles one chunk of training iterations, then times the next chunks.
The reference row is the same trainer with the random agent (environment + loop only, no learning), so the
ratio column says what learning costs on this machine, measured in this run.

    python benchmarks/train_throughput.py                               # MovieLens-Session-v0, PPO and DQN
    python benchmarks/train_throughput.py --agents ppo --users 4096 --seeds 1 2
    python benchmarks/train_throughput.py --agents ppo --users 1024 --hp ppo:epochs=2 ppo:hidden=32

``--hp AGENT:NAME=VALUE`` (or ``NAME=VALUE`` for every learning agent) overrides hyperparameters, so a
speed/return trade-off is measured in one run; ``--hp`` sets of several variants of one agent are compared
by naming them ``--agents ppo ppo@fast --hp ppo@fast:epochs=1``.

Machines here are noisy: read ratios within one run; absolute figures drift.
"""

from __future__ import annotations

import argparse
import ast
import time

import jax

import rlrec
from rlrec.agents import make_agent
from rlrec.train.trainer import Trainer


def steps_per_second(env, params, agent, seeds: int, users: int, iterations: int, repeats: int) -> float:
    trainer = Trainer(env, params, agent, num_seeds=seeds, num_users=users, seed=0)
    carry = trainer.init()
    carry, _ = trainer.advance(carry, iterations)  # compile
    jax.block_until_ready(carry)
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        carry, _ = trainer.advance(carry, iterations)
        jax.block_until_ready(carry)
        best = max(best, trainer.env_steps_per_iteration() * iterations / (time.perf_counter() - started))
    return best


def parse_hyperparameters(pairs: list[str], agents: list[str]) -> dict[str, dict]:
    """``["ppo:epochs=2", "hidden=32"]`` -> ``{"ppo": {"epochs": 2, "hidden": 32}, ...}`` (no prefix: every agent)."""
    settings: dict[str, dict] = {name: {} for name in agents}
    for pair in pairs:
        target, _, assignment = pair.rpartition(":") if ":" in pair.split("=", 1)[0] else ("", "", pair)
        if "=" not in assignment:
            raise SystemExit(f"--hp {pair!r} must look like [agent:]name=value.")
        name, raw = assignment.split("=", 1)
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        for agent in [target] if target else agents:
            if agent not in settings:
                raise SystemExit(f"--hp {pair!r}: {agent!r} is not one of --agents {agents}.")
            settings[agent][name] = value
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="MovieLens-Session-v0")
    parser.add_argument("--agents", nargs="+", default=["ppo", "dqn"])
    parser.add_argument("--users", nargs="+", type=int, default=[256, 1024, 4096])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    parser.add_argument("--env-steps", type=int, default=200_000, help="env steps per timed chunk (about)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--hp", nargs="*", default=[], help="[agent:]name=value hyperparameter overrides")
    args = parser.parse_args()
    hyperparameters = parse_hyperparameters(args.hp, args.agents)

    env, params = rlrec.make(args.env, track_regret=False)
    print(f"training throughput on {args.env} ({env.num_items(params)} items), devices {jax.devices()}")
    for name, values in hyperparameters.items():
        if values:
            print(f"  {name}: {values}")
    print(f"{'agent':<10}{'seeds':>6}{'users':>7}{'env steps/s':>14}{'vs env only':>13}")
    for seeds in args.seeds:
        for users in args.users:
            reference = None
            for name in ["random"] + args.agents:
                # "ppo@fast": the ppo agent with the hyperparameters given to "ppo@fast".
                agent = make_agent(name.split("@")[0], env, **hyperparameters.get(name, {}))
                rollout = users * getattr(agent, "rollout_length", 1)
                if getattr(agent, "buffer_size", rollout) < rollout:  # DQN's replay buffer must hold a rollout
                    agent = agent.replace(buffer_size=rollout)
                    print(f"  ({name}: replay buffer raised to one rollout, {rollout:,} transitions)")
                per_iteration = seeds * rollout
                iterations = max(args.env_steps // per_iteration, 1)
                speed = steps_per_second(env, params, agent, seeds, users, iterations, args.repeats)
                reference = reference or speed
                label = "env only" if name == "random" else name
                print(f"{label:<10}{seeds:>6}{users:>7}{speed:>14,.0f}{speed / reference:>12.2f}x", flush=True)


if __name__ == "__main__":
    main()
