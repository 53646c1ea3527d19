"""01 simulated users: items as text, the LM embedding space, hidden taste vs stated request, choice, dynamics."""

CELLS = [
    (
        "markdown",
        r"""
# 01 · Simulated users

A simulator is only useful if you know what it simulates. This notebook opens up rlrec's users, piece by
piece, with small worked numbers:

1. **Items as text**: each movie is a sentence, turned into a vector by a language model (LM).
2. **The embedding space**: what the vectors capture, seen in a 2-D projection.
3. **Users**: a hidden taste built from a real person's ratings, and a request they *say* in words.
4. **The choice model**: how a user picks from a slate (or clicks nothing).
5. **Dynamics**: how a user changes after clicking (drift, boredom, satisfaction, leaving).

Everything here runs in NumPy or small jitted JAX functions: a few seconds after the catalog is loaded.
""",
    ),
    (
        "markdown",
        r"""
## Parameters
""",
    ),
    (
        "code",
        r"""
DIM = 32  # dimension of the simulator's space (a PCA of the 384-d LM embeddings)
USER = 7  # which real MovieLens user (prototype, 0..670) to look at closely
GENRES = ["Animation", "Horror", "Documentary", "Romance", "Sci-Fi", "Western"]  # coloured in the map
NUM_SESSIONS = 16  # simulated sessions per policy in the dynamics section
SEED = 0
""",
    ),
    (
        "code",
        r"""
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import rlrec
from rlrec.data import load_catalog
from rlrec.simulators import choice, dynamics
from rlrec.simulators.population import default_population

rlrec.enable_compilation_cache()  # compiled programs kept on disk: a second run skips most compiling

catalog = load_catalog("movielens", dim=DIM)
users = default_population()  # the 671 real MovieLens users as prototypes
print(catalog.summary())
""",
    ),
    (
        "markdown",
        r"""
## 1. Items as text

MovieLens "latest-small" has 9,066 movies and 100,004 ratings by 671 people. rlrec writes each movie as one
sentence (title, year, genres) and encodes it with **all-MiniLM-L6-v2**, a small sentence-embedding model
that runs locally. Each sentence becomes a unit-length vector of 384 numbers; texts with similar meaning get
vectors pointing in similar directions, so the *cosine similarity* (here simply the dot product) measures how
alike two texts are.

The same model encodes any other text, such as a query. `catalog.nearest` returns the movies whose vectors
are closest to the query's:
""",
    ),
    (
        "code",
        r"""
print(catalog.texts[0])
print(catalog.texts[1])
print()
for query in ["a gritty war film", "a funny animated movie for kids"]:
    print(f"nearest to {query!r}:")
    print(catalog.nearest(query, k=5)[["similarity", "text"]].to_string(index=False), "\n")
""",
    ),
    (
        "markdown",
        r"""
Nothing here was trained on MovieLens: the LM only reads the words. That is the point of the design: a new
item with a description has a position in the space from day one (no cold start for items), and so does a
user's request written in words.

## 2. A map of the embedding space

384 dimensions cannot be drawn, so we project onto a plane. A plain PCA keeps the two directions along which
the movie vectors vary most. Those directions are not necessarily about genre: the text also contains the
year, and the LM picks that up. The cell below checks how the first principal components correlate with the
release year and with the genres.
""",
    ),
    (
        "code",
        r"""
vectors = catalog.embeddings.astype(np.float64)  # (9066, 384), unit rows
centred = vectors - vectors.mean(axis=0)
_, singular_values, directions = np.linalg.svd(centred, full_matrices=False)
share = singular_values**2 / np.sum(singular_values**2)
print(f"variance kept by 2 principal components: {share[:2].sum():.1%}; by {DIM}: {share[:DIM].sum():.1%}")

year = catalog.metadata["year"].to_numpy(float)
known = np.isfinite(year)
for k in range(2):
    component = centred @ directions[k]
    genre_corr = [np.corrcoef(component, catalog.genres[:, g])[0, 1] for g in range(len(catalog.genre_names))]
    g = int(np.argmax(np.abs(genre_corr)))
    print(
        f"PC{k + 1}: correlation with year {np.corrcoef(component[known], year[known])[0, 1]:+.2f}, "
        f"strongest genre {catalog.genre_names[g]} {genre_corr[g]:+.2f}"
    )
""",
    ),
    (
        "markdown",
        r"""
To see the genres, we instead pick the plane that best separates them: the two principal directions of the
19 **genre centroids** (the mean vector of the movies of each genre). Every movie is projected onto that
plane; movies with exactly one of the highlighted genres are coloured, the rest are grey, and each genre's
centroid is labelled.
""",
    ),
    (
        "code",
        r"""
centroids = np.stack([vectors[catalog.genres[:, g]].mean(axis=0) for g in range(len(catalog.genre_names))])
_, _, genre_directions = np.linalg.svd(centroids - centroids.mean(axis=0), full_matrices=False)
plane = genre_directions[:2].T  # (384, 2)
items_2d = centred @ plane
centroids_2d = (centroids - vectors.mean(axis=0)) @ plane

chosen = catalog.genres[:, [catalog.genre_names.index(g) for g in GENRES]]
fig, axis = plt.subplots(figsize=(8, 6.5))
axis.scatter(*items_2d.T, s=2, color="lightgrey", label="other movies")
for j, genre in enumerate(GENRES):
    only = chosen[:, j] & (chosen.sum(axis=1) == 1)
    axis.scatter(*items_2d[only].T, s=4, alpha=0.6, label=genre)
for name, (x, y) in zip(catalog.genre_names, centroids_2d):
    axis.plot(x, y, "k+")
    axis.annotate(name, (x, y), fontsize=8, weight="bold", xytext=(2, 2), textcoords="offset points")
axis.set(title="MovieLens movies in LM space, projected on the genre plane", xticks=[], yticks=[])
axis.legend(markerscale=4, fontsize=8, loc="upper right")
plt.show()
""",
    ),
    (
        "markdown",
        r"""
**What to notice.** Related genres sit together: animation, children's, fantasy and adventure on one side;
horror, thriller, mystery and crime on another; romance, comedy, drama and musicals in a third region. Yet the
clouds overlap a lot: a 2-D picture keeps only a sliver of 384 dimensions, and a movie's vector also encodes
its title and year. The simulator works in a 32-dimensional PCA of this space (the variance kept is printed
above), enough to keep most of the structure while staying cheap.

## 3. Users: a hidden taste and a stated request

Each simulated user is built around one of the 671 real MovieLens users (a *prototype*). Their **hidden
taste** is a direction in the same space as the movies:

$$u = \mathrm{normalise}\Big(\sum_j (r_{uj} - \bar r_u)\, e_j\Big)$$

Movies they rated above their own average pull $u$ toward them, movies rated below push it away. Let's
recompute it by hand for one user and compare with rlrec's.
""",
    ),
    (
        "code",
        r"""
ratings = catalog.interactions
mine = ratings[ratings["user_id"] == users.user_ids[USER]]
titles = catalog.metadata["title"].to_numpy()
print(f"user {users.user_ids[USER]} rated {len(mine)} movies, mean {mine['rating'].mean():.2f}")
best = mine.sort_values("rating", ascending=False).head(5)
worst = mine.sort_values("rating").head(3)
print("loved:", [f"{titles[i]} ({r})" for i, r in zip(best["item_index"], best["rating"])])
print("disliked:", [f"{titles[i]} ({r})" for i, r in zip(worst["item_index"], worst["rating"])])

centred_ratings = mine["rating"].to_numpy() - mine["rating"].mean()
taste = centred_ratings @ catalog.embeddings[mine["item_index"].to_numpy()]
taste /= np.linalg.norm(taste)
print("\nsame as rlrec's hidden taste:", np.allclose(taste, users.interests[USER], atol=1e-5))
""",
    ),
    (
        "markdown",
        r"""
An agent never sees $u$. It sees what the user **says**. From the same ratings rlrec writes three sentences
for each prototype (favourite genres, a best-loved title of that genre) and encodes them with the same LM:
""",
    ),
    (
        "code",
        r"""
for sentence in users.request_texts[USER]:
    print(" -", sentence)

taste_32 = catalog.project(users.interests[USER][None])[0]  # into the simulator's 32-d space
request_32 = catalog.project(users.requests[USER])  # (3, 32)
# What the user would click most: high match with the hidden taste, plus a little quality (section 4).
would_click = 5.0 * catalog.features @ taste_32 + 0.3 * catalog.quality
said = catalog.features @ request_32.mean(axis=0)
print("\nthe user's favourites (hidden):", list(titles[np.argsort(-would_click)[:5]]))
print("closest to what they said:     ", list(titles[np.argsort(-said)[:5]]))
""",
    ),
    (
        "markdown",
        r"""
The request points in roughly the right direction but is much coarser than the taste: a couple of genres and a
title cannot say everything a person's ratings say. How informative is it across all 671 users? Below,
each user's request (the mean of their three sentence vectors) is compared with their own hidden taste and
with everyone else's.
""",
    ),
    (
        "code",
        r"""
tastes = catalog.project(users.interests)  # (671, 32)
requests = catalog.project(users.requests.reshape(-1, users.requests.shape[-1])).reshape(len(users), 3, -1)
similarity = requests.mean(axis=1) @ tastes.T  # (671 requests, 671 tastes)
own = np.diag(similarity)
others = similarity[~np.eye(len(users), dtype=bool)]
rank = (similarity >= own[:, None]).sum(axis=1)  # 1 = the own taste is the closest of all 671

fig, axis = plt.subplots(figsize=(7, 3.5))
bins = np.linspace(-0.6, 0.8, 50)
axis.hist(others, bins=bins, density=True, alpha=0.6, label="request vs another user's taste")
axis.hist(own, bins=bins, density=True, alpha=0.6, label="request vs the user's own taste")
axis.set(xlabel="cosine similarity (32-d)", ylabel="density", title="How much does a request reveal?")
axis.legend(frameon=False)
plt.show()
print(f"mean cosine with own taste {own.mean():.3f}, with others' {others.mean():.3f}")
print(f"median rank of the own taste among {len(users)}: {np.median(rank):.0f}")
""",
    ),
    (
        "markdown",
        r"""
**What to notice.** The request is clearly informative (the own-taste histogram sits to the right of the
others), but it is a **noisy, partial view**: the two histograms overlap, and the user's own taste is usually
not the closest match among all users. An agent that trusts the request is helped at the start (the *LM prior*
of notebook 02) but must still learn from clicks.

Simulated users are drawn *around* prototypes: `interest = normalise(u_p + noise z / sqrt(d))` with `noise =
params.interest_noise`, so a population of any size keeps the real spread of tastes, and two users with the
same prototype differ a little.

## 4. The choice model

For a user with taste $u$, the utility of item $i$ shown in slot $s$ is

$$v_i = \beta\,\langle u, e_i\rangle + \gamma\, q_i + w_a\, a_i - \text{boredom}_i + b_s$$

with $q_i$ the item's standardised quality (its average rating), $a_i$ its standardised log-popularity
("appeal", weighted only in the session setting), and $b_s$ a position bias (lower slots are seen less). The
user compares the slate with doing nothing (a no-click logit $v_0$) using a **multinomial logit**:

$$P(\text{click slot } s) = \frac{e^{v_s}}{e^{v_0} + \sum_t e^{v_t}}$$

A worked example with three items, by hand and with rlrec's function:
""",
    ),
    (
        "code",
        r"""
utilities = np.array([2.0, 1.0, 0.5])  # beta <u, e> + gamma q + ... for three items
position_bias = np.array([0.0, -0.3, -0.6])
no_click = 3.0
logits = utilities + position_bias
by_hand = np.exp(logits) / (np.exp(no_click) + np.exp(logits).sum())
print("MNL by hand:   ", by_hand.round(4), "P(click) =", by_hand.sum().round(4))
print("MNL in rlrec:  ", np.asarray(choice.click_probabilities(jnp.asarray(logits), no_click)).round(4))

# The cascade alternative: scan top-down, click slot s with prob. sigmoid(v_s - v_0) if nothing was clicked yet.
examine = 1 / (1 + np.exp(-(logits - no_click)))
cascade = examine * np.cumprod(np.concatenate([[1.0], 1 - examine[:-1]]))
print("cascade by hand:", cascade.round(4), "P(click) =", cascade.sum().round(4))
print("cascade, rlrec: ", np.asarray(choice.click_probabilities(jnp.asarray(logits), no_click, "cascade")).round(4))
""",
    ),
    (
        "markdown",
        r"""
Because the click probability grows with every slot's utility, the **best slate** is simply the $k$ items
with the highest utility, best first. That is why rlrec's oracle and regret are exact. Now the same thing
for a real simulated user and a real slate: the utility of each shown item, split into its parts, and the
slate's click probability computed from them matches what the environment reports.
""",
    ),
    (
        "code",
        r"""
env, params = rlrec.make("MovieLens-BanditSlate-v0", dim=DIM)
reset, step = jax.jit(env.reset), jax.jit(env.step)
obs, state = reset(jax.random.key(SEED), params)
utility, match, boredom = env.item_utilities(state, params)
best = np.argsort(-np.asarray(utility))[: env.slate_size]
shown = np.asarray(env.action_space(params).sample(jax.random.key(SEED + 1)))

def explain(items):
    return pd.DataFrame(
        {
            "title": titles[items],
            "beta*match": float(params.affinity_weight) * np.asarray(match)[items],
            "gamma*quality": float(params.quality_weight) * np.asarray(params.item_quality)[items],
            "slot bias": np.asarray(params.position_bias),
            "utility+bias": np.asarray(utility)[items] + np.asarray(params.position_bias),
        }
    ).round(2)

print(f"no-click logit v0 = {float(params.no_click_logit)}\n\nthe best slate:")
print(explain(best).to_string(index=False))
print("\na random slate:")
print(explain(shown).to_string(index=False))

_, _, _, _, _, info = step(jax.random.key(SEED + 2), state, jnp.asarray(shown), params)
logits = jnp.asarray(np.asarray(utility)[shown] + np.asarray(params.position_bias))
print(f"\nP(click) of the random slate: by hand "
      f"{float(choice.click_probabilities(logits, params.no_click_logit).sum()):.4f}, "
      f"env {float(info['expected_reward']):.4f}; best slate (oracle) {float(info['oracle_expected_reward']):.4f}")
""",
    ),
    (
        "markdown",
        r"""
The gap between the two probabilities is this step's **regret**. With $\beta = 5$ the match term dominates:
a movie near the user's taste has a much higher utility than a random one, and a high no-click logit means
even a good slate is often ignored.

## 5. Dynamics: users change as they consume

In the `Drift` and `Session` settings a click changes the user. With $e_j$ the clicked item:

- **drift**: $u \leftarrow \mathrm{normalise}(u + \eta\,(e_j - u))$, tastes move toward what is consumed;
- **boredom**: a memory $m \leftarrow \text{decay}\cdot m + e_j$ lowers the utility of similar items by
  $w_b\,\mathrm{relu}(\langle m, e_i\rangle)$, so more of the same gets less attractive;
- **satisfaction** of the clicked item: $\sigma(\text{scale}\,(\langle u, e_j\rangle - \text{threshold}) +
  w_q\, q_j - \text{boredom}_j)$. Popularity does not enter: a popular item can get the click and still
  disappoint;
- **session budget** (Session setting): each step costs `step_cost`; a click gives back `budget_refund x
  satisfaction`; the user leaves when the budget runs out.

Worked numbers with the Session setting's parameters:
""",
    ),
    (
        "code",
        r"""
session_env, session = rlrec.make("MovieLens-Session-v0", dim=DIM)
knobs = ["affinity_weight", "appeal_weight", "no_click_logit", "drift_rate", "boredom_weight", "boredom_decay",
         "satisfaction_scale", "satisfaction_threshold", "initial_budget", "step_cost", "budget_refund", "max_steps"]
print({name: round(float(getattr(session, name)), 3) for name in knobs})

satisfied = lambda match, quality=0.0, bored=0.0: float(dynamics.satisfaction(
    match, quality, bored, session.satisfaction_scale, session.satisfaction_threshold,
    session.satisfaction_quality_weight))
for m in (0.2, 0.5, 0.7):
    print(f"satisfaction of a click with match {m}: {satisfied(m):.3f}")

memory = jnp.zeros(DIM)
item = jnp.asarray(catalog.features[0])  # Toy Story
for time_step in range(3):
    memory = dynamics.update_memory(memory, item, session.boredom_decay, True)
    penalty = float(dynamics.boredom_penalty(memory, item[None], session.boredom_weight)[0])
    print(f"after {time_step + 1} click(s) on Toy Story its utility drops by {penalty:.2f}")

budget = float(session.initial_budget)
for sat in (0.9, 0.1, 0.1):
    budget = float(dynamics.update_budget(budget, sat, True, session.step_cost, session.budget_refund))
    print(f"click with satisfaction {sat}: budget -> {budget:.1f}")
""",
    ),
    (
        "markdown",
        r"""
### Myopic is not enough

Budget, boredom and satisfaction make recommendation a *sequential* problem. Compare two policies that both
cheat and read the user's hidden state:

- **myopic**: the item with the highest click probability right now (rlrec's oracle);
- **click + satisfaction**: the item that is both likely to be clicked and likely to satisfy
  (satisfaction logit + 0.2 x utility; the same heuristic as rlrec's session test).

Each plays `NUM_SESSIONS` sessions of fresh users in `MovieLens-Session-v0` (one movie per step), step by step
in a plain Python loop over jitted functions.
""",
    ),
    (
        "code",
        r"""
session_reset, session_step = jax.jit(session_env.reset), jax.jit(session_env.step)

@jax.jit
def myopic(state):
    return session_env.oracle_action(state, session)

@jax.jit
def click_and_satisfaction(state):
    utility, match, boredom = session_env.item_utilities(state, session)
    satisfaction_logit = (session.satisfaction_scale * (match - session.satisfaction_threshold)
                          + session.satisfaction_quality_weight * session.item_quality - boredom)
    return jnp.argmax(satisfaction_logit + 0.2 * utility)

def play(policy, key):
    obs, state = session_reset(key, session)
    trace = []
    for _ in range(int(session.max_steps)):
        key, step_key = jax.random.split(key)
        item = policy(state)
        obs, state, reward, terminated, truncated, info = session_step(step_key, state, item, session)
        trace.append((float(reward), float(info["satisfaction"]), float(info["budget"]),
                      float(session.item_appeal[item])))
        if terminated or truncated:  # auto-reset: the state now belongs to a new user
            break
    return np.array(trace)  # (steps, [click, satisfaction, budget, appeal])

policies = {"myopic": myopic, "click + satisfaction": click_and_satisfaction}
traces = {name: [play(policy, jax.random.key(SEED * 1000 + i)) for i in range(NUM_SESSIONS)]
          for name, policy in policies.items()}
for name, runs in traces.items():
    steps = np.concatenate(runs)
    clicked = steps[:, 0] > 0
    print(f"{name:>22}: {np.mean([r[:, 0].sum() for r in runs]):5.2f} clicks per session, "
          f"{np.mean([len(r) for r in runs]):5.1f} steps, click rate {clicked.mean():.2f}, "
          f"mean satisfaction of a click {steps[clicked, 1].mean():.2f}, mean appeal shown {steps[:, 3].mean():+.2f}")
""",
    ),
    (
        "code",
        r"""
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharex=True, sharey=True)
for axis, (name, runs) in zip(axes, traces.items()):
    for run in runs:
        axis.plot(np.arange(1, len(run) + 1), run[:, 2], alpha=0.5)
    axis.axhline(0, color="black", linewidth=0.8)
    axis.set(title=f"{name}: budget of each session", xlabel="step")
axes[0].set_ylabel("budget (the user leaves at 0)")
plt.show()
""",
    ),
    (
        "markdown",
        r"""
**What to notice.** Both policies get a click almost every step. The myopic one favours tempting, popular
items (high appeal) that often disappoint, so the budget drains and users leave after a few steps. The
second gives up a little click probability for items that really match the user: satisfied users refill
their budget, stay longer, and the session collects more clicks *in total*.

Neither policy is available to a real recommender: both read the hidden taste. Notebook 02 shows how bandits
learn it from clicks; notebook 03 shows how reinforcement learning can learn to look ahead like the second
policy, from observations alone.
""",
    ),
]
