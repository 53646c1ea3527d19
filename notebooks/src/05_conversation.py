"""05 conversation: asking about key-terms and hearing critiques; ConUCB; what one answer is worth; when asking
stops paying."""

CELLS = [
    (
        "markdown",
        r"""
# 05 · Asking instead of showing

So far a recommender could only learn by *showing* items and watching clicks. A person would also *ask*:
"Do you like war films?". One answer tells you something about every war film at once, which is why
conversational recommenders explore far more cheaply than ones that only show.

In rlrec's conversational environments each step the recommender shows a slate **and may ask one question**
about a **key-term**: a short text such as "war films", "films from the 1980s" or "films like The French
Connection". The simulated user answers from the same hidden taste $u$ that drives their clicks:

$$P(\text{yes}) = \sigma(\beta\,\langle u, k_j\rangle + b)$$

where $k_j$ is the key-term's embedding by the same language model that embeds the movies. When a slate gets
no click, the user may also say a **critique** ("something funnier", "more recent"): the one whose embedding
best points from what was shown toward their taste, $\arg\max_c \langle c, u - \bar e_{\text{shown}}\rangle$.
Regret is still exact and counted on the slates only: asking changes nothing about what the user clicks.

The questions of this lesson: how much is one answer worth, which questions to ask, and when asking stops
paying because users lose patience.
""",
    ),
    (
        "markdown",
        r"""
## Parameters

`NUM_STEPS` steps per user and `NUM_SEEDS` users per agent. Most of the run time is compiling each agent once
(kept on disk for the next run); `RATES` are the shares of steps at which the question-rate sweeps ask.
""",
    ),
    (
        "code",
        r"""
ENV_ID = "MovieLens-ConversationalSlate-v0"
SESSION_ID = "MovieLens-ConversationalSessionSlate-v0"
NUM_SEEDS = 8  # simulated users (each with its own learner)
NUM_STEPS = 100  # steps per user
SEED = 0
RATES = (0.0, 0.05, 0.1, 0.25, 0.5, 1.0)  # share of steps with a question, for the sweeps
""",
    ),
    (
        "code",
        r"""
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import rlrec
from rlrec.agents import make_agent
from rlrec.envs import conversation
from rlrec.metrics import mean_confidence_interval

rlrec.enable_compilation_cache()  # compiled programs kept on disk: a second run skips most compiling

env, params = rlrec.make(ENV_ID, max_steps=NUM_STEPS)
key_terms = env.key_terms  # the bank rlrec.make embedded: texts, kinds, related movies
print(f"{env.num_key_terms(params)} key-terms, {env.num_critiques(params)} critiques, {env.num_items(params):,} movies")
for kind in ("genre", "genre pair", "decade", "like title"):
    examples = [text for text, k in zip(key_terms.texts, key_terms.kinds) if k == kind]
    print(f"  {kind:>10} ({len(examples):3d}): {', '.join(examples[:4])}, ...")
""",
    ),
    (
        "markdown",
        r"""
## 1. Ask a simulated user

Below, one simulated user is asked about five key-terms. `P(yes)` is computed from their hidden taste (only
the simulator sees it); the answer is a draw from it. Each key-term also has its **related items** (genre or
decade members, or the movies nearest to "films like ..."), which ConUCB uses.
""",
    ),
    (
        "code",
        r"""
_, user = env.reset(jax.random.key(SEED), params)
step = jax.jit(env.step)
for text in ("war films", "comedies", "animated films", "films from the 1950s", "science fiction films"):
    question = key_terms.texts.index(text)
    p_yes = float(conversation.answer_probability(user.interest, jnp.int32(question), params))
    action = {"slate": env.oracle_action(user, params), "question": jnp.int32(question)}
    obs, _, _, _, _, info = step(jax.random.key(question), user, action, params)
    said = {1.0: "yes", -1.0: "no", 0.0: "(no answer)"}[float(info["answer"])]
    print(f"Do you like {text:<22}? P(yes) = {p_yes:.2f}  ->  {said:>4}   ({len(key_terms.related[question])} related movies)")
""",
    ),
    (
        "markdown",
        r"""
## 2. Four recommenders

| agent | questions | how it uses the answers |
| --- | --- | --- |
| `linucb` | never asks | (the baseline of notebook 02) |
| `ask-random` | a random key-term, on a schedule | an answer is a linear observation of $\theta$ along the key-term's embedding: $\theta^\top k_j \approx \pm v$ |
| `ask-linucb` | the most *informative* key-term | the same observations; the key-term whose answer most shrinks the catalog's total uncertainty |
| `conucb` | ConUCB's choice (Zhang et al., 2020) | a second, key-term-level model $\tilde\theta$ fitted to the answers over each key-term's related movies; the arm-level model is pulled toward it |

The asking agents follow ConUCB's schedule: by step $t$ they have asked $b(t) = 5\lfloor\ln t\rfloor$
questions, at most one per step (20 questions over 100 steps). Critiques (after a slate with no click) are
heard too: the LM-native agents treat one as an observation along the critique's embedding.
""",
    ),
    (
        "code",
        r"""
results = {}


def run(label, agent, env=env, params=params, steps=NUM_STEPS):
    # Runs one agent on NUM_SEEDS users and stores the result under `label`.
    started = time.perf_counter()
    results[label] = rlrec.run(env, params, agent, num_seeds=NUM_SEEDS, num_steps=steps, seed=SEED)
    result = results[label]
    print(f"{label:>22}: cumulative regret {result.cumulative_regret()[:, -1].mean():6.2f}, "
          f"{result.questions.sum(axis=1).mean():5.1f} questions per user   ({time.perf_counter() - started:.1f} s)")


for name in ("linucb", "ask-random", "ask-linucb", "conucb"):
    run(name, make_agent(name, env))

fig, axis = plt.subplots(figsize=(7, 4.2))
steps = np.arange(1, NUM_STEPS + 1)
for name in ("linucb", "ask-random", "ask-linucb", "conucb"):
    mean, half = mean_confidence_interval(results[name].cumulative_regret())
    (line,) = axis.plot(steps, mean, label=name)
    axis.fill_between(steps, mean - half, mean + half, color=line.get_color(), alpha=0.15, linewidth=0)
axis.set(xlabel="step", ylabel="cumulative regret (expected clicks)", title="Asking vs only showing")
axis.grid(alpha=0.3)
axis.legend(frameon=False)
plt.show()
""",
    ),
    (
        "markdown",
        r"""
**What to notice.** All four meet the same users (the same seed), so the curves are paired. The asking agents
pull away from never-asking LinUCB within the first few dozen steps: each answer moves the model along a
direction shared by hundreds of movies, where a skipped slate says something about five. Which key-term is
asked matters too: compare `ask-random` with `ask-linucb`.

## 3. What is one answer worth?

The same LM-native agent at several question rates (a share of steps, `question_schedule="linear"`): changing
a hyperparameter's value reuses the compiled program, so the sweep compiles once. The value of an answer is
measured against never-asking LinUCB on the same users: regret saved per question, and that saving in units
of LinUCB's regret per step, i.e. *how many recommendation rounds one answer is worth*.
""",
    ),
    (
        "code",
        r"""
for rate in RATES:
    run(f"ask {rate:.0%} of steps", make_agent("ask-linucb", env, question_schedule="linear", question_scale=rate))

baseline = results["linucb"].cumulative_regret()[:, -1]
per_step = baseline.mean() / NUM_STEPS
questions, regret = [], []
print(f"{'rate':>6} {'questions':>10} {'regret saved':>14} {'per question':>13} {'in recommendations':>19}")
for rate in RATES:
    result = results[f"ask {rate:.0%} of steps"]
    asked = result.questions.sum(axis=1)
    saved = baseline - result.cumulative_regret()[:, -1]  # paired: the same users
    questions.append(mean_confidence_interval(asked))
    regret.append(mean_confidence_interval(result.cumulative_regret()[:, -1]))
    if asked.mean() > 0:
        value = saved.mean() / asked.mean()
        print(f"{rate:>6.0%} {asked.mean():>10.1f} {saved.mean():>8.2f} ± {mean_confidence_interval(saved)[1]:<4.2f} "
              f"{value:>13.3f} {value / per_step:>19.2f}")

fig, axis = plt.subplots(figsize=(6.5, 4.2))
(x, _), (y, y_half) = np.array(questions).T, np.array(regret).T
axis.errorbar(x, y, yerr=y_half, fmt="o-", capsize=3)
axis.axhline(baseline.mean(), color="0.5", linestyle="--", label="never asks (linucb)")
axis.set(xlabel="questions asked per user", ylabel=f"cumulative regret after {NUM_STEPS} steps",
         title="Regret vs questions asked")
axis.grid(alpha=0.3)
axis.legend(frameon=False)
plt.show()
""",
    ),
    (
        "markdown",
        r"""
**What to notice.** The first questions are worth the most: the regret curve falls steeply for the first few
questions, then flattens, because once the model knows which genres and eras a user likes, a further
question about a key-term adds little. Read the last column as an exchange rate: early in a conversation one
answer saves several recommendation rounds' worth of regret.

## 4. When asking stops paying

In the session setting users have limited patience: every step costs budget, satisfying clicks give some back,
and **each question costs half a step** (`question_cost=0.5`). Ask too much and users leave before the
recommendations get good. The measure here is the **episode return**: clicks per user before they leave.
""",
    ),
    (
        "code",
        r"""
session_env, session_params = rlrec.make(SESSION_ID)
returns = []
for rate in RATES:
    agent = make_agent("ask-linucb", session_env, question_schedule="linear", question_scale=rate)
    run(f"session, ask {rate:.0%}", agent, env=session_env, params=session_params)
    result = results[f"session, ask {rate:.0%}"]
    per_seed = [rlrec.metrics.episode_returns(r, d).mean() for r, d in zip(result.reward, result.done)]
    returns.append(mean_confidence_interval(np.array(per_seed)))

fig, axis = plt.subplots(figsize=(6.5, 4.2))
mean, half = np.array(returns).T
axis.errorbar([f"{rate:.0%}" for rate in RATES], mean, yerr=half, fmt="o-", capsize=3)
axis.set(xlabel="share of steps with a question", ylabel="clicks per user before leaving",
         title="Session setting: questions cost patience")
axis.grid(alpha=0.3)
plt.show()
""",
    ),
    (
        "markdown",
        r"""
**What to notice.** A few questions raise the clicks a user gives before leaving: better slates satisfy, and
satisfying clicks refill patience. Past some rate the cost of the questions themselves wins and users leave
sooner, with fewer clicks. Where that point lies depends on `question_cost` and on how informative answers are
(`answer_beta`, `answer_noise`): try changing them in `rlrec.make(SESSION_ID, question_cost=..., answer_noise=...)`.

## Exercises

1. **Noisy users.** Make half of all answers coin flips (`answer_noise=0.5`) and rerun section 3. How much is an
   answer worth now? Does ConUCB or the LM-native agent suffer more?
2. **Your own key-terms.** `rlrec.make(ENV_ID, key_terms=["films with dragons", "courtroom dramas", ...])`
   embeds your texts with the LM (related movies: the nearest ones). Which of your key-terms does `ask-linucb`
   choose first, and why?
3. **Critiques only.** Set `critique_weight=0` on `ask-linucb` (answers only), then ask nothing
   (`question_scale=0`) but keep critiques. How much do critiques alone save?
""",
    ),
]
