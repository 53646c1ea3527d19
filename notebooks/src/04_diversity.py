"""04 diversity: the regret vs diversity trade-off, exposure and coverage."""

CELLS = [
    (
        "markdown",
        r"""
# 04 · Diversity, exposure and coverage

Regret measures how many clicks a recommender loses. It says nothing about *what* it shows. Two recommenders
with the same regret can show one user five near-identical movies, or a varied slate; can spread attention
over the catalog, or give it all to a few blockbusters. Those questions matter to users (variety), to the
people who make the items (exposure) and to the system itself (items never shown are never learnt about).

This notebook measures, for several agents on the same users:

| metric | level | meaning |
| --- | --- | --- |
| intra-list diversity (ILD) | one slate | mean pairwise cosine distance $1 - \langle e_i, e_j\rangle$ between the movies of a slate |
| genre entropy | one user | entropy (bits) of the genres shown to the user |
| coverage | one user / all users | share of the 9,066 movies shown at least once |
| exposure Gini | all users | 0 if every movie is shown equally often, close to 1 if a few movies take all the impressions |
| novelty | one user | mean $-\log_2$ (popularity share) of shown movies: high for rarely rated movies |

and asks: what does low regret cost in diversity, and when does diversity *help* regret?
""",  # noqa: E501 - a markdown table row cannot wrap
    ),
    (
        "markdown",
        r"""
## Parameters

A cold-start user per seed and a slate of 5 per step, as in notebook 02 (a shorter horizon here). `ALPHAS`
are LinUCB exploration strengths to sweep: changing a hyperparameter's value reuses the compiled program, so
each extra value costs only a few seconds.
""",
    ),
    (
        "code",
        r"""
ENV_ID = "MovieLens-BanditSlate-v0"
NUM_SEEDS = 8  # simulated users
NUM_STEPS = 200  # steps per user
ALPHAS = [0.0, 0.3, 1.5]  # LinUCB exploration bonus scales to compare (0.3 is the default)
SEED = 0
""",
    ),
    (
        "code",
        r"""
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import rlrec
from rlrec import metrics
from rlrec.agents import make_agent
from rlrec.bench.report import summarise
from rlrec.data import load_catalog

rlrec.enable_compilation_cache()  # compiled programs kept on disk: a second run skips most compiling

env, params = rlrec.make(ENV_ID, max_steps=NUM_STEPS)
catalog = load_catalog("movielens", dim=32)  # the environment's catalog: popularity and genres per movie
num_items = env.num_items(params)
results = {}


def run(label, agent, env_params=params):
    started = time.perf_counter()
    results[label] = rlrec.run(env, env_params, agent, num_seeds=NUM_SEEDS, num_steps=NUM_STEPS, seed=SEED)
    print(f"{label:>22}: done in {time.perf_counter() - started:.1f} s")


def table(labels):
    # One row per agent: per-user metrics as mean ± 95% CI over users, then catalog-level exposure over all users.
    rows = {}
    for label in labels:
        result = results[label]
        summary = summarise(result, num_items, popularity=catalog.popularity, genres=catalog.genres)
        row = {name: f"{mean:.3f} ± {half:.3f}" for name, (mean, half) in summary.items()
               if name in ("cumulative_regret", "ctr", "diversity", "genre_entropy", "novelty", "coverage")}
        exposure = np.bincount(result.slates.ravel(), minlength=num_items)  # impressions per movie, all users
        row["coverage (all users)"] = f"{np.mean(exposure > 0):.3f}"
        row["exposure Gini (all users)"] = f"{float(metrics.exposure_gini(exposure.astype(np.float32))):.3f}"
        rows[label] = row
    return pd.DataFrame(rows).T.rename(columns={"diversity": "ILD", "coverage": "coverage (per user)"})
""",
    ),
    (
        "markdown",
        r"""
## 1. The agents

- **oracle**: the best slate for the user's hidden taste (zero regret by definition);
- **popularity**: the 5 most-rated movies, for everyone;
- **text-match**: the 5 movies closest to the user's request (zero-shot LM retrieval, no learning);
- **random**;
- **LinUCB** at several exploration strengths, and **LinUCB + LM prior** (notebook 02).
""",
    ),
    (
        "code",
        r"""
run("oracle", make_agent("oracle", env))
run("popularity", make_agent("popularity", env))
run("text-match", make_agent("text-match", env))
run("random", make_agent("random", env))
for alpha in ALPHAS:
    run(f"LinUCB alpha={alpha}", make_agent("linucb", env, alpha=alpha))
run("LinUCB + LM prior", make_agent("linucb", env, prior_scale=0.5, regulariser=5.0))
bandit_table = table(results)
bandit_table
""",
    ),
    (
        "markdown",
        r"""
## 2. The regret-diversity trade-off

Each point is an agent: cumulative regret (lower is better) against the mean intra-list diversity of its
slates (left) and against the share of the catalog it showed each user (right). Error bars are 95% intervals
over users.
""",
    ),
    (
        "code",
        r"""
def scatter(labels, title):
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for label in labels:
        summary = summarise(results[label], num_items)
        (regret, regret_half), (ild, ild_half) = summary["cumulative_regret"], summary["diversity"]
        coverage, coverage_half = summary["coverage"]
        for axis, (y, y_half) in zip(axes, [(ild, ild_half), (coverage, coverage_half)]):
            axis.errorbar(regret, y, xerr=regret_half, yerr=y_half, fmt="o", capsize=3)
            axis.annotate(label, (regret, y), fontsize=8, xytext=(4, 4), textcoords="offset points")
    axes[0].set(xlabel="cumulative regret (lower is better)", ylabel="intra-list diversity", title=title)
    axes[1].set(xlabel="cumulative regret (lower is better)", ylabel="coverage per user", title=title)
    axes[1].set_yscale("log")
    for axis in axes:
        axis.grid(alpha=0.3)
    fig.tight_layout()
    plt.show()


scatter(list(results), "Cold-start bandit users")
""",
    ),
    (
        "markdown",
        r"""
**What to notice.**

- The **oracle** has zero regret and shows each user the same 5 movies every step (in this setting the user
  never tires), so its per-user coverage is the smallest possible, and its slates are no more varied than the
  user's taste: five movies that all match one direction.
- **random** is the most diverse and covers the most, and has the highest regret. **popularity** is the
  opposite corner of uselessness: the same 5 movies for everyone (the lowest coverage over all users, see the
  table), and high regret.
- The learning agents sit in between. Along the LinUCB sweep, more exploration (larger `alpha`) means more
  movies tried per user, so **coverage grows with `alpha`**; regret is lowest at a moderate `alpha` (notebook
  02, exercise 1). Exploration *is* diversity, paid for in regret while the agent learns.
- **text-match** shows a fixed slate per user as well (no learning): low coverage, and its regret is the price
  of trusting the request alone.

In a pure bandit, diversity is only a means (exploration) or a side goal: the user does not value it.

## 3. Exposure: who gets seen?

Coverage counts movies shown at least once; exposure also counts *how often*. Below, for each agent, the
movies are ranked from most to least shown (over all users) and the number of impressions is plotted against
the rank, both axes logarithmic. The legend gives the exposure Gini coefficient.
""",
    ),
    (
        "code",
        r"""
fig, axis = plt.subplots(figsize=(7, 4.5))
for label in ["random", "LinUCB alpha=1.5", "LinUCB alpha=0.3", "text-match", "oracle", "popularity"]:
    exposure = np.bincount(results[label].slates.ravel(), minlength=num_items)
    shown = np.sort(exposure[exposure > 0])[::-1]
    gini = float(metrics.exposure_gini(exposure.astype(np.float32)))
    axis.loglog(np.arange(1, len(shown) + 1), shown, label=f"{label} (Gini {gini:.3f})")
axis.set(xlabel="movie rank (most shown first)", ylabel="impressions (all users)", title="Who gets the impressions?")
axis.legend(frameon=False, fontsize=8)
axis.grid(alpha=0.3, which="both")
plt.show()
""",
    ),
    (
        "markdown",
        r"""
**What to notice.** **popularity** puts every impression on the same 5 movies; **oracle** and **text-match**
on 5 movies per user, so a few dozen in all. **random** spreads impressions thinly over most of the catalog.
**LinUCB** has a *head* (the movies it settles on for each user) and a long *tail* (the movies it tried once or
twice while exploring); more exploration, a longer tail. The Gini coefficients are all high because
`NUM_SEEDS x NUM_STEPS x 5` impressions cannot cover 9,066 movies evenly, but their order tells the story.
Exposure is a property of the whole system, not of one user's slates: a recommender that is perfectly
personalised for each user can still concentrate the catalog's attention on very few items.

## 4. When users change: boredom and drift

So far the user never changed. rlrec's drift/boredom setting (`MovieLens-DriftSlate-v0`) adds two dynamics
(notebook 01, section 5):

- **boredom**: clicking a movie lowers the utility of similar movies for a while;
- **drift**: the user's taste moves a little toward each movie they click.

The registered environment is the same model as the bandit with these knobs switched on, so we get it (and
each dynamic alone) by changing the numbers in `params`: the compiled programs are reused.
""",
    ),
    (
        "code",
        r"""
settings = {
    "no dynamics": params,
    "boredom only": rlrec.make(ENV_ID, max_steps=NUM_STEPS, boredom_weight=2.0, boredom_decay=0.8)[1],
    "drift only": rlrec.make(ENV_ID, max_steps=NUM_STEPS, drift_rate=0.1)[1],
    "drift + boredom": rlrec.make(ENV_ID, max_steps=NUM_STEPS, drift_rate=0.1, boredom_weight=2.0,
                                  boredom_decay=0.8)[1],
}
agents = {"oracle": make_agent("oracle", env), "text-match": make_agent("text-match", env),
          "LinUCB alpha=0.3": make_agent("linucb", env)}
rows = []
for setting, setting_params in settings.items():
    for label, agent in agents.items():
        result = rlrec.run(env, setting_params, agent, num_seeds=NUM_SEEDS, num_steps=NUM_STEPS, seed=SEED)
        summary = summarise(result, num_items)
        rows.append({"setting": setting, "agent": label, "regret": summary["cumulative_regret"][0],
                     "ILD": summary["diversity"][0], "coverage per user": summary["coverage"][0]})
dynamics_table = pd.DataFrame(rows).pivot(index="agent", columns="setting").round(3)
dynamics_table[[(metric, setting) for metric in ["regret", "ILD", "coverage per user"] for setting in settings]]
""",
    ),
    (
        "markdown",
        r"""
**What to notice.**

- **Boredom** makes variety part of accuracy: the oracle's own slates become more diverse and it covers more
  movies per user, because repeating the same five would bore the user. An agent that keeps showing the same
  slate (text-match) loses more than without boredom.
- **Drift** works the other way, and is subtler. The user's taste moves toward what they click, so whatever a
  recommender keeps showing becomes what the user likes: text-match's regret falls far below its value
  without dynamics, and the oracle's slates get *less* diverse as the user's taste narrows. Regret is measured
  against the user *as they are now*, and that user has been shaped by past recommendations. This feedback
  loop (sometimes called a *filter bubble*) is why low regret alone does not prove a recommender serves its
  users well.
- With both (the registered drift/boredom setting) the two effects partly cancel.

## Exercises

**Exercise 1.** Is high intra-list diversity always good? Think of a user who asked for "animated comedies"
and gets a slate with one animated comedy, one war documentary, one horror film, one western and one romance.
What does ILD say about it, and what does the user think?

<details><summary>Answer</summary>

ILD is high (the movies are far apart in embedding space), but the slate is mostly irrelevant to the user:
random slates have the highest ILD of all. Diversity metrics are only meaningful *together with* an accuracy or
regret metric; that is why this notebook always plots them against regret. A useful slate is diverse *within*
what the user might like.
</details>

**Exercise 2.** Write a diversity-aware LinUCB: pick the slate greedily, one movie at a time, scoring each
candidate by its LinUCB score minus `lam` times its highest similarity to the movies already picked (maximal
marginal relevance, Carbonell & Goldstein, 1998). Compare its regret and ILD with LinUCB's with and without dynamics.

<details><summary>Answer</summary>

Agents are small immutable pytrees with pure `init / act / update` functions, so a new one is a subclass that
overrides `act` (learning, `update`, is inherited from LinUCB):

```python
import jax
import jax.numpy as jnp
from flax import struct
from rlrec.agents import LinUCB


class DiverseLinUCB(LinUCB):
    lam: float = 1.0  # weight of the redundancy penalty (a pytree leaf: changing it does not recompile)
    # Re-rank only the best few LinUCB scores. It fixes an array shape, so it must be static, not a leaf.
    candidates: int = struct.field(pytree_node=False, default=50)

    def act(self, key, state, obs, env_params):
        scores = self.scores(state, env_params, obs["request"])  # x^T theta + alpha sqrt(x^T A^-1 x)
        scores = scores + 1e-6 * jax.random.uniform(key, scores.shape)  # random tie-breaking
        top_scores, top_items = jax.lax.top_k(scores, self.candidates)
        embeddings = env_params.item_features[top_items]
        similarity = embeddings @ embeddings.T

        def pick(carry, _):
            chosen_mask, max_similarity = carry
            value = jnp.where(chosen_mask, -jnp.inf, top_scores - self.lam * max_similarity)
            best = jnp.argmax(value)
            return (chosen_mask.at[best].set(True), jnp.maximum(max_similarity, similarity[best])), best

        start = (jnp.zeros(self.candidates, bool), jnp.full(self.candidates, -1.0))
        _, picks = jax.lax.scan(pick, start, None, length=self.slate_size)
        return top_items[picks].astype(jnp.int32)


diverse = DiverseLinUCB(slate_size=env.slate_size, label="diverse LinUCB", lam=1.0)
for name, setting in [("no dynamics", params), ("drift + boredom", settings["drift + boredom"])]:
    result = rlrec.run(env, setting, diverse, num_seeds=NUM_SEEDS, num_steps=NUM_STEPS, seed=SEED)
    print(name, "regret", result.cumulative_regret()[:, -1].mean().round(1),
          "ILD", np.nanmean(result.diversity).round(3))
```

Expect clearly higher ILD than plain LinUCB. Without
dynamics the user gains nothing from variety, so the penalty pushes lower-scoring movies into the slate and
regret rises. With boredom, variety has value and the penalty can roughly pay for itself; try a few values of
`lam`.
</details>
""",
    ),
]
