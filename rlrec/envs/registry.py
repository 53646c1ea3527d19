"""Named environments: ``rlrec.make(id, **overrides) -> (env, params)`` and ``rlrec.registered_envs()``.

Three settings, each as a single-item and a slate environment:

- ``Bandit``: a cold-start user to learn over a fixed horizon; no dynamics (a contextual bandit).
- ``Drift``: interests drift toward what is consumed and users tire of more of the same (boredom).
- ``Session``: drift and boredom plus a session budget: each step costs budget, satisfying items give some
  back, the user leaves when it runs out. Popular items are tempting (``appeal_weight``) but satisfaction
  depends on the real match, so maximising the next click is not maximising the session.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
import numpy as np

from rlrec._lazy import memoised
from rlrec.data import Catalog, load_catalog
from rlrec.data.key_terms import Critiques, KeyTerms
from rlrec.data.preprocessing import standardise
from rlrec.envs.conversation import ConversationalEnv, ConversationalParams
from rlrec.envs.recsys import HISTORY_LENGTH, EnvParams, RecEnv, bandit_features
from rlrec.envs.specs import (  # noqa: F401  (re-exported)
    CONVERSATION_SETTINGS,
    REGISTRY,
    SETTINGS,
    EnvSpec,
    registered_envs,
)
from rlrec.errors import InputError
from rlrec.simulators import choice
from rlrec.simulators.population import Population, default_population

STATIC_OVERRIDES = ("slate_size", "history_length", "choice_model", "track_regret")
DATA_OVERRIDES = ("catalog", "dim", "population", "model_path", "position_decay")
_ARRAY_FIELDS = {
    "item_features",
    "item_quality",
    "item_appeal",
    "prototype_interests",
    "prototype_requests",
    "prototype_log_weights",
}
NUMERIC_OVERRIDES = tuple(
    field.name for field in dataclasses.fields(EnvParams) if field.name not in _ARRAY_FIELDS
)

_NUMERIC_DEFAULTS = {
    field.name: field.default for field in dataclasses.fields(EnvParams) if field.name in NUMERIC_OVERRIDES
}

# The conversation's knobs: the fields ConversationalParams adds with a default (its arrays have none).
_CONVERSATION_DEFAULTS = {
    field.name: field.default for field in dataclasses.fields(ConversationalParams)
    if field.default is not dataclasses.MISSING and field.name not in _NUMERIC_DEFAULTS
}

DEFAULT_DIM = 32
DEFAULT_POSITION_DECAY = 0.3


@dataclasses.dataclass(frozen=True)
class Knob:
    """A numeric environment setting: its documented range and meaning.

    Every value in the range gives finite utilities, rewards and regret in float32, the dtype the simulator
    computes in (``tests/test_env_properties.py`` checks this over the whole range).
    """

    name: str
    low: float
    high: float
    meaning: str
    low_open: bool = False  # the range excludes ``low``
    integer: bool = False
    per_slot: bool = False  # one value per slot of the slate (position_bias); every other knob is one number

    @property
    def dtype(self):
        return np.int32 if self.integer else np.float32

    def range_text(self) -> str:
        low = f"({self.low:g}" if self.low_open else f"[{self.low:g}"
        return f"{low}, {self.high:g}]" + (", whole numbers" if self.integer else "")

    def check(self, value: Any) -> np.ndarray:
        """``value`` in the dtype the simulator uses; raises ``ValueError`` naming the knob and its range."""
        try:
            wide = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"{self.name} must be a number in {self.range_text()}, got {value!r}.") from None
        if wide.ndim != 0 and not self.per_slot:  # a list would broadcast into the choice model's arrays
            raise InputError(f"{self.name} must be one number in {self.range_text()} ({self.meaning}), got {value!r}.")
        if self.integer and np.all(np.isfinite(wide)) and np.any(wide != np.floor(wide)):
            raise InputError(f"{self.name} must be a whole number in {self.range_text()}, got {value!r}.")
        # Checked as the simulator will hold it: 1e39 is finite in float64 but inf in float32, 1e-45 positive in
        # float64 but a denormal that overflows a division in float32.
        with np.errstate(over="ignore", invalid="ignore"):
            used = wide.astype(self.dtype) if not self.integer or np.all(np.abs(wide) < 2**31) else wide
        used_wide = np.asarray(used, np.float64)
        too_low = used_wide <= self.low if self.low_open else used_wide < self.low
        if not np.all(np.isfinite(used_wide)) or np.any(too_low) or np.any(used_wide > self.high):
            raise InputError(f"{self.name} must be in {self.range_text()} ({self.meaning}), got {value!r}.")
        return np.asarray(used, self.dtype)


_WEIGHT = 1e4  # the largest magnitude of a utility weight or logit: utilities stay far from float32 overflow
KNOBS: dict[str, Knob] = {
    knob.name: knob
    for knob in (
        Knob("interest_noise", 0.0, 100.0, "spread of simulated users around their prototype; 0: the prototypes"),
        Knob("affinity_weight", -_WEIGHT, _WEIGHT, "weight of the taste match <u, e_i> in the click utility"),
        Knob("quality_weight", -_WEIGHT, _WEIGHT, "weight of item quality in the click utility"),
        Knob("appeal_weight", -_WEIGHT, _WEIGHT, "weight of appeal (standardised log-popularity): clickbait"),
        Knob("position_bias", -_WEIGHT, _WEIGHT, "per-slot logit added to the utility, one value per slot",
             per_slot=True),
        Knob("no_click_logit", -_WEIGHT, _WEIGHT, "utility of not clicking: higher, fewer clicks"),
        Knob("temperature", 1e-3, _WEIGHT, "divides every logit: lower, more deterministic choices"),
        Knob("drift_rate", 0.0, 1.0, "how far interest moves toward a consumed item"),
        Knob("boredom_weight", 0.0, _WEIGHT, "utility lost per unit of similarity to recent consumption"),
        Knob("boredom_decay", 0.0, 1.0, "how much of the boredom memory is kept each step"),
        Knob("satisfaction_scale", 0.0, _WEIGHT, "steepness of satisfaction in the taste match"),
        Knob("satisfaction_threshold", -_WEIGHT, _WEIGHT, "taste match at which satisfaction is one half"),
        Knob("satisfaction_quality_weight", -_WEIGHT, _WEIGHT, "weight of item quality in satisfaction"),
        Knob("initial_budget", 0.0, 1e6, "session budget of a new user", low_open=True),
        Knob("step_cost", 0.0, 1e6, "budget each step costs"),
        Knob("budget_refund", 0.0, 1e6, "budget a fully satisfying click gives back"),
        Knob("max_steps", 1, 1e9, "horizon: the episode is truncated after this many steps", integer=True),
        Knob("position_decay", -_WEIGHT, _WEIGHT, "position_bias[s] = -position_decay * s when no bias is given"),
    )
}
assert set(KNOBS) == set(NUMERIC_OVERRIDES) | {"position_decay"}, "every numeric EnvParams field needs a Knob"

# The conversational envs' own knobs (rlrec.envs.conversation.ConversationalParams) and data.
CONVERSATION_KNOBS: dict[str, Knob] = {
    knob.name: knob
    for knob in (
        Knob("answer_beta", -_WEIGHT, _WEIGHT, "P(yes) = sigmoid(answer_beta <u, k> + answer_bias): how clearly "
             "answers follow the taste"),
        Knob("answer_bias", -_WEIGHT, _WEIGHT, "the yes-leaning of answers (see answer_beta)"),
        Knob("answer_noise", 0.0, 1.0, "probability that an answer is a coin flip instead"),
        Knob("no_answer_rate", 0.0, 1.0, "probability that a question gets no answer"),
        Knob("critique_rate", 0.0, 1.0, "probability of a critique after a slate with no click"),
        Knob("critique_noise", 0.0, _WEIGHT, "scale of the Gumbel noise on the choice of critique"),
        Knob("question_cost", 0.0, 1e6, "budget (patience) each question costs"),
    )
}
CONVERSATION_DATA = ("key_terms", "critiques")
assert set(CONVERSATION_KNOBS) == set(_CONVERSATION_DEFAULTS), "every conversation knob needs a Knob"


def check_overrides(env_id: str, overrides: dict[str, Any]) -> None:
    """Checks override names and numeric values without building anything; raises ``ValueError`` naming the
    field and what it takes (used by :func:`make`, suites and the command line)."""
    valid = set(STATIC_OVERRIDES) | set(DATA_OVERRIDES) | set(NUMERIC_OVERRIDES)
    conversational = REGISTRY.get(env_id.removeprefix("rlrec/"), None)
    if conversational is not None and conversational.conversational:
        valid |= set(CONVERSATION_KNOBS) | set(CONVERSATION_DATA)
    unknown = sorted(set(overrides) - valid)
    if unknown:
        talking = set(unknown) & (set(CONVERSATION_KNOBS) | set(CONVERSATION_DATA))
        hint = f"; {sorted(talking)} belong to the Conversational envs" if talking else ""
        raise InputError(
            f"Unknown override(s) {unknown} for {env_id}{hint}; valid overrides are {sorted(valid)} "
            f"(`rlrec envs --knobs {env_id}` describes each)."
        )
    for name, value in overrides.items():
        if name in KNOBS:
            KNOBS[name].check(value)
        elif name in CONVERSATION_KNOBS:
            CONVERSATION_KNOBS[name].check(value)
    for name in ("slate_size", "history_length"):
        value = overrides.get(name, 1)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise InputError(f"{name} must be a positive whole number, got {value!r}.")
    if overrides.get("choice_model", choice.MNL) not in choice.CHOICE_MODELS:
        raise InputError(f"choice_model must be one of {choice.CHOICE_MODELS}, got {overrides['choice_model']!r}.")
    if not isinstance(overrides.get("track_regret", True), (bool, np.bool_)):
        raise InputError(f"track_regret must be True or False, got {overrides['track_regret']!r}.")


@dataclasses.dataclass(frozen=True)
class Override:
    """One setting ``rlrec.make(id, name=value)`` (``rlrec run --set name=value``) accepts."""

    name: str
    default: Any
    valid: str
    meaning: str


def overrides_of(env_id: str) -> list[Override]:
    """Every setting of ``env_id`` that can be overridden, with this env's default, valid values and meaning
    (``rlrec envs --knobs ID``); nothing is built."""
    env_id = env_id.removeprefix("rlrec/")
    if env_id not in REGISTRY:
        raise InputError(f"Unknown environment {env_id!r}; choose one of: {', '.join(registered_envs())}.")
    spec = REGISTRY[env_id]
    defaults = dict(_NUMERIC_DEFAULTS, **SETTINGS[spec.setting], position_decay=DEFAULT_POSITION_DECAY)
    from rlrec.data.builtin import BUILTIN_CATALOGS

    rows = [
        Override("slate_size", spec.slate_size, "a whole number >= 1, at most the catalog size",
                 "items shown per step"),
        Override("history_length", HISTORY_LENGTH, "a whole number >= 1",
                 "recent consumed items the agent observes"),
        Override("choice_model", choice.MNL, " or ".join(choice.CHOICE_MODELS), "how a user picks from a slate"),
        Override("track_regret", True, "True or False", "compute the oracle and regret (False: faster training)"),
        Override("catalog", spec.catalog, " or ".join(sorted(BUILTIN_CATALOGS)) + " (Python: a Catalog)",
                 "the items"),
        Override("dim", DEFAULT_DIM, "a whole number >= 1, or None (the LM's own)",
                 "PCA dimension of the simulator space"),
        Override("model_path", None, "a transformers model folder", "the LM (default: all-MiniLM-L6-v2)"),
        Override("population", None, "Python only: a Population", "the users (default: the 671 MovieLens raters)"),
    ]
    for name, knob in KNOBS.items():
        default = "from position_decay" if name == "position_bias" else defaults[name]
        rows.append(Override(name, default, knob.range_text(), knob.meaning))
    if spec.conversational:
        rows += [
            Override("key_terms", "from the catalog", "a list of texts (Python: a KeyTerms)",
                     "what the recommender may ask about (genres, decades, films like a title)"),
            Override("critiques", "28 built-in", "a list of texts (Python: a Critiques)",
                     "what users may say after a slate with no click"),
        ]
        talking = dict(_CONVERSATION_DEFAULTS, **CONVERSATION_SETTINGS[spec.setting])
        rows += [Override(name, talking[name], knob.range_text(), knob.meaning)
                 for name, knob in CONVERSATION_KNOBS.items()]
    return rows


def build_params(
    catalog: Catalog, population: Population, *, slate_size: int, position_decay: float, **numeric: Any
) -> EnvParams:
    """Puts a catalog (simulator space) and a population (projected into it) into :class:`EnvParams`."""
    if population.interests.shape[1] != catalog.embeddings.shape[1]:
        raise InputError(
            f"population vectors have dim {population.interests.shape[1]} but catalog {catalog.name!r} embeddings "
            f"have dim {catalog.embeddings.shape[1]}: build both with the same language model."
        )
    if slate_size > len(catalog):
        raise InputError(f"slate_size={slate_size} is larger than the catalog ({len(catalog)} items).")
    count, requests_per_user, lm_dim = population.requests.shape
    interests = catalog.project(population.interests)
    requests = catalog.project(population.requests.reshape(-1, lm_dim)).reshape(count, requests_per_user, -1)
    unknown = sorted(set(numeric) - set(NUMERIC_OVERRIDES))
    if unknown:
        raise InputError(f"Unknown numeric setting(s) {unknown}; valid: {sorted(NUMERIC_OVERRIDES)}.")
    checked = {name: KNOBS[name].check(value) for name, value in numeric.items()}
    if "position_bias" in checked:
        position_bias = checked.pop("position_bias").reshape(-1)
        if position_bias.shape != (slate_size,):
            raise InputError(f"position_bias must have one value per slot ({slate_size}), got {position_bias.shape}.")
    else:
        position_bias = -float(KNOBS["position_decay"].check(position_decay)) * np.arange(slate_size, dtype=np.float32)
    return EnvParams(
        item_features=jnp.asarray(catalog.features),
        item_quality=jnp.asarray(catalog.quality),
        item_appeal=jnp.asarray(standardise(np.log1p(catalog.popularity.astype(np.float64)))),
        prototype_interests=jnp.asarray(interests),
        prototype_requests=jnp.asarray(requests),
        prototype_log_weights=jnp.log(jnp.asarray(population.weights)),
        position_bias=jnp.asarray(position_bias, jnp.float32),
        # Every knob becomes an array of a fixed dtype (not a Python float), so params built here, loaded from a
        # snapshot or batched for vmap all have the same pytree structure and dtypes.
        **{
            name: jnp.asarray(checked.get(name, default), KNOBS[name].dtype)
            for name, default in _NUMERIC_DEFAULTS.items()
            if name != "position_bias"
        },
    )


def build_conversational_params(
    catalog: Catalog, population: Population, key_terms: Any = None, critiques: Any = None, *, slate_size: int,
    position_decay: float, **numeric: Any
) -> ConversationalParams:
    """:func:`build_params` plus key-terms and critiques (a bank, a list of texts, or ``None``: the catalog's
    default) and the conversation's knobs (``answer_beta``, ..., see :data:`CONVERSATION_KNOBS`)."""
    talking = {name: numeric.pop(name) for name in list(numeric) if name in CONVERSATION_KNOBS}
    base = build_params(catalog, population, slate_size=slate_size, position_decay=position_decay, **numeric)
    key_terms = _bank(KeyTerms, "key_terms", catalog, key_terms)
    critiques = _bank(Critiques, "critiques", catalog, critiques)
    items, key_term_ids = key_terms.relation()
    fields = {field.name: getattr(base, field.name) for field in dataclasses.fields(base)}
    knobs = {name: jnp.asarray(CONVERSATION_KNOBS[name].check(talking.get(name, default)), jnp.float32)
             for name, default in _CONVERSATION_DEFAULTS.items()}
    return ConversationalParams(
        **fields,
        key_term_features=jnp.asarray(key_terms.features),
        key_term_centroids=jnp.asarray(key_terms.centroids(np.asarray(bandit_features(base)))),
        key_term_items=jnp.asarray(items),
        key_term_ids=jnp.asarray(key_term_ids),
        critique_features=jnp.asarray(critiques.features),
        **knobs,
    )


@memoised(maxsize=8)
def _default_bank(kind: type, catalog: Catalog) -> KeyTerms | Critiques:
    return kind.for_catalog(catalog)


def _bank(kind: type, name: str, catalog: Catalog, given: Any) -> KeyTerms | Critiques:
    """The ``key_terms`` or ``critiques`` override as a bank of ``kind`` fitted to ``catalog``: the catalog's
    default (built once per catalog), a bank checked against it, or a list of texts embedded by its LM."""
    if given is None:
        return _default_bank(kind, catalog)
    if isinstance(given, kind):
        return given.check_catalog(catalog)
    if isinstance(given, (list, tuple)):
        return kind.from_texts(catalog, given)
    raise InputError(f"{name} must be a list of texts or a {kind.__name__}, got {type(given).__name__}.")


def make(env_id: str, **overrides: Any) -> tuple[RecEnv, EnvParams]:
    """Builds a registered environment and its default parameters.

    Args:
        env_id: one of :func:`registered_envs` (a ``rlrec/`` prefix is accepted).
        **overrides: static settings (``slate_size``, ``history_length``, ``choice_model``,
            ``track_regret``: False skips the oracle for faster training steps), data
            (``catalog``: a built-in name or a :class:`~rlrec.data.Catalog`; ``dim``; ``population``: a
            :class:`~rlrec.simulators.population.Population`; ``model_path``; ``position_decay``) or any
            numeric field of :class:`EnvParams` (``no_click_logit=2.0``, ``drift_rate=0.2``, ...).

    Returns:
        ``(env, params)``.

    Raises:
        ValueError: unknown id or override, or an out-of-range value (the message names the field).
    """
    env_id = env_id.removeprefix("rlrec/")
    if env_id not in REGISTRY:
        raise InputError(f"Unknown environment {env_id!r}. Registered: {', '.join(registered_envs())}.")
    spec = REGISTRY[env_id]
    check_overrides(env_id, overrides)

    slate_size = overrides.pop("slate_size", spec.slate_size)
    history_length = overrides.pop("history_length", HISTORY_LENGTH)
    choice_model = overrides.pop("choice_model", choice.MNL)
    track_regret = overrides.pop("track_regret", True)
    dim_given = "dim" in overrides
    dim = overrides.pop("dim", DEFAULT_DIM)
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1):
        raise InputError(f"dim must be a positive integer or None, got {dim!r}.")
    model_path = overrides.pop("model_path", None)
    position_decay = float(KNOBS["position_decay"].check(overrides.pop("position_decay", DEFAULT_POSITION_DECAY)))
    catalog = overrides.pop("catalog", spec.catalog)
    population = overrides.pop("population", None)
    key_terms = overrides.pop("key_terms", None)
    critiques = overrides.pop("critiques", None)

    numeric = dict(SETTINGS[spec.setting])
    if spec.conversational:
        numeric.update(CONVERSATION_SETTINGS[spec.setting])
    numeric.update(overrides)

    if isinstance(catalog, str):
        catalog = load_catalog(catalog, dim=dim, model_path=model_path)
    elif isinstance(catalog, Catalog):
        if dim_given:  # a catalog object is used as given unless a dim is asked for
            catalog = catalog.with_projection(dim)
    else:
        raise InputError(f"catalog must be a built-in name or a Catalog, got {type(catalog).__name__}.")
    if population is None:
        population = default_population(model_path)
    elif not isinstance(population, Population):
        raise InputError(f"population must be a Population, got {type(population).__name__}.")

    static = dict(slate_size=slate_size, history_length=history_length, choice_model=choice_model, name=env_id,
                  track_regret=track_regret, catalog=catalog)
    if not spec.conversational:
        params = build_params(catalog, population, slate_size=slate_size, position_decay=position_decay, **numeric)
        return RecEnv(**static), params
    key_terms = _bank(KeyTerms, "key_terms", catalog, key_terms)
    critiques = _bank(Critiques, "critiques", catalog, critiques)
    params = build_conversational_params(catalog, population, key_terms, critiques, slate_size=slate_size,
                                         position_decay=position_decay, **numeric)
    return ConversationalEnv(**static, key_terms=key_terms, critiques=critiques), params


def catalog_extras(env) -> tuple:
    """``(popularity, genres)`` of the catalog :func:`make` built ``env`` from (for novelty and genre entropy);
    ``(None, None)`` for an env without one."""
    catalog = getattr(env, "catalog", None)  # an env class of your own may not have the field
    return (None, None) if catalog is None else (catalog.popularity, catalog.genres)
