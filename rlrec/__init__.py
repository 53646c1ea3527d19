"""rlrec: a JAX reinforcement-learning simulation environment for recommender systems.

Simulated users whose tastes live in a language model's embedding space choose from slates of real items;
agents learn to balance exploration and exploitation, measured by exact regret.

    env, params = rlrec.make("MovieLens-Session-v0", slate_size=5)
    obs, state = env.reset(key, params)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)
    result = rlrec.run(env, params, rlrec.agents.make_agent("linucb", env), num_seeds=16, num_steps=200)

Importing rlrec registers every environment with Gymnasium as ``rlrec/<id>``.
"""

from rlrec.bench.runner import RunResult, run
from rlrec.compilation import enable_compilation_cache
from rlrec.envs import make, registered_envs
from rlrec.envs.gym import register_all as _register_all

__version__ = "0.1.0.dev0"
__all__ = ["RunResult", "enable_compilation_cache", "make", "registered_envs", "run"]

_register_all()
