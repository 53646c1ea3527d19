"""rlrec: a JAX reinforcement-learning simulation environment for recommender systems.

Simulated users whose tastes live in a language model's embedding space choose from slates of real items;
agents learn to balance exploration and exploitation, measured by exact regret.

    env, params = rlrec.make("MovieLens-Session-v0", slate_size=5)
    obs, state = env.reset(key, params)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)
    result = rlrec.run(env, params, rlrec.agents.make_agent("linucb", env), num_seeds=16, num_steps=200)

Importing rlrec registers every environment with Gymnasium as ``rlrec/<id>``.
"""

import os

# JAX's CPU linear algebra (the Cholesky solves of the linear bandits, under vmap) calls LAPACK through SciPy's
# OpenBLAS, whose own thread pool then fights XLA's for the cores: a LinUCB run was measured 4x slower and an
# epsilon-greedy run 37x slower on 2 cores with OpenBLAS's default threads. One OpenBLAS thread unless the
# user chose otherwise (it must be set before SciPy loads OpenBLAS, i.e. before SciPy is first imported).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from rlrec.bench.runner import RunResult, run  # noqa: E402
from rlrec.envs import make, registered_envs  # noqa: E402
from rlrec.envs.gym import register_all as _register_all  # noqa: E402

__version__ = "0.1.0.dev0"
__all__ = ["RunResult", "make", "registered_envs", "run"]

_register_all()
