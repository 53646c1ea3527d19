"""Stable-Baselines3 on rlrec: :class:`SB3VecEnv`, an SB3 ``VecEnv`` over rlrec's JAX-batched Gymnasium vector
env (one jitted, vmapped call steps every user), and :class:`ItemFeaturesExtractor`, a features extractor that
reads the history's item ids as the items' features instead of as numbers.

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

Conversational ids act with a slate and a question (a ``Dict`` action, which SB3 refuses): make them with
``flat_action=True`` (:mod:`rlrec.envs.gym`), one ``MultiDiscrete`` of the slate and the question plus one;
``flat_action=True`` leaves every other id as it is, so the same call serves every id.

Stable-Baselines3 (and with it torch) is not a dependency of rlrec (it is in the ``dev`` extra): ``import rlrec``
never loads this module, and importing it without SB3 raises an ``ImportError`` that says how to install it.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from rlrec.envs.gym import RecVectorEnv
from rlrec.envs.recsys import bandit_features
from rlrec.errors import InputError

try:
    import torch
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
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
                "question; make it with flat_action=True (SB3VecEnv.make(env_id, num_envs, flat_action=True)): one "
                "MultiDiscrete of the slate's item ids, then the question plus one (0 asks nothing)."
            )
        self.vector_env = inner
        self._actions: np.ndarray | None = None
        super().__init__(inner.num_envs, inner.single_observation_space, inner.single_action_space)

    @classmethod
    def make(cls, env_id: str, num_envs: int, **kwargs: Any) -> SB3VecEnv:
        """``SB3VecEnv(gymnasium.make_vec("rlrec/<env_id>", num_envs, **kwargs))``; kwargs are env overrides
        (``max_steps=50``, ``slate_size=3``), ``strict_slates`` or ``flat_action`` (needed on conversational ids)."""
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


# -- Item features for SB3's policies ----------------------------------------------------------------------------


def item_features(env: Any) -> np.ndarray:
    """The ``(N, d + 2)`` float32 item features of an rlrec env, for :class:`ItemFeaturesExtractor`.

    Each item's embedding in the simulator space, its quality and its appeal: the attributes the simulated
    user's click utility is built from, as rlrec's linear bandits read them
    (:func:`rlrec.envs.recsys.bandit_features`).

    Args:
        env: ``gymnasium.make("rlrec/<id>")`` (wrapped or not), ``gymnasium.make_vec("rlrec/<id>")``,
            an :class:`SB3VecEnv` (wrapped in SB3's ``VecEnvWrapper`` s or not), or SB3's ``DummyVecEnv`` of
            rlrec envs.

    Returns:
        float32 ``(N, d + 2)``, row ``i`` for item id ``i``.
    """
    inner = getattr(env, "unwrapped", env)  # gymnasium wrappers, SB3's VecEnvWrappers
    if isinstance(inner, SB3VecEnv):
        inner = inner.vector_env
    elif getattr(inner, "envs", None):  # SB3's DummyVecEnv: every env has the same catalog
        inner = inner.envs[0].unwrapped
    params = getattr(inner, "params", None)
    if params is None or not hasattr(params, "item_features"):
        raise TypeError(
            f"item_features reads an rlrec env's catalog: pass gymnasium.make('rlrec/<id>'), "
            f"gymnasium.make_vec('rlrec/<id>', num_envs=N) or an SB3VecEnv; got {type(inner).__name__}."
        )
    return np.asarray(bandit_features(params), np.float32)


class ItemFeaturesExtractor(BaseFeaturesExtractor):
    """An SB3 features extractor for rlrec observations: history item ids looked up in the items' features.

    SB3's default ``CombinedExtractor`` flattens ``history_items`` into the network as numbers, so item 4,512 is
    "bigger" than item 17 and two similar films look unrelated. This extractor reads each past step as the
    features of the item clicked (zeros without a click), the mean features of the slate shown (zeros for the
    padding before the first step) and whether there was a click; it concatenates these with every other entry
    of the observation, flattened as numbers (``request``, ``history_feedback``, ``progress``, and on
    conversational ids ``question``, ``answer``, ``critique``, ``critique_embedding``), and feeds an MLP (ReLU
    after each layer). The item features are a fixed buffer (saved with the model, not trained)::

        from stable_baselines3 import PPO
        from rlrec.envs.sb3 import ItemFeaturesExtractor, SB3VecEnv, item_features

        envs = SB3VecEnv.make("MovieLens-Session-v0", num_envs=64)
        policy_kwargs = dict(features_extractor_class=ItemFeaturesExtractor,
                             features_extractor_kwargs=dict(item_features=item_features(envs)))
        PPO("MultiInputPolicy", envs, policy_kwargs=policy_kwargs, n_steps=64, batch_size=512).learn(50_000)

    Args:
        observation_space: the env's ``Dict`` observation space (SB3 passes it).
        item_features: ``(N, f)`` features of the catalog's ``N`` items, row ``i`` for item id ``i``; usually
            :func:`item_features` of the env.
        net_arch: the MLP's layer sizes; the last is the features' size.

    Raises:
        InputError: ``item_features`` is not a finite ``(N, f)`` array with one row per item of the env, or
            ``net_arch`` is empty or holds a size below 1.
        TypeError: ``observation_space`` is not an rlrec observation (a ``Dict`` with ``history_items`` and
            ``history_clicks``).
    """

    def __init__(self, observation_space: gymnasium.spaces.Dict, item_features: Any,
                 net_arch: tuple[int, ...] | list[int] = (256, 256)):
        entries = getattr(observation_space, "spaces", {})
        if not {"history_items", "history_clicks"} <= set(entries):
            raise TypeError(
                "ItemFeaturesExtractor reads an rlrec observation (a Dict with history_items and history_clicks); "
                f"got {observation_space}. Use it with an rlrec env and SB3's MultiInputPolicy."
            )
        features = np.asarray(item_features, np.float32)
        num_items = int(entries["history_items"].high.max()) + 1
        if features.ndim != 2 or features.shape[0] != num_items:
            raise InputError(
                f"item_features must be (items, features) with one row per item of the env ({num_items}), got shape "
                f"{features.shape}; pass item_features(env) from rlrec.envs.sb3."
            )
        if not np.isfinite(features).all():
            raise InputError("item_features holds NaN or infinite values; every item needs finite features.")
        sizes = [int(size) for size in net_arch]
        if not sizes or min(sizes) < 1:
            raise InputError(f"net_arch must be one or more layer sizes >= 1 (e.g. (256, 256)), got {net_arch!r}.")
        history, _ = entries["history_items"].shape
        others = sorted(set(entries) - {"history_items", "history_clicks"})
        width = history * (2 * features.shape[1] + 1) + sum(int(np.prod(entries[name].shape)) for name in others)
        super().__init__(observation_space, features_dim=sizes[-1])
        self.other_entries = others
        # Row 0 is the padding id -1 (no item shown yet): zeros, so padding adds nothing.
        self.register_buffer("item_table", torch.as_tensor(np.concatenate([np.zeros_like(features[:1]), features])))
        layers: list[torch.nn.Module] = []
        for size in sizes:
            layers += [torch.nn.Linear(width, size), torch.nn.ReLU()]
            width = size
        self.mlp = torch.nn.Sequential(*layers)

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(B, net_arch[-1])`` features of a batch of observations: the MLP of :meth:`inputs`."""
        return self.mlp(self.inputs(observations))

    def inputs(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(B, width)`` input of the MLP: per history step (oldest first) the clicked item's features, then per
        step the shown slate's mean features, then per step 1.0 for a click, then the other entries by name."""
        # SB3 hands every Box entry over as float32; ids up to 2**24 are exact, rounding guards the cast.
        items = observations["history_items"].round().long() + 1  # (B, H, k), 0 for padding
        clicks = observations["history_clicks"].round().long()  # (B, H), -1 for no click
        shown = self.item_table[items]  # (B, H, k, f)
        clicked = (clicks >= 0).unsqueeze(-1)  # (B, H, 1)
        slot = clicks.clamp(min=0)[..., None, None].expand(-1, -1, 1, shown.shape[-1])
        clicked_features = torch.gather(shown, 2, slot).squeeze(2) * clicked
        parts = [clicked_features.flatten(1), shown.mean(2).flatten(1), clicked.flatten(1).float()]
        parts += [observations[name].flatten(1).float() for name in self.other_entries]
        return torch.cat(parts, dim=1)
