r"""Deep RL vs myopic policies on the full session setting (budget + leaving), with confidence intervals.

Trains PPO, REINFORCE, DQN and SlateQ (several seeds each, vmapped), freezes each trained seed and evaluates it on
fresh users (``rlrec.run``, personal mode), next to the best myopic bandit (LinUCB, personal), popularity,
random, and the **myopic oracle** (best next click, reading the hidden taste). Prints mean episode return
with a 95% Student-t interval over trained seeds (baselines: over the same number of evaluation groups),
CTR, and the environment steps per second measured *while training* (after compilation, in this run).

    python benchmarks/deep_rl.py                 # the README's table (~35 min on 2 CPU cores)
    python benchmarks/deep_rl.py --quick         # a smoke run (~3 min)
    python benchmarks/deep_rl.py --agents ppo ppo@old \
        --hp ppo@old:epochs=4 ppo@old:minibatches=4 ppo@old:learning_rate=3e-4 --baselines oracle

``--agents NAME@TAG`` with ``--hp NAME@TAG:name=value`` trains variants of one agent side by side (as in
``benchmarks/train_throughput.py``).

Machines here are noisy: compare agents within one run; absolute speeds drift.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import jax
import numpy as np
from train_throughput import parse_hyperparameters

import rlrec
from rlrec.agents import make_agent
from rlrec.agents.base import Frozen
from rlrec.metrics import episode_returns, mean_confidence_interval
from rlrec.rollout.runner import run
from rlrec.train.trainer import Trainer


def evaluate(env, params, agent, num_seeds: int, num_steps: int, seed: int) -> tuple[float, float]:
    """Mean episode return and CTR of ``agent`` on fresh users."""
    result = run(env, params, agent, num_seeds=num_seeds, num_steps=num_steps, seed=seed)
    returns = np.concatenate([episode_returns(r, d) for r, d in zip(result.reward, result.done)])
    return float(returns.mean()), float(result.reward.mean())


def train_agent(name, env_id, iterations, seeds, users, hyperparameters):
    env, params = rlrec.make(env_id, track_regret=False)
    agent = make_agent(name, env, **hyperparameters)
    trainer = Trainer(env, params, agent, num_seeds=seeds, num_users=users, seed=0)
    carry = trainer.init()
    chunk = max(iterations // 10, 1)
    done, speeds, curve = 0, [], []
    while done < iterations:
        length = min(chunk, iterations - done)
        started = time.perf_counter()
        carry, outputs = trainer.advance(carry, length)
        jax.block_until_ready(carry)
        seconds = time.perf_counter() - started
        if done > 0 and length == chunk:  # the first chunk compiles; the last may be shorter (recompiles)
            speeds.append(trainer.env_steps_per_iteration() * length / seconds)
        done += length
        curve.append(outputs["return_sum"].sum() / max(outputs["episodes"].sum(), 1))
        print(f"  {name}: iteration {done}/{iterations}, training episode return {curve[-1]:.2f}", flush=True)
    steps = trainer.env_steps_per_iteration() * iterations
    return agent, carry.agent_state, steps, (float(np.median(speeds)) if speeds else float("nan"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="MovieLens-Session-v0")
    parser.add_argument("--seeds", type=int, default=6, help="training seeds per deep agent")
    parser.add_argument("--users", type=int, default=256, help="users per seed while training")
    parser.add_argument("--ppo-iterations", type=int, default=200)
    parser.add_argument("--reinforce-iterations", type=int, default=100)
    parser.add_argument("--dqn-iterations", type=int, default=1000)
    parser.add_argument("--dqn-users", type=int, default=128)
    parser.add_argument("--eval-seeds", type=int, default=16, help="evaluation user streams per trained seed")
    parser.add_argument("--eval-steps", type=int, default=200)
    parser.add_argument("--agents", nargs="+", default=["ppo", "reinforce", "dqn", "slateq"],
                        help="deep agents to train (NAME or NAME@TAG for a variant)")
    parser.add_argument("--baselines", nargs="*", default=["oracle", "linucb", "popularity", "random"])
    parser.add_argument("--hp", nargs="*", default=[], help="[agent:]name=value hyperparameter overrides")
    parser.add_argument("--quick", action="store_true", help="few iterations: a smoke run, not a result")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    args = parser.parse_args()
    if args.quick:
        args.ppo_iterations, args.reinforce_iterations, args.dqn_iterations = 40, 20, 60
        args.seeds, args.eval_seeds = 2, 4

    print(f"rlrec deep RL benchmark on {args.env}; devices {jax.devices()}", flush=True)
    env, params = rlrec.make(args.env)
    rows = []

    hyperparameters = parse_hyperparameters(args.hp, args.agents)
    sizes = {  # iterations and users per seed; slateq is the SlateQ decomposition, here with k = 1
        "ppo": (args.ppo_iterations, args.users),
        "reinforce": (args.reinforce_iterations, args.users),
        "dqn": (args.dqn_iterations, args.dqn_users),
        "slateq": (args.dqn_iterations, args.dqn_users),
    }
    for name in args.agents:
        base = name.split("@")[0]
        if base not in sizes:
            raise SystemExit(f"--agents {name!r}: not one of {sorted(sizes)} (optionally NAME@TAG).")
        iterations, users = sizes[base]
        hyper = hyperparameters[name]
        print(f"training {name}: {args.seeds} seeds x {users} users x {iterations} iterations {hyper}", flush=True)
        agent, states, steps, speed = train_agent(base, args.env, iterations, args.seeds, users, hyper)
        per_seed, ctrs = [], []
        for index in range(args.seeds):
            state = jax.tree.map(lambda x, i=index: x[i], states)
            greedy = base in ("dqn", "slateq")
            value, ctr = evaluate(env, params, Frozen.of(agent, state, deterministic=greedy), args.eval_seeds,
                                  args.eval_steps, seed=1000 + index)
            per_seed.append(value)
            ctrs.append(ctr)
        rows.append((name, per_seed, float(np.mean(ctrs)), steps, speed))

    for name in args.baselines:
        per_group, ctrs = [], []
        for index in range(args.seeds):
            value, ctr = evaluate(env, params, make_agent(name, env), args.eval_seeds, args.eval_steps,
                                  seed=1000 + index)
            per_group.append(value)
            ctrs.append(ctr)
        rows.append(("myopic oracle" if name == "oracle" else name, per_group, float(np.mean(ctrs)), 0, float("nan")))

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"deep_rl-{args.env}.csv"
    print()
    print(f"{'agent':<15}{'episode return (95% CI over seeds)':>38}{'CTR':>8}{'trained env steps':>20}"
          f"{'train steps/s':>15}")
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["agent", "episode_return_mean", "ci95_half_width", "per_seed", "ctr", "train_env_steps",
                         "train_env_steps_per_s"])
        for name, values, ctr, steps, speed in rows:
            mean, half = mean_confidence_interval(np.asarray(values))
            print(f"{name:<15}{mean:>30.2f} ± {half:<5.2f}{ctr:>8.3f}{steps:>20,}{speed:>15,.0f}")
            writer.writerow([name, mean, half, " ".join(f"{v:.3f}" for v in values), ctr, steps, speed])
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
