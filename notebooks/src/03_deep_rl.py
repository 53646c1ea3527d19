"""03 deep RL: when myopic is not enough. PPO and DQN on the session env vs the myopic oracle and LinUCB."""

CELLS = [
    (
        "markdown",
        r"""
# 03 · Deep RL: when myopic is not enough

Every agent in notebook 02 is **myopic**: it tries to maximise the *next* click. That is the right goal when
the user does not change, as in the bandit setting. In `MovieLens-Session-v0` the user does change (notebook
01, section 5):

- each step costs the user some patience (a session **budget**); a satisfying click gives some back, and the
  user **leaves** when the budget runs out;
- popular movies are strong **clickbait** (`appeal_weight` 4): they get the click but often disappoint;
- users tire of more of the same (boredom) and their taste drifts toward what they watch.

The measure is now the **episode return**: clicks per session, from arrival to departure (at most 100 steps).
Even the **myopic oracle**, which reads the hidden taste and shows the best next click, loses users early by
feeding them clickbait. A reinforcement-learning agent that maximises the *discounted sum* of future clicks
can learn to trade a little click probability now for a longer session, from observations alone (the
request and the history of shown and clicked items, and how satisfying the clicks were).

We compare:

| agent | what it sees | goal |
| --- | --- | --- |
| myopic oracle | the hidden taste | best next click |
| LinUCB (the best bandit) | request and clicks | best next click, learnt per user |
| PPO | request and history | clicks over the session (policy gradient) |
| DQN | request and history | clicks over the session (Q-learning) |
""",
    ),
    (
        "markdown",
        r"""
## Parameters

The defaults train each deep agent briefly on one seed, so the notebook fits in a couple of minutes on a
laptop CPU; most of that time is JAX compiling the training and evaluation programs, not training. The
README's benchmark (PPO beating the myopic oracle by a clear margin, 4 seeds) uses `PPO_ITERATIONS = 200`,
`TRAIN_SEEDS = 4`: 8x the environment steps of the defaults here, a few minutes on 2 CPU cores (see
"Scaling up" at the end).
""",
    ),
    (
        "code",
        r"""
ENV_ID = "MovieLens-Session-v0"
TRAIN_SEEDS = 1  # independent learners trained in parallel (vmapped); evaluation uses the first
PPO_ITERATIONS = 100  # each iteration: PPO_USERS users x 16 steps, then 4 epochs of minibatch updates
PPO_USERS = 256
DQN_ITERATIONS = 40  # each iteration: DQN_USERS users x 16 steps into a replay buffer, then 8 gradient steps
DQN_USERS = 128
EVAL_SEEDS = 8  # evaluation: EVAL_SEEDS streams of fresh users, EVAL_STEPS steps each
EVAL_STEPS = 200
SEED = 0
""",
    ),
    (
        "code",
        r"""
import time

import jax
import matplotlib.pyplot as plt
import numpy as np

import rlrec
from rlrec.agents import make_agent
from rlrec.agents.base import Frozen
from rlrec.metrics import episode_returns, mean_confidence_interval
from rlrec.train import train

rlrec.enable_compilation_cache()  # compiled programs kept on disk: a second run skips most compiling

# No regret is needed here (the measure is the episode return), so skip the per-step oracle: faster steps.
env, params = rlrec.make(ENV_ID, track_regret=False)
print(env.num_items(params), "movies; sessions of at most", int(params.max_steps), "steps")
""",
    ),
    (
        "markdown",
        r"""
## 1. Evaluation: fresh users, the same for every agent

`evaluate` runs an agent with `rlrec.run` on `EVAL_SEEDS` streams of fresh users for `EVAL_STEPS` steps each
(a new user arrives whenever one leaves) and collects every finished session. The same `seed` gives every
agent the same stream of arriving users. Besides the return we record the click-through rate, the session
length and the mean *appeal* (standardised log-popularity) of the movies shown: how much the agent relies on
clickbait.
""",
    ),
    (
        "code",
        r"""
evaluations = {}


def evaluate(label, agent):
    started = time.perf_counter()
    result = rlrec.run(env, params, agent, num_seeds=EVAL_SEEDS, num_steps=EVAL_STEPS, seed=SEED + 1000)
    returns = np.concatenate([episode_returns(r, d) for r, d in zip(result.reward, result.done)])
    ends = [np.flatnonzero(d) for d in result.done]
    lengths = np.concatenate([np.diff(np.concatenate([[-1], e])) for e in ends])
    evaluations[label] = {
        "returns": returns,
        "ctr": float(result.reward.mean()),
        "length": float(lengths.mean()),
        "appeal": float(np.asarray(params.item_appeal)[result.slates].mean()),
    }
    mean, half = mean_confidence_interval(returns)
    print(
        f"{label:>14}: {mean:5.2f} ± {half:.2f} clicks per session ({len(returns)} sessions), CTR "
        f"{evaluations[label]['ctr']:.3f}, {evaluations[label]['length']:4.1f} steps per session, "
        f"appeal shown {evaluations[label]['appeal']:+.2f}   ({time.perf_counter() - started:.0f} s)"
    )


evaluate("myopic oracle", make_agent("oracle", env))
evaluate("LinUCB", make_agent("linucb", env))
""",
    ),
    (
        "markdown",
        r"""
The oracle clicks almost every step, and still its sessions are short: it shows whatever is most tempting
*now*, and tempting is not the same as satisfying. LinUCB learns each user from scratch, and a session is too
short to learn much in, so it trails the oracle.

## 2. PPO: learning to keep users

**Proximal policy optimisation** (Schulman et al., 2017) is an actor-critic method:

- the **policy** (actor) gives a probability to every movie given the observation; a network (a small MLP
  *user tower* over the request and a decayed summary of the history) produces a vector that is dotted with
  each movie's features, so one network serves any catalog size. To stay cheap with 9,066 movies it picks a
  group of similar movies first, then a movie in the group (a hierarchical softmax);
- the **critic** predicts the discounted future clicks from the current observation;
- after each batch of experience, actions that led to *more future clicks than the critic expected* (a positive
  *advantage*) are made more likely, with a clipped objective so one update cannot change the policy too much.

Because the target is the discounted sum of future clicks (discount $\gamma = 0.95$), a click that drains the
user's budget counts against the movie that caused it. All training runs inside one compiled program:
`jit(vmap(scan))` over seeds and iterations.
""",
    ),
    (
        "code",
        r"""
ppo = make_agent("ppo", env)
started = time.perf_counter()
ppo_run = train(env, params, ppo, num_iterations=PPO_ITERATIONS, num_seeds=TRAIN_SEEDS, num_users=PPO_USERS, seed=SEED)
print(f"PPO: {ppo_run.env_steps:,} environment steps in {time.perf_counter() - started:.0f} s (compile included)")
print("episode return over the last 10 iterations, per seed:", ppo_run.episode_returns(window=10).round(2))
""",
    ),
    (
        "markdown",
        r"""
Training returns come from the policy *while it learns* (and explores). For a fair comparison we **freeze**
the trained policy (`Frozen.of`: it no longer learns) and evaluate it on the same fresh users as the baselines.
""",
    ),
    (
        "code",
        r"""
evaluate("PPO", Frozen.of(ppo, ppo_run.agent_state(0)))
""",
    ),
    (
        "markdown",
        r"""
## 3. DQN: learning action values

**Deep Q-learning** (Mnih et al., 2015) learns $Q(s, i)$, the expected discounted clicks after showing movie
$i$ in situation $s$, and shows the movie with the highest $Q$. Experience goes into a replay buffer; the
network is trained to match $r + \gamma\,Q_{\text{target}}(s', \arg\max_{i'} Q(s', i'))$ (double DQN with a
slowly updated target network, and multi-step returns). It explores with epsilon-greedy: a random movie with a
probability that decays during training. For evaluation it acts greedily.

Value-based learning on a 9,066-action problem is harder to get right than policy gradients; rlrec's DQN is
still being tuned (see the README's benchmark table), so read its number below as a snapshot at this small size,
not as a verdict.
""",
    ),
    (
        "code",
        r"""
dqn = make_agent("dqn", env)
started = time.perf_counter()
dqn_run = train(env, params, dqn, num_iterations=DQN_ITERATIONS, num_seeds=TRAIN_SEEDS, num_users=DQN_USERS, seed=SEED)
print(f"DQN: {dqn_run.env_steps:,} environment steps in {time.perf_counter() - started:.0f} s (compile included)")
evaluate("DQN (greedy)", Frozen.of(dqn, dqn_run.agent_state(0), deterministic=True))
""",
    ),
    (
        "markdown",
        r"""
## 4. The picture

Left: how the training return grew (mean over seeds, plotted against environment steps) with the evaluated
baselines as horizontal lines. Right: the evaluation returns with 95% confidence intervals over sessions, and
below each bar the click-through rate.
""",
    ),
    (
        "code",
        r"""
def training_curve(run, window=5):
    # Mean return of the episodes that finished in each iteration (all seeds), smoothed.
    per_iteration = run.metrics["return_sum"].sum(axis=0) / np.maximum(run.metrics["episodes"].sum(axis=0), 1)
    steps = np.arange(1, len(per_iteration) + 1) * run.env_steps / len(per_iteration)
    smooth = np.convolve(per_iteration, np.ones(window) / window, "valid")
    return steps[window - 1 :], smooth


fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
for label, run in [("PPO", ppo_run), ("DQN", dqn_run)]:
    left.plot(*training_curve(run), label=f"{label} (training)")
for label, style in [("myopic oracle", "--"), ("LinUCB", ":")]:
    left.axhline(evaluations[label]["returns"].mean(), color="grey", linestyle=style, label=label)
left.set(xlabel="environment steps (per seed)", ylabel="clicks per session", title="Training")
left.grid(alpha=0.3)
left.legend(frameon=False)

labels = list(evaluations)
means, halves = zip(*(mean_confidence_interval(evaluations[label]["returns"]) for label in labels))
right.bar(labels, means, yerr=halves, capsize=4, color=["grey", "silver", "tab:blue", "tab:orange"][: len(labels)])
right.set_xticks(range(len(labels)), [f"{label}\nCTR {evaluations[label]['ctr']:.3f}" for label in labels])
right.set(ylabel="clicks per session", title="Evaluation on fresh users (95% CI)")
right.grid(alpha=0.3, axis="y")
fig.tight_layout()
plt.show()
""",
    ),
    (
        "markdown",
        r"""
**What to notice** (compare with the numbers printed above; they are from your run):

- **PPO** should end above LinUCB and, at these defaults, above the myopic oracle, with a click-through rate a
  little *below* the oracle's and longer sessions: it gives up a few clicks on clickbait (its shown movies
  have lower appeal) to keep users satisfied and coming back for more steps. It never sees the hidden taste;
  it learnt this from the request, the history and the reward alone. If your run (another `SEED`, fewer
  iterations) ends below the oracle, the training curve is usually still rising: train longer.
- The oracle is **optimal for the next step** and still beaten over the session. "Optimal" depends on the
  objective: here the objective is the session, and a myopic policy is not optimal for it.
- **DQN** also learns from nothing (its first iterations explore almost at random). Per environment step it
  can learn fast at first, since it replays each transition many times, but here it gets far fewer steps than
  PPO (`DQN_ITERATIONS`), and at this size it typically has not caught up with PPO. Raise `DQN_ITERATIONS` to
  see how far it goes.
- Evaluation uses a few hundred sessions, so differences smaller than the confidence intervals are noise.

## Scaling up

To reproduce the README's benchmark, set `TRAIN_SEEDS = 4` and `PPO_ITERATIONS = 200` (and, for DQN,
`DQN_ITERATIONS = 300`) and rerun: the seeds train in parallel in one program, so 4 seeds cost less than 4x
one. `python benchmarks/deep_rl.py` runs the full comparison (PPO, REINFORCE, DQN, SlateQ and the baselines)
from the command line, and `rlrec train --env MovieLens-Session-v0 --agent ppo --out runs/ppo` trains with
checkpoints and logged metrics.

## Exercises

**Exercise 1.** PPO's discount `gamma` (default 0.95) sets how far ahead it looks: a click $n$ steps ahead counts
$\gamma^n$. What would you expect with `make_agent("ppo", env, gamma=0.0)`? Why?
""",
    ),
    (
        "code",
        r"""
# Your attempt (training again takes about as long as the PPO cell above)
""",
    ),
    (
        "markdown",
        r"""
<details><summary>Answer</summary>

With $\gamma = 0$ the return of an action is just its immediate click, so PPO becomes a *myopic* learner: it
learns to maximise the next click, like the bandits and the oracle, and has no reason to avoid clickbait. Expect
a high click-through rate, short sessions and a return no better than the myopic oracle's (which also knows
the hidden taste). Looking ahead is what the discount buys.

```python
myopic_ppo = make_agent("ppo", env, gamma=0.0)
run = train(env, params, myopic_ppo, num_iterations=PPO_ITERATIONS, num_seeds=TRAIN_SEEDS, num_users=PPO_USERS,
            seed=SEED)
evaluate("PPO, gamma=0", Frozen.of(myopic_ppo, run.agent_state(0)))
```
</details>

**Exercise 2.** Why is the oracle's click-through rate close to 1 while its return is lower than PPO's? Write
the return as (clicks per step) x (steps per session) and use the printed numbers.

<details><summary>Answer</summary>

Return = CTR x session length (approximately, per session). The oracle maximises the first factor (CTR close
to 1), but its clickbait clicks have low satisfaction, the budget drains and sessions are short. PPO accepts a
slightly lower CTR for clearly longer sessions, and the product is larger. `evaluations[label]["ctr"] *
evaluations[label]["length"]` reproduces each agent's return to within the noise.
</details>
""",
    ),
]
