"""The agents' names, without JAX: what ``rlrec run --help`` and ``rlrec train --help`` list."""

AGENT_NAMES = (
    "random",
    "popularity",
    "text-match",
    "epsilon-greedy",
    "ucb1",
    "linucb",
    "lints",
    "lm-linucb",
    "lm-lints",
    "oracle",
    "conucb",
    "ask-linucb",
    "ask-lints",
    "ask-lm-linucb",
    "ask-random",
    "dqn",
    "slateq",
    "ppo",
    "reinforce",
)
DEEP_AGENTS = ("dqn", "slateq", "ppo", "reinforce")  # trained with rlrec.train / `rlrec train`
ROLLOUT_AGENTS = ("ppo", "reinforce")  # learn from whole rollouts: `rlrec train`, not `rlrec run`
ASKING_AGENTS = ("conucb", "ask-linucb", "ask-lints", "ask-lm-linucb", "ask-random")  # conversational envs only
