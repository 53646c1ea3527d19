"""What questions are worth: the extra table and plot of a suite run on conversational envs.

Cells of one suite meet the same simulated users (one root seed), so agents are compared seed by seed (paired):

- **saved vs never asking**: never-asking LinUCB's cumulative regret minus the agent's (what asking, and
  listening to critiques, buy over a recommender that only shows);
- **per question**: the saving over the agent's **silent twin** (the same learner with the same settings asking
  nothing, e.g. ``ask-linucb`` at ``question_scale=0``: it still hears critiques) divided by the questions asked,
  per seed, in expected clicks: the questions' own worth. ``-`` where the suite has no silent twin;
- **in recommendations**: that value divided by the twin's mean regret per step: how many recommendation rounds'
  worth of regret one answer saves;
- in the session setting, where questions cost patience, the **episode return** (clicks per user before they
  leave) shows when asking stops paying.

Means with Student-t intervals over seeds, as the suite's other tables.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rlrec.bench import report

BASELINE = "linucb"  # the never-asking learner every asking agent is measured against


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    return report.mean_intervals({"value": np.asarray(values, np.float64)}, confidence)["value"]


QUESTION_SETTINGS = ("question_schedule", "question_scale", "question_selection")  # moot when nothing is asked


def _learner(suite, agent: str) -> tuple[str, tuple]:
    """An agent's class and every hyperparameter but those of asking: equal for an agent and its silent twin."""
    from rlrec.agents.registry import AGENTS

    base, settings = suite.agent_settings(agent)
    cls, defaults = AGENTS[base]
    full = {**defaults, **settings}
    return cls.__name__, tuple(sorted((k, repr(v)) for k, v in full.items() if k not in QUESTION_SETTINGS))


def silent_twin(result, env: str, agent: str) -> str | None:
    """The agent of the suite that is ``agent``'s learner asking nothing on ``env`` (no question in any seed)."""
    cells = {c.agent: c for c in result.cells if c.env == env}
    learner = _learner(result.suite, agent)
    for name, cell in cells.items():
        silent = not np.any(cell.metrics.get("questions", [1.0]))
        if name != agent and silent and _learner(result.suite, name) == learner:
            return name
    return None


def question_values(result, baseline: str = BASELINE, confidence: float = 0.95) -> dict[tuple[str, str], dict]:
    """``{(env, agent): {measure: (mean, half_width)}}`` for every cell with questions on an env where
    ``baseline`` ran too (measures: ``questions``, ``regret_saved`` over ``baseline``, ``silent_twin`` (a name or
    None), ``saved_per_question`` and ``recommendations_per_answer`` over the silent twin, ``episode_return``)."""
    cells = {(cell.env, cell.agent): cell for cell in result.cells}
    values = {}
    for (env, agent), cell in cells.items():
        base = cells.get((env, baseline))
        if "questions" not in cell.metrics or base is None:
            continue
        questions = cell.metrics["questions"]
        regret = cell.metrics["cumulative_regret"]
        twin = silent_twin(result, env, agent) if np.any(questions) else None
        per_question = recommendations = (np.nan, np.nan)
        asked = questions > 0
        if twin is not None and asked.any():
            twin_regret = cells[(env, twin)].metrics["cumulative_regret"]
            value = (twin_regret - regret)[asked] / questions[asked]
            per_question = _interval(value, confidence)
            per_step = np.mean(twin_regret) / result.suite.steps
            if per_step > 0:
                recommendations = _interval(value / per_step, confidence)
        values[(env, agent)] = {
            "questions": _interval(questions, confidence),
            "regret_saved": _interval(base.metrics["cumulative_regret"] - regret, confidence),
            "silent_twin": twin,
            "saved_per_question": per_question,
            "recommendations_per_answer": recommendations,
            "episode_return": _interval(cell.metrics["episode_return"], confidence),
        }
    return values


def questions_markdown(result, baseline: str = BASELINE, confidence: float = 0.95) -> str:
    """The section of ``summary.md`` on what questions are worth (empty when no cell asked anything)."""
    values = question_values(result, baseline, confidence)
    if not values:
        return ""
    lines = [
        "## What a question is worth",
        "",
        f"Paired per seed (every cell meets the same users). Saved vs never asking: `{baseline}`'s cumulative "
        "regret minus the agent's (questions and critiques together). Per question: the saving over the agent's "
        "silent twin (the same learner asking nothing; it still hears critiques) / questions asked, in expected "
        "clicks; in recommendations: that / the twin's mean regret per step, i.e. how many recommendation rounds' "
        f"worth of regret one answer saves. Mean ± half-width of the {int(confidence * 100)}% Student-t interval "
        "over seeds.",
    ]
    for env in result.suite.envs:
        rows = [(agent, values[(env, agent)]) for agent in result.suite.agents if (env, agent) in values]
        if not rows:
            continue
        lines += ["", f"### {env}", "", "| agent | questions | saved vs never asking | silent twin | per question | "
                  "in recommendations | episode return |", "| --- | ---: | ---: | --- | ---: | ---: | ---: |"]
        for agent, value in rows:
            cells = [report.format_value(*value[m], digits=d) for m, d in (
                ("questions", 1), ("regret_saved", 2), ("saved_per_question", 3), ("recommendations_per_answer", 2),
                ("episode_return", 2))]
            cells.insert(2, f"`{value['silent_twin']}`" if value["silent_twin"] else "-")
            lines.append(f"| {agent} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_regret_vs_questions(result, path: str | Path, confidence: float = 0.95) -> Path:
    """Per env, each agent's questions asked against its cumulative regret (bandit settings) or episode return
    (session settings, where questions cost patience), with CI error bars; configurations of one registered agent
    (suite variants) are joined by a line in order of questions asked."""
    from rlrec.envs.specs import REGISTRY

    suite = result.suite
    summary = result.summary(confidence)
    colours = report.agent_colours(suite.agents)
    envs = [env for env in suite.envs if any("questions" in summary.get((env, a), {}) for a in suite.agents)]
    figure, axes = report.panel_grid(max(len(envs), 1), width=4.8)
    for axis, env in zip(axes, envs):
        session = REGISTRY[env].setting == "session"
        y_name = "episode_return" if session else "cumulative_regret"
        points = {a: summary[(env, a)] for a in suite.agents if "questions" in summary.get((env, a), {})}
        families: dict[str, list[tuple[float, float]]] = {}
        for agent, values in points.items():
            (x, x_half), (y, y_half) = values["questions"], values[y_name]
            if not (np.isfinite(x) and np.isfinite(y)):
                continue
            axis.errorbar(x, y, xerr=np.nan_to_num(x_half), yerr=np.nan_to_num(y_half), fmt="o", color=colours[agent],
                          label=agent, capsize=2, markersize=5)
            families.setdefault(suite.agent_settings(agent)[0], []).append((x, y))
        for family in families.values():
            if len(family) > 1:
                xs, ys = zip(*sorted(family))
                axis.plot(xs, ys, color="0.6", linewidth=1, zorder=0)
        axis.set_xlabel("questions asked per seed")
        axis.set_ylabel("episode return (clicks per user)" if session else "final cumulative regret")
        axis.set_title(env, fontsize=10)
        axis.grid(alpha=0.3)
    return report.legend_below(figure, axes[: len(envs)], 4,
                                f"suite {suite.name}: what questions buy (mean ± {int(confidence * 100)}% CI)", path)
