"""The agent API shared by bandits and deep RL agents.

An agent is a small immutable pytree (``rlrec.agents.pytree.ClassKeyed``): static configuration (sizes, code paths)
in fields marked ``pytree_node=False``, hyperparameters that do not fix shapes as leaves, so a population of
configurations vmaps. Three pure functions::

    state = agent.init(key, env_params)
    action = agent.act(key, state, obs, env_params)
    state, metrics = agent.update(key, state, transition, env_params)

Training loops and shared-mode runs call ``agent.act_batch(keys, state, obs, env_params)`` for a batch of users
served by one learner: by default ``act_with_extras`` under ``vmap``; agents override it where a batch is
cheaper as a whole (PPO groups users by the item-tree leaf they pick).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, ClassVar

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from rlrec import _repr
from rlrec.agents.pytree import ClassKeyed
from rlrec.errors import InputError
from rlrec.simulators import choice

# -- hyperparameter declarations --------------------------------------------------------------------------------

# Every field of an agent is one of three kinds, declared by its metadata: a hyperparameter (users choose it),
# a setting from the environment (make_agent fills it in) or internal (display name, evaluation switches, the
# parts of a wrapper). Loops and the registry read these declarations; no name is special-cased.
HYPERPARAMETER = "rlrec_hyperparameter"  # field metadata key: the field's Hyperparameter spec
FROM_ENV = "rlrec_from_env"  # field metadata key: how to read the field's value from the environment
INTERNAL = "rlrec_internal"  # field metadata key: what an internal field is for


@dataclasses.dataclass(frozen=True)
class Hyperparameter:
    """What values a hyperparameter takes and what it means (declared on the agent class's field).

    ``kind`` is ``"float"``, ``"int"``, ``"bool"`` or ``"choice"``. Numbers must lie in ``[low, high]``
    (``low_open``/``high_open``: the bound is excluded); choices in ``choices``.
    """

    kind: str
    meaning: str
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        """The valid values in words, e.g. ``(0, 1e+06]`` or ``one of item, request-item``."""
        if self.kind == "bool":
            return "True or False"
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        low = ("(" if self.low_open else "[") + f"{self.low:g}"
        high = f"{self.high:g}" + (")" if self.high_open else "]")
        return f"{low}, {high}" + (" (whole numbers)" if self.kind == "int" else "")

    def check(self, name: str, value: Any) -> Any:
        """``value`` converted to the field's type, or ``ValueError`` naming the field and its valid values."""
        valid = self.describe() if self.kind in ("bool", "choice") else f"in {self.describe()}"
        problem = f"{name} must be {valid} ({self.meaning}), got {value!r}."
        if isinstance(value, jax.core.Tracer):  # a population of configurations being traced: nothing to check
            return value
        if self.kind == "bool":
            if not isinstance(value, (bool, np.bool_)):
                raise InputError(problem)
            return bool(value)
        if self.kind == "choice":
            if value not in self.choices:
                raise InputError(problem)
            return value
        if isinstance(value, (bool, np.bool_, str)) or value is None:
            raise InputError(problem)
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(problem) from None
        # Checked as float32 holds it (the dtype agents compute in): 1e39 is finite only in float64. The bounds too,
        # so a bound float32 cannot hold exactly (0.01) accepts the value written as the bound.
        with np.errstate(over="ignore"):
            used = array.astype(np.float32).astype(np.float64)
            low, high = (float(np.float32(bound)) for bound in (self.low, self.high))
        too_low = used <= low if self.low_open else used < low
        too_high = used >= high if self.high_open else used > high
        if not np.all(np.isfinite(used)) or np.any(too_low) or np.any(too_high):
            raise InputError(problem)
        if self.kind == "int":
            if np.any(array != np.floor(array)):
                raise InputError(problem)
            return int(array) if array.ndim == 0 else value
        return float(array) if array.ndim == 0 and not isinstance(value, jax.Array) else value


def hyperparameter(default: Any, meaning: str, *, low: float = -math.inf, high: float = math.inf,
                   low_open: bool = False, high_open: bool = False, choices: tuple[str, ...] = (),
                   static: bool | None = None) -> Any:
    """A dataclass field declaring a hyperparameter: its default, meaning and valid values.

    Numbers that do not fix shapes are pytree leaves (vmappable populations of configurations); integers that fix
    shapes or loop lengths, booleans and choices are static (``static`` overrides).
    """
    if choices:
        kind = "choice"
    elif isinstance(default, bool):
        kind = "bool"
    elif isinstance(default, int):
        kind = "int"
    else:
        kind = "float"
    if static is None:
        static = kind != "float"
    spec = Hyperparameter(kind, meaning, float(low), float(high), low_open, high_open, tuple(choices))
    return struct.field(pytree_node=not static, default=default, metadata={HYPERPARAMETER: spec})


def from_env(default: Any = None, read: Callable[[Any], Any] | None = None) -> Any:
    """A static field the environment sets: ``make_agent`` fills it with ``read(env)`` (by default the env's
    attribute of the same name, e.g. ``slate_size``); not a hyperparameter."""
    return struct.field(pytree_node=False, default=default, metadata={FROM_ENV: read})


def internal(default: Any, meaning: str, *, static: bool = True, compare: bool = True) -> Any:
    """A field that is neither a hyperparameter nor read from the env (a display name, an evaluation switch);
    ``compare=False`` leaves it out of ``==`` and ``hash``."""
    return struct.field(pytree_node=not static, default=default, compare=compare, metadata={INTERNAL: meaning})


def hyperparameters_of(cls: type) -> dict[str, Hyperparameter]:
    """``{name: spec}`` of the hyperparameters an agent class declares, in field order."""
    return {
        field.name: field.metadata[HYPERPARAMETER]
        for field in dataclasses.fields(cls)
        if HYPERPARAMETER in field.metadata
    }


def env_fields_of(cls: type) -> list[str]:
    """Names of the fields an agent class takes from the environment."""
    return [field.name for field in dataclasses.fields(cls) if FROM_ENV in field.metadata]


def internal_fields_of(cls: type) -> list[str]:
    """Names of an agent class's internal fields (neither hyperparameters nor from the environment)."""
    return [field.name for field in dataclasses.fields(cls) if INTERNAL in field.metadata]


def env_settings(cls: type, env: Any) -> dict[str, Any]:
    """``{field: value}`` of the fields ``cls`` reads from ``env``, then its env-dependent defaults
    (:meth:`Agent.env_defaults`)."""
    settings = {}
    for field in dataclasses.fields(cls):
        if FROM_ENV in field.metadata:
            read = field.metadata[FROM_ENV]
            settings[field.name] = getattr(env, field.name) if read is None else read(env)
    return {**cls.env_defaults(env), **settings}


def check_hyperparameters(cls: type, settings: dict[str, Any], agent: str | None = None) -> dict[str, Any]:
    """``settings`` checked against ``cls``'s declarations (names, types, ranges) and converted to their types.

    Raises:
        ValueError: an unknown name (listing the valid ones) or a value out of range (naming it and the range).
    """
    declared = hyperparameters_of(cls)
    label = agent or cls.__name__
    unknown = sorted(set(settings) - set(declared))
    if unknown:
        raise InputError(f"Unknown hyperparameter(s) {unknown} for {label}; it takes {sorted(declared)}.")
    checked = {}
    for name, value in settings.items():
        try:
            checked[name] = declared[name].check(name, value)
        except ValueError as error:
            raise InputError(f"{label}: {error}") from None
    return checked


@struct.dataclass
class Transition:
    """What one step taught the agent, for one user.

    Attributes:
        obs: observation the action was chosen from.
        action: int32 ``()`` or ``(k,)``, the item or slate shown.
        reward: float32 ``()``, 1 for a click.
        slot_rewards: float32 ``(k,)``, 1 in the clicked slot, else 0 (per-item feedback on a slate).
        next_obs: observation after the step (of the next user after an auto-reset).
        done: bool ``()``, the episode ended (terminated or truncated).
        terminated: bool ``()``, the user left (no bootstrapping from ``next_obs``); ``None`` when the
            caller does not tell truncation apart (bandits do not need it).
        extras: what the agent's ``act_with_extras`` returned with the action (e.g. log-probability and
            value for policy-gradient agents); empty for bandits.
    """

    obs: dict
    action: jax.Array
    reward: jax.Array
    slot_rewards: jax.Array
    next_obs: dict
    done: jax.Array
    terminated: jax.Array | None = None
    extras: dict = struct.field(default_factory=dict)


def as_slate(action: jax.Array | dict) -> jax.Array:
    """An item index or a slate as a ``(k,)`` int32 slate (of a conversational action ``{"slate", "question"}``,
    its slate)."""
    if isinstance(action, dict):
        action = action["slate"]
    return jnp.atleast_1d(jnp.asarray(action, jnp.int32))


def slot_rewards(clicked_slot: jax.Array, slate_size: int) -> jax.Array:
    """``(k,)`` one-hot of the clicked slot (all zeros for no click)."""
    return (jnp.arange(slate_size) == clicked_slot).astype(jnp.float32)


# Scale of the noise that breaks ties between equal scores: far below any difference of scores that matters.
TIE_BREAK_SCALE = 1e-6


def top_k_slate(scores: jax.Array, slate_size: int, *, key: chex.PRNGKey | None = None,
                exact_ties: bool = True) -> jax.Array:
    """The ``slate_size`` best-scoring items, best first (scalar item when ``slate_size == 1``).

    With ``key``, ties are broken at random: ``TIE_BREAK_SCALE`` times noise in ``[0, 1)`` is added to every
    score first. ``exact_ties=True`` takes ``lax.top_k`` (among equal scores, the lowest index) and
    ``jax.random.uniform`` noise; ``exact_ties=False`` the faster two-level :func:`rlrec.simulators.choice.top_k`
    (the same items, except among exactly equal scores) and the cheaper :func:`tie_breaks`. The two draw different
    numbers from one key, so each agent keeps the one it was measured with.
    """
    chex.assert_rank(scores, 1)
    if key is not None:
        noise = jax.random.uniform(key, scores.shape) if exact_ties else tie_breaks(key, scores.shape[0])
        scores = scores + TIE_BREAK_SCALE * noise
    _, items = jax.lax.top_k(scores, slate_size) if exact_ties else choice.top_k(scores, slate_size)
    items = items.astype(jnp.int32)
    return items[0] if slate_size == 1 else items


def tie_breaks(key: chex.PRNGKey, count: int) -> jax.Array:
    """``(count,)`` pseudo-random values in ``[0, 1)`` for breaking ties between equal scores, cheaply.

    One 32-bit draw from ``key``, then each index hashed with it by MurmurHash3's finaliser (a bijective mixer):
    about ten integer operations per item instead of ``jax.random.uniform``'s threefry rounds, which cost more
    than scoring the catalog itself. Good enough to order ties at random; not for sampling.
    """
    seed = jax.random.bits(key, (), jnp.uint32)
    h = jnp.arange(count, dtype=jnp.uint32) * jnp.uint32(0x9E3779B9) + seed
    h = (h ^ (h >> 16)) * jnp.uint32(0x85EBCA6B)
    h = (h ^ (h >> 13)) * jnp.uint32(0xC2B2AE35)
    h = h ^ (h >> 16)
    return (h >> 8).astype(jnp.float32) * jnp.float32(2.0**-24)


def random_distinct_items(key: chex.PRNGKey, num_items: int, slate_size: int) -> jax.Array:
    """A uniformly random slate of distinct items in ``O(k^2)`` scalar work, nothing catalog-sized.

    Slot ``j`` draws a rank uniform in ``[0, N - j)`` among the items not chosen yet and maps it to an item id
    by stepping over the ids already chosen (in increasing order): exactly uniform over ordered k-subsets. For
    large slates (``k > 16``, where the unrolled ``k^2`` steps would slow compilation) it is :func:`random_slate`.
    Scalar item when ``slate_size == 1``.
    """
    if slate_size == 1 or slate_size > 16:
        return random_slate(key, num_items, slate_size)
    ranks = jax.random.randint(key, (slate_size,), 0, num_items - jnp.arange(slate_size), dtype=jnp.int32)
    chosen: list[jax.Array] = []
    for j in range(slate_size):
        item = ranks[j]
        if chosen:
            for taken in jnp.sort(jnp.stack(chosen)):
                item = item + (item >= taken).astype(jnp.int32)
        chosen.append(item)
    return jnp.stack(chosen)


def random_slate(key: chex.PRNGKey, num_items: int, slate_size: int) -> jax.Array:
    """A uniformly random slate of distinct items (scalar item when ``slate_size == 1``).

    Top-k of i.i.d. uniform scores: distinct by construction and O(N) (``jax.random.choice`` without
    replacement sorts the whole catalog).
    """
    if slate_size == 1:
        return jax.random.randint(key, (), 0, num_items, dtype=jnp.int32)
    return top_k_slate(jax.random.uniform(key, (num_items,)), slate_size)


class Agent(ClassKeyed):
    """Base class: subclasses define ``init``, ``act`` and ``update``.

    ``slate_size`` is static (it fixes the action shape); set it from the env (``env.slate_size``).
    """

    slate_size: int = from_env(1)
    label: str = internal("", "display name only (left out of ==, hash and compiled programs)", compare=False)

    def __init_subclass__(cls, **kwargs):
        # Subclasses keep the short repr below instead of a generated one (unless they write their own).
        kwargs.setdefault("repr", False)
        super().__init_subclass__(**kwargs)

    def __repr__(self) -> str:
        """Name, settings from the env and hyperparameters by value (arrays, e.g. a vmapped population of
        configurations, by shape)."""
        head = {"name": self.label} if self.label else {}
        return _repr.fields_repr(self, head, skip=("label",))

    @property
    def name(self) -> str:
        """Name shown in tables and plots: the registry name when built by ``make_agent``."""
        return self.label or type(self).__name__

    # -- what the loops need to know, declared by each class (rlrec.run and rlrec.train read these, never probe) --
    # True: ``act`` reads the user's hidden state: the loops pass ``env_state=`` (only the oracle does).
    reads_hidden_state: ClassVar[bool] = False
    # True: learns only from whole rollouts (rlrec.train); rlrec.run's per-step updates refuse it.
    learns_from_rollouts: ClassVar[bool] = False
    # True: acts with ``{"slate", "question"}`` and learns from the answers, so it needs a conversational env
    # (rlrec.envs.conversation); make_agent refuses any other.
    asks_questions: ClassVar[bool] = False
    # Steps of every user a training loop collects before each update (deep agents make it a hyperparameter).
    rollout_length = 1
    # Agents with a ``deterministic`` switch: whether rlrec.train.evaluate acts greedily by default (None: no
    # switch, the agent acts as it always does).
    evaluate_greedily: ClassVar[bool | None] = None
    # True: ``act`` draws its slate at random beyond breaking ties (a posterior sample, exploration), so off-policy
    # evaluation knows its propensities only by Monte Carlo: ``sampled:`` policies (rlrec.ope.specs).
    acts_at_random: ClassVar[bool] = False
    # Hyperparameters under which one state learns from many users at once and, frozen, serves each by their
    # request: off-policy evaluation trains such an agent with them before freezing it (rlrec.ope.fitted). None:
    # it is used as made.
    fit_settings: ClassVar[dict[str, Any] | None] = None

    @classmethod
    def env_defaults(cls, env: Any) -> dict[str, Any]:
        """Hyperparameter defaults that depend on the env (``make_agent`` applies them unless given)."""
        return {}

    def check_rollout(self, num_users: int) -> None:
        """Raises ``ValueError`` when a training rollout of ``rollout_length`` steps of ``num_users`` users does
        not suit this agent's update (e.g. more transitions than its replay buffer holds)."""

    def init(self, key: chex.PRNGKey, env_params: Any) -> Any:
        return ()

    def act(self, key: chex.PRNGKey, state: Any, obs: dict, env_params: Any, env_state: Any = None) -> jax.Array:
        """The action (item or slate) for ``obs``. ``env_state``: the user's hidden state, passed only to agents
        that declare ``reads_hidden_state``; every other agent may leave it out of its signature."""
        raise NotImplementedError

    def act_with_extras(self, key: chex.PRNGKey, state: Any, obs: dict, env_params: Any) -> tuple[jax.Array, dict]:
        """The action and what the agent wants back in ``Transition.extras`` (training loops call this)."""
        return self.act(key, state, obs, env_params), {}

    def act_batch(self, keys: chex.PRNGKey, state: Any, obs: dict, env_params: Any) -> tuple[jax.Array, dict]:
        """:meth:`act_with_extras` for a batch of users sharing ``state`` (``keys`` and ``obs`` lead with ``B``).

        Training loops call this; agents override it when a batch is cheaper than ``B`` separate users.
        """
        return jax.vmap(self.act_with_extras, in_axes=(0, None, 0, None))(keys, state, obs, env_params)

    def update(self, key: chex.PRNGKey, state: Any, transition: Transition, env_params: Any) -> tuple[Any, dict]:
        return state, {}

    # True: ``item_scores`` reads nothing of the observation but the request, so equal requests score equally
    # (off-policy evaluation then scores each distinct request once).
    scores_from_request: ClassVar[bool] = False

    def item_scores(self, state: Any, obs: dict, env_params: Any) -> jax.Array:
        """``(N,)`` how much the agent likes each item for ``obs``, deterministically (higher is better).

        Off-policy evaluation (:mod:`rlrec.ope`) builds exact greedy, epsilon-greedy and softmax policies over
        these scores. Agents that act by sampling without a score of their own do not define it.
        """
        raise NotImplementedError(
            f"{self.name} does not score items. Off-policy evaluation can still use it as a sampled policy, its "
            "propensities estimated by Monte Carlo: rlrec.ope.Sampled(agent=..., state=..., slate_size=..., "
            "draws=...)."
        )


class Frozen(Agent):
    """A trained agent that no longer learns: ``init`` returns ``state``, ``update`` changes nothing.

    Use it to evaluate a trained learner with :func:`rlrec.run` (``Frozen.of(agent, state)``).
    """

    agent: Any = internal(None, "the trained agent", static=False)
    state: Any = internal(None, "its learnt state", static=False)

    @classmethod
    def of(cls, agent: Agent, state: Any, deterministic: bool | None = None) -> "Frozen":
        """Freezes ``agent`` at ``state``; ``deterministic`` overrides its action noise when it has one."""
        if deterministic is not None and agent.evaluate_greedily is not None:
            agent = agent.replace(deterministic=deterministic)
        return cls(slate_size=agent.slate_size, label=agent.name, agent=agent, state=state)

    def init(self, key, env_params):
        return self.state

    def act(self, key, state, obs, env_params):
        return self.agent.act(key, state, obs, env_params)

    def act_batch(self, keys, state, obs, env_params):
        return self.agent.act_batch(keys, state, obs, env_params)

    def item_scores(self, state, obs, env_params):
        return self.agent.item_scores(state, obs, env_params)

    @property
    def scores_from_request(self) -> bool:  # the trained agent's
        return self.agent.scores_from_request
