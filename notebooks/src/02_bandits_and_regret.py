"""02 bandits and regret: epsilon-greedy, UCB1, Thompson sampling, LinUCB; linear vs sublinear regret; LM prior."""

CELLS = [
    (
        "markdown",
        r"""
# 02 · Bandits and regret

A cold-start user arrives. You know nothing about them except one sentence they said. For `NUM_STEPS` steps
you show them 5 movies out of 9,066 and see whether they click. How should you choose?

This is a **contextual bandit**: each step is a choice among arms (movies) whose payoffs (click probabilities)
are unknown, and the only way to learn them is to try. We compare the classic strategies:

| agent | idea |
| --- | --- |
| random | no learning at all (the reference line) |
| epsilon-greedy | usually show the best estimate, explore at random with probability epsilon |
| UCB1 | optimism per movie: try each one, prefer those with few tries |
| LinUCB | optimism with a *linear model* over movie features: what is learnt about one movie transfers to similar ones |
| linear Thompson sampling | act greedily on a *random plausible model* drawn from the posterior |
| LinUCB with an LM prior | LinUCB that starts from what the user said |

and measure each with **regret**: the expected clicks lost compared with an oracle that knows the user's
hidden taste (see notebook 00). The questions: why do some strategies have regret that grows *linearly* with
time and others *sublinearly*, and what does a language model buy you at the start?
""",  # noqa: E501 - a markdown table row cannot wrap
    ),
    (
        "markdown",
        r"""
## Parameters

`NUM_STEPS` is the horizon: each simulated user stays this long (we set the environment's `max_steps` to it).
Longer horizons make the difference between linear and sublinear regret easier to see; more seeds (users)
narrow the confidence bands. Run time is dominated by compiling each agent once (tens of seconds in total,
kept on disk for the next run); the runs themselves take seconds.
""",
    ),
    (
        "code",
        r"""
ENV_ID = "MovieLens-BanditSlate-v0"
NUM_SEEDS = 8  # simulated users (each with its own learner)
NUM_STEPS = 400  # steps per user
SEED = 0
SMOOTH = 25  # moving-average window for per-step regret plots
""",
    ),
    (
        "code",
        r"""
import time

import matplotlib.pyplot as plt
import numpy as np

import rlrec
from rlrec.agents import make_agent
from rlrec.metrics import mean_confidence_interval

rlrec.enable_compilation_cache()  # compiled programs kept on disk: a second run skips most compiling

env, params = rlrec.make(ENV_ID, max_steps=NUM_STEPS)
results = {}


def run(label, agent):
    # Runs one agent on NUM_SEEDS users for NUM_STEPS steps and stores the result under `label`.
    started = time.perf_counter()
    results[label] = rlrec.run(env, params, agent, num_seeds=NUM_SEEDS, num_steps=NUM_STEPS, seed=SEED)
    total = results[label].cumulative_regret()[:, -1].mean()
    print(f"{label:>24}: cumulative regret {total:6.1f}   ({time.perf_counter() - started:.1f} s)")


def plot(labels, title, first=None, smooth=SMOOTH):
    # Left: cumulative regret (mean over users, 95% band). Right: per-step regret, smoothed over `smooth` steps.
    steps = np.arange(1, NUM_STEPS + 1)[:first]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    for label in labels:
        mean, half = mean_confidence_interval(results[label].cumulative_regret()[:, :first])
        (line,) = left.plot(steps, mean, label=label)
        left.fill_between(steps, mean - half, mean + half, color=line.get_color(), alpha=0.15, linewidth=0)
        per_step = results[label].regret.mean(axis=0)[:first]
        window = min(smooth, len(per_step))
        right.plot(steps[window - 1 :], np.convolve(per_step, np.ones(window) / window, "valid"),
                   color=line.get_color())
    left.set(xlabel="step", ylabel="cumulative regret (expected clicks)", title=title)
    right.set(xlabel="step", ylabel="regret per step", title=f"per-step regret ({window}-step average)")
    right.set_ylim(bottom=0)
    for axis in (left, right):
        axis.grid(alpha=0.3)
    left.legend(frameon=False)
    fig.tight_layout()
    plt.show()
""",
    ),
    (
        "markdown",
        r"""
## 1. The reference: random

A random recommender pays the same expected regret every step, so its cumulative regret is a straight line
whose slope is the regret of a random slate. Any strategy worth using must bend below it.
""",
    ),
    (
        "code",
        r"""
run("random", make_agent("random", env))
print(f"regret of a random slate, per step: {results['random'].regret.mean():.3f} expected clicks")
""",
    ),
    (
        "markdown",
        r"""
## 2. Epsilon-greedy: exploration at a fixed rate

rlrec's epsilon-greedy fits a ridge regression of clicks on movie features (the movie's embedding, quality and
popularity): $\hat\theta = A^{-1} b$ with $A = \lambda I + \sum x x^\top$ and $b = \sum r\,x$. With
probability $1-\varepsilon$ it shows the 5 movies with the highest estimate $x^\top\hat\theta$; with
probability $\varepsilon$ a random slate.

With a **fixed** $\varepsilon$ it never stops exploring: even when the model is perfect, a share $\varepsilon$
of the steps are random slates, each paying the random slate's regret. So its per-step regret cannot fall below
about $\varepsilon \times$ (random regret per step): in the long run its cumulative regret grows **linearly**.
A **decaying** $\varepsilon_t = \varepsilon_0\,\text{decay}^t$ explores a lot early and then less and less.
""",
    ),
    (
        "code",
        r"""
run("epsilon-greedy (0.1)", make_agent("epsilon-greedy", env, epsilon=0.1))
# Same agent class, other hyperparameter values: JAX reuses the compiled program (no new compile).
run("epsilon-greedy (decaying)", make_agent("epsilon-greedy", env, epsilon=0.3, decay=0.99))
plot(["random", "epsilon-greedy (0.1)", "epsilon-greedy (decaying)"], "Epsilon-greedy")
""",
    ),
    (
        "markdown",
        r"""
**What to notice.** Both learn fast at first (the per-step regret drops well below random within a few dozen
steps). Then the fixed-$\varepsilon$ agent's per-step regret levels off at a floor and stays there: from that
point its cumulative regret is a straight line again, just a less steep one than random's. The decaying
schedule keeps lowering its per-step regret, so its cumulative curve keeps bending.

## 3. UCB1: optimism without structure

UCB1 keeps a click rate per movie and shows the movies with the highest *upper confidence bound*
$\bar r_i + c\sqrt{2\ln t / n_i}$; a movie never shown has an infinite bound. It is the textbook strategy, with
order-optimal regret, for a handful of independent arms.
""",
    ),
    (
        "code",
        r"""
run("UCB1", make_agent("ucb1", env))
plot(["random", "UCB1"], "UCB1 on 9,066 independent arms")
""",
    ),
    (
        "markdown",
        r"""
**What to notice.** UCB1 is no better than random here. It treats each of the 9,066 movies as a separate arm
and must show every one of them once before it can prefer any, but 5 slots per step for `NUM_STEPS` steps is
far fewer impressions than there are movies (see exercise 3). Its regret is linear for the whole run. The lesson:
with many items, learning must **generalise** across items, which is what features do.

## 4. LinUCB and linear Thompson sampling: structured exploration

Both use the same ridge regression as epsilon-greedy, but explore *where the model is uncertain* instead of at
random:

- **LinUCB** (Li et al., 2010) scores $x^\top\hat\theta + \alpha\sqrt{x^\top A^{-1} x}$: the second term is
  large for movies whose features point in directions the agent has seen little of. A click or a skip on one
  movie shrinks the uncertainty of every similar movie.
- **Linear Thompson sampling** (Agrawal & Goyal, 2013) draws a random $\tilde\theta \sim
  \mathcal N(\hat\theta, v^2 A^{-1})$ each step and acts greedily on it: uncertain directions get explored in
  proportion to how plausible they are.

For $d$ features and $T$ steps, theory bounds LinUCB's regret by about $d\sqrt{T}$ and linear Thompson
sampling's by about $d^{3/2}\sqrt{T}$ (up to log factors): sublinear, so the per-step regret tends to zero
when the linear model is right.
""",
    ),
    (
        "code",
        r"""
run("LinUCB", make_agent("linucb", env))
run("linear TS", make_agent("lints", env))
plot(["random", "epsilon-greedy (0.1)", "UCB1", "LinUCB", "linear TS"], "Structured exploration")
""",
    ),
    (
        "markdown",
        r"""
### Linear or sublinear? Measure it.

If cumulative regret grows like $R(t) \propto t^{p}$, then $\log R(t) = \text{const} + p\log t$: the slope
$p$ of a log-log plot is 1 for linear regret and 0.5 for $\sqrt{t}$. Below, $p$ is fitted on the last three
quarters of the run (the first steps are noisy). A horizon of a few hundred steps is short, so read the
slopes as a comparison between agents rather than as exact exponents.
""",
    ),
    (
        "code",
        r"""
steps = np.arange(1, NUM_STEPS + 1)
late = steps >= NUM_STEPS // 4
fig, axis = plt.subplots(figsize=(6.5, 4.5))
for label, result in results.items():
    curve = result.cumulative_regret().mean(axis=0)
    slope = np.polyfit(np.log(steps[late]), np.log(curve[late]), 1)[0]
    axis.loglog(steps, curve, label=f"{label} (p = {slope:.2f})")
axis.set(xlabel="step (log)", ylabel="cumulative regret (log)", title="Log-log regret: slope p = growth exponent")
axis.grid(alpha=0.3, which="both")
axis.legend(frameon=False, fontsize=8)
plt.show()
""",
    ),
    (
        "markdown",
        r"""
**What to notice.** random and UCB1 have $p$ close to 1 (linear). LinUCB, linear TS and the decaying
epsilon-greedy have clearly smaller exponents: their regret is sublinear over this horizon. Fixed-epsilon
greedy sits in between, because it learns fast at first and then settles onto its linear floor; with a longer
horizon its exponent creeps toward 1.

## 5. Cold start and the LM prior

At step 1 every learner above knows nothing about the user, yet the user told us what they want. rlrec's
**LM-prior** LinUCB puts the request into the model's prior mean: $\hat\theta = A^{-1}(b + \lambda\theta_0)$
with $\theta_0$ = `prior_scale` x the request embedding. Before any click it recommends the movies closest to
the request (like zero-shot retrieval); every click then moves it away from the prior toward the user's real
taste. A stronger ridge $\lambda$ (`regulariser`) makes the prior hold for longer.

The registry's `"lm-linucb"` is exactly LinUCB with `prior_scale=0.5, regulariser=5.0`. Building it from
`"linucb"` with those values reuses the compiled LinUCB program.
""",
    ),
    (
        "code",
        r"""
run("LinUCB + LM prior", make_agent("linucb", env, prior_scale=0.5, regulariser=5.0))
plot(["random", "LinUCB", "LinUCB + LM prior"], "The LM prior: the first 100 steps", first=100, smooth=5)
early = slice(0, 20)
for label in ["random", "LinUCB", "LinUCB + LM prior"]:
    print(f"{label:>18}: mean regret per step over the first 20 steps {results[label].regret[:, early].mean():.3f}")
""",
    ),
    (
        "markdown",
        r"""
**What to notice.** The LM prior pays off immediately: in the first steps its per-step regret is well below
plain LinUCB's, which starts from zero knowledge. Plain LinUCB catches up later (exercise 4 asks when), because
the request is only a partial view of the user's taste (notebook 01): a prior is a head start, not a
replacement for learning.

## Summary

| behaviour | regret | why |
| --- | --- | --- |
| no learning (random) | linear | every step pays the same |
| learning, but explores forever at a fixed rate (epsilon-greedy) | linear in the long run | the exploration floor |
| learning with independent arms on a huge catalog (UCB1) | linear over any realistic horizon | cannot generalise |
| structured exploration (LinUCB, Thompson sampling, decaying epsilon) | sublinear | exploration fades as uncertainty shrinks |
| plus a prior from what the user said | lower at the start | cold start solved partly by the LM |
""",  # noqa: E501 - a markdown table row cannot wrap
    ),
    (
        "markdown",
        r"""
## Exercises

Each exercise has an empty code cell for your attempt. Answers are hidden: click **Answer** to reveal one.
Changing hyperparameter *values* (not the agent type or the sizes) does not trigger a new compile, so most
exercises run in seconds.

**Exercise 1 (exploration strength).** LinUCB's `alpha` scales its exploration bonus (default 0.3). Predict
what happens to the cumulative regret with `alpha=0` (pure greedy on the ridge estimate) and with `alpha=1.5`.
Then run both.
""",
    ),
    (
        "code",
        r"""
# Your attempt: e.g. run("LinUCB alpha=0", make_agent("linucb", env, alpha=0.0)), then plot([...], "...")
""",
    ),
    (
        "markdown",
        r"""
<details><summary>Answer</summary>

```python
run("LinUCB alpha=0", make_agent("linucb", env, alpha=0.0))
run("LinUCB alpha=1.5", make_agent("linucb", env, alpha=1.5))
plot(["LinUCB alpha=0", "LinUCB", "LinUCB alpha=1.5"], "LinUCB: exploration strength")
```

Both extremes do worse than the default over this horizon. With `alpha=0` the agent exploits its first
estimates; a movie it wrongly believes bad is never shown again, so some of its mistakes are never corrected
and its per-step regret stays higher. With a large `alpha` it keeps paying for exploring movies it is already
fairly sure about, which is regret too: the bonus decays only as $1/\sqrt{n}$. The best `alpha` depends on the
horizon and on how well the linear model fits the user's real choices.
</details>
""",
    ),
    (
        "markdown",
        r"""
**Exercise 2 (the exploration floor).** Using `results`, compare fixed-epsilon greedy's per-step regret over
the last 100 steps with `0.1 x` the random slate's per-step regret. Is the floor fully explained by the
random slates it shows? If not, what else costs regret?
""",
    ),
    (
        "code",
        r"""
# Your attempt
""",
    ),
    (
        "markdown",
        r"""
<details><summary>Answer</summary>

```python
floor = results["epsilon-greedy (0.1)"].regret[:, -100:].mean()
exploration = 0.1 * results["random"].regret.mean()
print(f"epsilon-greedy per-step regret at the end: {floor:.3f}; explained by random slates: {exploration:.3f}")
print(f"LinUCB at the end: {results['LinUCB'].regret[:, -100:].mean():.3f}")
```

The random slates explain only part of the floor. The rest comes from its *greedy* slates: random exploration
spreads its evidence over the whole catalog, so the ridge estimate stays poor in exactly the directions that
matter for this user, while LinUCB's directed exploration gathers evidence where its estimate is uncertain and
relevant. Uniform exploration is both expensive (each random slate costs a lot) and uninformative.
</details>
""",
    ),
    (
        "markdown",
        r"""
**Exercise 3 (why UCB1 fails).** How many steps would UCB1 need just to show every movie once, with 5 per
slate? Compare with `NUM_STEPS`. What does that say about per-item bandits for large catalogs?
""",
    ),
    (
        "code",
        r"""
# Your attempt
""",
    ),
    (
        "markdown",
        r"""
<details><summary>Answer</summary>

```python
print(env.num_items(params) / env.slate_size, "steps to show every movie once; horizon:", NUM_STEPS)
```

About 1,800 steps, several times the horizon: UCB1 is still in its "try everything once" phase when the user
leaves, so it behaves like a random recommender over unseen movies. Per-item regret bounds grow with the number
of arms ($\sqrt{N T \log T}$), useless when $N$ is in the thousands and $T$ in the hundreds. Features (LinUCB's
bounds grow with the feature dimension $d$ = 34, not with $N$) or a prior are what make large catalogs
learnable.
</details>
""",
    ),
    (
        "markdown",
        r"""
**Exercise 4 (how long does the prior help?).** Find the first step after which plain LinUCB's smoothed
per-step regret is no higher than the LM-prior version's. Then compare their cumulative regret at the end of
the run.
""",
    ),
    (
        "code",
        r"""
# Your attempt
""",
    ),
    (
        "markdown",
        r"""
<details><summary>Answer</summary>

```python
window = np.ones(SMOOTH) / SMOOTH
plain = np.convolve(results["LinUCB"].regret.mean(axis=0), window, "valid")
prior = np.convolve(results["LinUCB + LM prior"].regret.mean(axis=0), window, "valid")
caught_up = np.flatnonzero(plain <= prior)
print("plain LinUCB catches up around step", caught_up[0] + SMOOTH if len(caught_up) else "never (in this run)")
for label in ["LinUCB", "LinUCB + LM prior"]:
    print(label, "cumulative regret", results[label].cumulative_regret()[:, -1].mean().round(1))
```

The prior's advantage is concentrated in the first steps, and plain LinUCB catches up after some tens to a
hundred or so steps. Later, plain LinUCB can match or even beat it per step: the stronger ridge that lets the
prior hold also slows learning from clicks (`regulariser=5` versus 1). Whether the prior's cumulative lead
survives to the end of the run depends on the users drawn: try a few values of `SEED`. The early advantage is
robust; the final total is not. Try `prior_scale` and `regulariser` values to move that trade-off.
</details>
""",
    ),
    (
        "markdown",
        r"""
**Exercise 5 (a less truthful request).** `interest_noise` (default 0.3) sets how far each simulated user's
hidden taste is drawn from their prototype, while the request stays the prototype's. Make the users noisier with
`rlrec.make(ENV_ID, max_steps=NUM_STEPS, interest_noise=1.0)` and rerun LinUCB with and without the prior. What
happens to the prior's advantage, and why? (The environment's numbers are traced arguments, so changing them
does not recompile either.)
""",
    ),
    (
        "code",
        r"""
# Your attempt
""",
    ),
    (
        "markdown",
        r"""
<details><summary>Answer</summary>

```python
noisy_env, noisy_params = rlrec.make(ENV_ID, max_steps=NUM_STEPS, interest_noise=1.0)
for label, agent in [("LinUCB", make_agent("linucb", env)),
                     ("LinUCB + LM prior", make_agent("linucb", env, prior_scale=0.5, regulariser=5.0))]:
    result = rlrec.run(noisy_env, noisy_params, agent, num_seeds=NUM_SEEDS, num_steps=NUM_STEPS, seed=SEED)
    print(label, "first 20 steps:", result.regret[:, :20].mean().round(3),
          "cumulative:", result.cumulative_regret()[:, -1].mean().round(1))
```

With noisier users the request says less about the actual user, so the prior points in a less useful
direction: its head start shrinks, and over the whole run the prior can now cost more than it saves. A prior
is only as good as the information it encodes. (Noise also changes
what the best slate is, so compare the two agents with each other, not with the runs above.)
</details>
""",
    ),
]
