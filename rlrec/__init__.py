"""rlrec: a JAX reinforcement-learning simulation environment for recommender systems.

Simulated users whose tastes live in a language model's embedding space choose from slates of real items;
agents learn to balance exploration and exploitation, measured by exact regret.
"""

__version__ = "0.1.0.dev0"
