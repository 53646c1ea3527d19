"""Stable-Baselines3 on many simulated users at once: :class:`SB3VecEnv`, an SB3 ``VecEnv`` over rlrec's
JAX-batched Gymnasium vector env (one jitted, vmapped call steps every user).

SB3 works unchanged on ``gymnasium.make("rlrec/<id>")`` (it wraps the env in its ``DummyVecEnv``, one Python
step per user). This adapter is the fast path for many users::

    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor
    from rlrec.envs.sb3 import SB3VecEnv

    envs = VecMonitor(SB3VecEnv.make("MovieLens-Session-v0", num_envs=64))   # VecMonitor: episode stats
    PPO("MultiInputPolicy", envs, n_steps=32).learn(50_000)

Autoreset: SB3's own convention, which is also rlrec's (Gymnasium's ``AutoresetMode.SAME_STEP``): the step that
ends an episode returns the next user's first observation, ``dones[i]`` is True, and ``infos[i]`` holds
``terminal_observation`` (the finished episode's last observation) and ``TimeLimit.truncated`` (the horizon
ended it, so SB3 bootstraps from ``terminal_observation``). Every ``infos[i]`` also holds the env's per-step
info (``regret``, ``expected_reward``, ``clicked_item``, ...). Slates that repeat an item (SB3 samples each
slot of a ``MultiDiscrete`` on its own) are shown once, as in :mod:`rlrec.envs.gym`.

Stable-Baselines3 is not a dependency of rlrec (it is in the ``dev`` extra): importing this module without it
raises an ``ImportError`` that says how to install it.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from rlrec.envs.gym import RecVectorEnv
from rlrec.errors import InputError

try:
    from stable_baselines3.common.vec_env import VecEnv
except ImportError as error:  # pragma: no cover - exercised only without SB3
    raise ImportError(
        "rlrec.envs.sb3 needs Stable-Baselines3: pip install 'stable-baselines3>=2.4' (it comes with rlrec's dev "
        "extra: pip install -e '.[dev]')."
    ) from error


def _writable(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    # Arrays read back from JAX are read-only; torch.as_tensor warns on those (and SB3 buffers copy anyway).
    return {name: np.array(value) for name, value in obs.items()}


class SB3VecEnv(VecEnv):
    """rlrec's :class:`~rlrec.envs.gym.RecVectorEnv` as a Stable-Baselines3 ``VecEnv`` (see the module docstring).

    Args:
        vector_env: a ``RecVectorEnv``, as from ``gymnasium.make_vec("rlrec/<id>", num_envs=N)``.
    """

    def __init__(self, vector_env: gymnasium.vector.VectorEnv):
        inner = getattr(vector_env, "unwrapped", vector_env)
        if not isinstance(inner, RecVectorEnv):
            raise TypeError(
                f"SB3VecEnv wraps rlrec's vector env (gymnasium.make_vec('rlrec/<id>', num_envs=N) or "
                f"SB3VecEnv.make(id, num_envs)); got {type(vector_env).__name__}. For any other Gymnasium env use "
                "SB3's own DummyVecEnv."
            )
        if vector_env is not inner:
            raise TypeError(
                "SB3VecEnv needs the unwrapped RecVectorEnv: Gymnasium vector wrappers do not reach SB3 (use SB3's "
                "VecEnv wrappers, e.g. VecMonitor or VecNormalize, around SB3VecEnv instead)."
            )
        if isinstance(inner.single_action_space, gymnasium.spaces.Dict):
            raise TypeError(
                f"Stable-Baselines3 does not take Dict action spaces, and {inner.env.name} acts with a slate and a "
                "question; train SB3 on its plain twin (e.g. MovieLens-BanditSlate-v0) or write the questions into "
                "your own wrapper's action."
            )
        self.vector_env = inner
        self._actions: np.ndarray | None = None
        super().__init__(inner.num_envs, inner.single_observation_space, inner.single_action_space)

    @classmethod
    def make(cls, env_id: str, num_envs: int, **kwargs: Any) -> SB3VecEnv:
        """``SB3VecEnv(gymnasium.make_vec("rlrec/<env_id>", num_envs, **kwargs))``; kwargs are env overrides
        (``max_steps=50``, ``slate_size=3``) or ``strict_slates``."""
        env_id = env_id if env_id.startswith("rlrec/") else f"rlrec/{env_id}"
        return cls(gymnasium.make_vec(env_id, num_envs=num_envs, **kwargs))

    # -- SB3's VecEnv interface ------------------------------------------------------------------------------

    def reset(self) -> dict[str, np.ndarray]:
        # SB3's seed(s) stores s, s + 1, ...: the vector env draws every user's key from the first.
        seed = self._seeds[0]
        obs, info = self.vector_env.reset(seed=seed)
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        return _writable(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        if self._actions is None:
            raise RuntimeError("Call step_async(actions) (or step(actions)) before step_wait().")
        obs, rewards, terminated, truncated, info = self.vector_env.step(self._actions)
        self._actions = None
        final = info.pop("final_obs", None)
        info.pop("_final_obs", None)
        dones = terminated | truncated
        infos = [{name: value[i] for name, value in info.items()} for i in range(self.num_envs)]
        for i in np.flatnonzero(dones):
            infos[i]["terminal_observation"] = _writable({name: value[i] for name, value in final.items()})
        for i in range(self.num_envs):
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return _writable(obs), rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        self.vector_env.close()

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        # One vectorised env serves every index: each index sees the same attribute.
        value = getattr(self.vector_env, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        if indices is not None and len(list(self._get_indices(indices))) != self.num_envs:
            raise InputError("SB3VecEnv steps every user in one call: attributes can only be set for all of them.")
        setattr(self.vector_env, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        result = getattr(self.vector_env, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gymnasium.Wrapper], indices=None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]
