"""00 quickstart: install check, one environment, a random and a LinUCB recommender, regret in one plot."""

CELLS = [
    (
        "markdown",
        r"""
# 00 · Quickstart: a recommender that learns

A recommender system shows a user a few items and sees what they click. It faces a dilemma at every step:

- **exploit**: show what it already believes the user likes, to get a click now;
- **explore**: show something it is unsure about, to learn more about the user and do better later.

`rlrec` simulates users so you can watch this trade-off happen and measure it exactly. In this notebook you will

1. check that the installation works,
2. create an environment (a simulated MovieLens user and the 9,066-movie catalog),
3. make one recommendation by hand,
4. run a **random** recommender and **LinUCB** (a learning one) on several users, and
5. compare them by their **regret**: the clicks they lose compared with a perfect recommender.

**Before you start.** From the repository root: `pip install -c constraints-cpu.txt -e ".[dev]"`, then open this
notebook with the same Python. The first time, the language model encodes every movie title (about a minute on
a laptop); the embeddings are cached on disk, so later runs start in seconds.
""",
    ),
    (
        "markdown",
        r"""
## Parameters

Small defaults so the notebook finishes in about a minute on a laptop CPU. Raise them to get tighter
confidence bands (the run time grows roughly in proportion to `NUM_SEEDS * NUM_STEPS`).
""",
    ),
    (
        "code",
        r"""
ENV_ID = "MovieLens-BanditSlate-v0"  # a cold-start user, a slate of 5 movies per step
NUM_SEEDS = 8  # independent simulated users, each with its own learner
NUM_STEPS = 200  # recommendations per user (the length of this environment's episode)
SEED = 0
""",
    ),
    (
        "markdown",
        r"""
## 1. Install check

`rlrec` is written in [JAX](https://jax.readthedocs.io): the simulation and the agents are pure functions that
JAX compiles once and runs for many users in parallel. The cell below prints the versions and the device JAX
will use (a CPU is fine for everything here).
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
from rlrec.data import load_catalog

rlrec.enable_compilation_cache()  # compiled programs kept on disk: a second run skips most compiling

print("rlrec", rlrec.__version__, "| jax", jax.__version__, "| devices:", jax.devices())
print(len(rlrec.registered_envs()), "environments, e.g.", rlrec.registered_envs()[:3])
""",
    ),
    (
        "markdown",
        r"""
## 2. An environment

`rlrec.make(id)` returns an environment and its parameters. The environment `env` holds the *structure* (the
slate size, the choice model); `params` holds the *numbers*: the catalog's item embeddings, the population of
simulated users and every knob of the user model. Keeping them apart is what lets JAX compile the simulation
once and reuse it.

In `MovieLens-BanditSlate-v0` each episode is one new user who has never been seen before (a *cold start*).
Every step the recommender shows a **slate** of 5 movies; the user clicks at most one of them, or none.
The user's taste does not change during the episode: this is a *contextual bandit*, the simplest setting in
which exploration matters.
""",
    ),
    (
        "code",
        r"""
started = time.perf_counter()
env, params = rlrec.make(ENV_ID)
catalog = load_catalog("movielens", dim=32)  # the same catalog the environment uses (cached in memory)
print(f"ready in {time.perf_counter() - started:.1f} s")
print("items:", env.num_items(params), "| slate size:", env.slate_size, "| steps per user:", int(params.max_steps))
print("item embedding dimension in the simulator:", params.item_features.shape[1])
print("an item as the language model reads it:", repr(catalog.texts[0]))
""",
    ),
    (
        "markdown",
        r"""
## 3. One step by hand

`env.reset(key, params)` draws a new user; `env.step(key, state, action, params)` shows them a slate. Both
are pure functions: JAX uses explicit random keys instead of a global random state, so the same keys always
give the same user and the same clicks, and `jax.jit` can compile them.

The recommender never sees the user's hidden taste. It sees an **observation**: the embedding of a request the
user *stated* in words (below we look up which sentence it was), plus the history of what was shown and
clicked so far and how far into the session the user is (`progress`, from 0 to 1).
""",
    ),
    (
        "code",
        r"""
from rlrec.simulators.population import default_population

reset, step = jax.jit(env.reset), jax.jit(env.step)  # compiled on the first call, fast afterwards
obs, state = reset(jax.random.key(SEED), params)

# Which sentence did the user say? Their prototype (a real MovieLens user) has three; the observation is the
# language-model embedding of one of them (mapped into the simulator's 32 dimensions).
users = default_population()
prototype = int(state.prototype)
sentences = catalog.project(users.requests[prototype])  # (3, 32)
said = users.request_texts[prototype][int(np.argmax(sentences @ np.asarray(obs["request"])))]
print("The user says:", repr(said))

action = env.action_space(params).sample(jax.random.key(SEED + 1))  # 5 random distinct movies
obs, state, reward, terminated, truncated, info = step(jax.random.key(SEED + 2), state, action, params)

def titles(items):
    return [catalog.metadata["title"][int(i)] for i in np.asarray(items)]

print("\nshown (random):", titles(action))
print("clicked:", titles([info["clicked_item"]])[0] if int(info["clicked_item"]) >= 0 else "nothing")
print("best slate for this user (the oracle reads the hidden taste):", titles(info["oracle_slate"]))
print(f"\nP(click) of the random slate: {float(info['expected_reward']):.3f}")
print(f"P(click) of the best slate:   {float(info['oracle_expected_reward']):.3f}")
print(f"regret of this step:          {float(info['regret']):.3f}")
""",
    ),
    (
        "markdown",
        r"""
The **regret** of a step is the probability of a click that the best possible slate would have had, minus the
probability of a click of the slate actually shown. rlrec can compute it exactly because the simulator knows the
user's hidden taste (the *oracle*). Summed over steps, **cumulative regret** counts the expected clicks a
recommender lost while it was learning: lower is better, and 0 is perfect.

## 4. A whole run: random vs LinUCB

`rlrec.run` plays a recommender against the environment for `NUM_STEPS` steps on `NUM_SEEDS` users at once, in
one compiled program (`lax.scan` over steps, `vmap` over users). Here each user gets their own fresh learner
(the *personal* mode): every run is a cold start.

- **random** shows 5 random movies every time. It never learns.
- **LinUCB** models the click probability of a movie as linear in the movie's features (its embedding, quality
  and popularity) and picks the movies with the highest *optimistic* estimate: predicted value plus a bonus
  for uncertainty. Uncertain movies get tried; as evidence accumulates the bonus shrinks and it exploits.

The first call of each recommender compiles it (the slow part, a few seconds each); the run itself is fast.
Compiled programs are kept on disk (`rlrec.enable_compilation_cache()` in the first cell), so running this
notebook again skips most of the compiling.
""",
    ),
    (
        "code",
        r"""
results = {}
for name in ["random", "linucb"]:
    started = time.perf_counter()
    results[name] = rlrec.run(env, params, make_agent(name, env), num_seeds=NUM_SEEDS, num_steps=NUM_STEPS, seed=SEED)
    result = results[name]
    print(
        f"{name:>7}: cumulative regret {result.cumulative_regret()[:, -1].mean():6.1f} expected clicks, "
        f"click-through rate {result.reward.mean():.3f}   ({time.perf_counter() - started:.1f} s)"
    )
""",
    ),
    (
        "markdown",
        r"""
## 5. Regret in one plot

The left panel shows cumulative regret against the step, averaged over the users (seeds), with a shaded 95%
confidence band. The right panel shows the *per-step* regret, smoothed over 20 steps: the slope of the left
curve.
""",
    ),
    (
        "code",
        r"""
from rlrec.metrics import mean_confidence_interval

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
steps = np.arange(1, NUM_STEPS + 1)
window = 20
for name, result in results.items():
    mean, half = mean_confidence_interval(result.cumulative_regret())
    (line,) = left.plot(steps, mean, label=name)
    left.fill_between(steps, mean - half, mean + half, color=line.get_color(), alpha=0.2, linewidth=0)
    per_step = np.convolve(result.regret.mean(axis=0), np.ones(window) / window, mode="valid")
    right.plot(steps[window - 1 :], per_step, color=line.get_color(), label=name)
left.set(xlabel="step", ylabel="cumulative regret (expected clicks)", title="Cumulative regret")
right.set(xlabel="step", ylabel="regret per step", title=f"Per-step regret ({window}-step moving average)")
right.set_ylim(bottom=0)
for axis in (left, right):
    axis.grid(alpha=0.3)
    axis.legend(frameon=False)
fig.tight_layout()
plt.show()
""",
    ),
    (
        "markdown",
        r"""
**What to notice.**

- **random** loses about the same amount every step: its per-step regret is flat, so its cumulative regret is a
  straight line. A recommender that does not learn has *linear* regret.
- **LinUCB** knows nothing about a new user at first, so its first slates are poor; its per-step regret then
  falls as it learns, so its cumulative curve **bends**: regret that grows more slowly than the number of steps is
  called *sublinear*. That bend is what learning looks like.
- LinUCB's per-step regret does not reach 0 within 200 steps: it is still exploring a little, and its linear
  model of the click probability is only an approximation of how the simulated user really chooses.

The numbers printed above come from your run; the shape of the curves is what matters.
""",
    ),
    (
        "markdown",
        r"""
### Did LinUCB find what this user likes?

Regret is measured against the oracle. Another way to see learning: the share of each slate that belongs to the
user's true top-10 movies (*precision@5* against the top 10 by the user's hidden utility).
""",
    ),
    (
        "code",
        r"""
fig, axis = plt.subplots(figsize=(6, 3.5))
for name, result in results.items():
    axis.plot(steps, result.precision.mean(axis=0), label=name)
axis.set(xlabel="step", ylabel="precision@5", title="Share of the slate in the user's true top 10")
axis.grid(alpha=0.3)
axis.legend(frameon=False)
plt.show()
print("LinUCB precision over the last 50 steps:", round(float(results["linucb"].precision[:, -50:].mean()), 3))
print("random precision over the last 50 steps:", round(float(results["random"].precision[:, -50:].mean()), 3))
""",
    ),
    (
        "markdown",
        r"""
Random slates almost never contain one of the user's top 10 out of 9,066 movies. LinUCB's slates contain
some of them after a few dozen steps, without ever seeing the user's hidden taste: only clicks.

## Where next

- `01_simulated_users`: how the simulated users are built from real ratings and a language model, and how they
  choose.
- `02_bandits_and_regret`: epsilon-greedy, UCB, Thompson sampling and LinUCB side by side; why regret is linear
  or sublinear; how the user's stated request helps with a cold start.
- `03_deep_rl`: when showing the best next click is not enough.
- `04_diversity`: what good regret costs in diversity, exposure and coverage.
""",
    ),
]
