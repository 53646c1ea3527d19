"""rlrec: a JAX reinforcement-learning simulation environment for recommender systems.

Simulated users whose tastes live in a language model's embedding space choose from slates of real items;
agents learn to balance exploration and exploitation, measured by exact regret.

    env, params = rlrec.make("MovieLens-Session-v0", slate_size=5)
    obs, state = env.reset(key, params)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)
    result = rlrec.run(env, params, rlrec.agents.make_agent("linucb", env), num_seeds=16, num_steps=200)

Importing rlrec registers every environment with Gymnasium as ``rlrec/<id>``. JAX and the rest load on first
use (``rlrec.make``, ``rlrec.run``, ``rlrec.agents``, ...), so the command line starts in a fraction of a second.
"""

from __future__ import annotations

import os

# Never reach for the hub: every model is a local folder. Set on `import rlrec`, before transformers can be
# imported by anyone (rlrec.lm, which loads models, is a submodule: this runs first).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from rlrec._lazy import attach
from rlrec.envs.specs import register_gymnasium as _register_gymnasium
from rlrec.envs.specs import registered_envs

__version__ = "0.1.0.dev0"

_LAZY = {
    "RunResult": "rlrec.rollout.runner",
    "run": "rlrec.rollout.runner",
    "enable_compilation_cache": "rlrec.compilation",
    "make": "rlrec.envs.registry",
}
__all__ = ["registered_envs", *_LAZY]
_SUBPACKAGES = (
    "agents", "bench", "compilation", "data", "envs", "files", "lm", "metrics", "ope", "rollout", "simulators", "train"
)

# The public names and subpackages load on first use.
__getattr__, __dir__ = attach(__name__, _LAZY, globals(), [*__all__, *_SUBPACKAGES])


_register_gymnasium()
