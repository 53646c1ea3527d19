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
(kept on disk for the next run); the runs themselves take seconds. `RATES` are the shares of steps at which the
question-rate sweep asks.
""",
    ),
    (
        "code",
        r"""
ENV_ID = "MovieLens-ConversationalSlate-v0"
SESSION_ID = "MovieLens-ConversationalSessionSlate-v0"
NUM_SEEDS = 128  # simulated users (each with its own learner): many, because an answer's worth is small and noisy
NUM_STEPS = 50  # steps per user: questions matter most early, while the learner knows little
SEED = 0
RATES = (0.0, 0.1, 0.2, 0.5, 1.0)  # share of steps with a question, for the sweep
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
    related = len(key_terms.related[question])
    print(f"Do you like {text:<22}? P(yes) = {p_yes:.2f}  ->  {said:>4}   ({related} related movies)")
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
questions, at most one per step (15 questions over 50 steps). Critiques (after a slate with no click) are
heard too: the LM-native agents treat one as an observation along the critique's embedding; ConUCB ignores them.
""",  # noqa: E501 - a markdown table row cannot wrap
    ),
    (
        "code",
        r"""
results = {}


def run(label, agent, env=env, params=params, quiet=False):
    # Runs one agent on NUM_SEEDS users and stores the result under `label`.
    started = time.perf_counter()
    results[label] = rlrec.run(env, params, agent, num_seeds=NUM_SEEDS, num_steps=NUM_STEPS, seed=SEED)
    result = results[label]
    if not quiet:
        print(f"{label:>22}: cumulative regret {result.cumulative_regret()[:, -1].mean():6.2f}, "
              f"{result.questions.sum(axis=1).mean():5.1f} questions per user   "
              f"({time.perf_counter() - started:.1f} s)")


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
**What to notice.** All four meet the same users (the same seed), so the curves are paired. The LM-native
agents pull away from never-asking LinUCB within the first few dozen steps. ConUCB gains less: its key-term
model is fitted to each key-term's *related movies* (the mean of their features), while the user answers from
the key-term's own *text* embedding, and it does not listen to critiques. But how much of the LM-native agents'
lead comes from the questions, and how much from the critiques they also hear?

## 3. What is one answer worth?

`ask-linucb` hears critiques as well as answers, so its lead over LinUCB mixes the two. To price a question
alone, compare it with its **silent twin**: the same agent asking nothing (`question_scale=0`), which still hears
critiques. Below, the agent at several question rates (a share of steps, `question_schedule="linear"`; changing a
hyperparameter's value reuses the compiled program, so the sweep compiles once), then the log schedule of
section 2 hearing answers but no critiques (`critique_weight=0`). The value of an answer is the
regret it saves over the twin, per question, and that saving in units of the twin's regret per step: *how many
recommendation rounds one answer is worth*.
""",
    ),
    (
        "code",
        r"""
for rate in RATES:
    run(f"ask {rate:.0%} of steps", make_agent("ask-linucb", env, question_schedule="linear", question_scale=rate))

never = results["linucb"].cumulative_regret()[:, -1]
twin = results["ask 0% of steps"].cumulative_regret()[:, -1]  # critiques only
print(f"critiques alone save {(never - twin).mean():.2f} ± {mean_confidence_interval(never - twin)[1]:.2f} "
      f"of LinUCB's {never.mean():.2f}")
per_step = twin.mean() / NUM_STEPS
questions, regret = [], []
print(f"{'rate':>6} {'questions':>10} {'saved over the twin':>20} {'per question':>13} {'in recommendations':>19}")
for rate in RATES:
    result = results[f"ask {rate:.0%} of steps"]
    asked = result.questions.sum(axis=1)
    saved = twin - result.cumulative_regret()[:, -1]  # paired: the same users
    questions.append(mean_confidence_interval(asked))
    regret.append(mean_confidence_interval(result.cumulative_regret()[:, -1]))
    if asked.mean() > 0:
        value = saved.mean() / asked.mean()
        print(f"{rate:>6.0%} {asked.mean():>10.1f} {saved.mean():>13.2f} ± {mean_confidence_interval(saved)[1]:<4.2f} "
              f"{value:>13.3f} {value / per_step:>19.2f}")

fig, axis = plt.subplots(figsize=(6.5, 4.2))
(x, _), (y, y_half) = np.array(questions).T, np.array(regret).T
axis.errorbar(x, y, yerr=y_half, fmt="o-", capsize=3, label="ask-linucb at each rate")
axis.axhline(never.mean(), color="0.5", linestyle="--", label="never asks, no critiques (linucb)")
run("answers only", make_agent("ask-linucb", env, critique_weight=0.0), quiet=True)  # log schedule, no critiques
answers_only = never - results["answers only"].cumulative_regret()[:, -1]
on_top = twin - results["ask-linucb"].cumulative_regret()[:, -1]
print(f"15 answers early (log schedule): alone save {answers_only.mean():.2f} ± "
      f"{mean_confidence_interval(answers_only)[1]:.2f}, on top of critiques {on_top.mean():.2f} ± "
      f"{mean_confidence_interval(on_top)[1]:.2f}")
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
**What to notice.** In this simulator critiques are worth more than questions: a critique comes after every
slate without a click, which early on is most slates, and it points from what was shown toward the user's taste,
which is exactly the direction the learner lacks. Questions help on top of critiques, but one answer is worth a
fraction of a recommendation round: it gives one bit, the sign of $\langle u, k_j\rangle$ against a threshold,
about one direction of taste. **When** you ask matters more than how often: the log schedule's 15 questions,
most of them in the first ten steps, save more than 50 questions spread evenly, because an answer is worth most
while the learner knows least. Where the exchange rate lies is a
property of the users you simulate: make answers more informative (`answer_beta`) or critiques rarer
(`critique_rate`) and measure again.

## 4. When asking stops paying

In the session setting users have limited patience: every step costs budget, satisfying clicks give some back,
and **each question costs `question_cost`** (a tenth of a step by default). Ask too much and users leave
before the recommendations get good. The measure here is the **episode return**: clicks per user before they
leave. Below, a recommender that asks at every step against one that never asks, for several question costs
(`question_cost` is a leaf of `params`: one compiled program serves every cost).
""",
    ),
    (
        "code",
        r"""
COSTS = (0.0, 0.025, 0.05, 0.1, 0.25)


def clicks_per_user(result):
    return np.array([rlrec.metrics.episode_returns(r, d).mean() for r, d in zip(result.reward, result.done)])


session_env, session_params = rlrec.make(SESSION_ID)
lines = {"never asks": [], "asks every step": []}
for cost in COSTS:
    costed = session_params.replace(question_cost=jnp.float32(cost))
    for label, scale in (("never asks", 0.0), ("asks every step", 1.0)):
        agent = make_agent("ask-linucb", session_env, question_schedule="linear", question_scale=scale)
        run(f"session, {label}, cost {cost}", agent, env=session_env, params=costed, quiet=True)
        lines[label].append(mean_confidence_interval(clicks_per_user(results[f"session, {label}, cost {cost}"])))
    print(f"question_cost {cost:<5}: clicks per user {lines['never asks'][-1][0]:.2f} never asking, "
          f"{lines['asks every step'][-1][0]:.2f} asking every step")

fig, axis = plt.subplots(figsize=(6.5, 4.2))
for label, points in lines.items():
    mean, half = np.array(points).T
    axis.errorbar(COSTS, mean, yerr=half, fmt="o-", capsize=3, label=label)
axis.set(xlabel="question_cost (budget per question; a step costs 1)", ylabel="clicks per user before leaving",
         title="Session setting: when do questions pay?")
axis.grid(alpha=0.3)
axis.legend(frameon=False)
plt.show()
""",
    ),
    (
        "markdown",
        r"""
**What to notice.** Free questions lengthen sessions a little: better slates satisfy more, and satisfying
clicks refill patience. But in this setting LinUCB already gets a click almost every step (popular items are
clickbait, see notebook 03), so answers can only improve *satisfaction*, and the gain is small: a few hundredths
of a step's patience per question cancel it. Past that cost every question shortens the session. Try a more
informative user (`answer_beta=20`) or a pickier one (`satisfaction_threshold=0.7`) and see the break-even move.

## Exercises

1. **Informative users.** Make answers follow taste more sharply (`answer_beta=30`) or be coin flips half the
   time (`answer_noise=0.5`) and rerun section 3. How does an answer's worth change?
2. **Your own key-terms.** `rlrec.make(ENV_ID, key_terms=["films with dragons", "courtroom dramas", ...])`
   embeds your texts with the LM (related movies: the nearest ones). Which of your key-terms does `ask-linucb`
   choose first, and why?
3. **ConUCB's twin.** Run `conucb` with `question_schedule="never"`: how much of ConUCB's lead over LinUCB is its
   questions, and how much its other settings?
""",
    ),
]
