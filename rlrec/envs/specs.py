"""The registered environment ids and their settings, without JAX.

``rlrec envs``, ``rlrec --help`` and the Gymnasium registration read only this module, so they answer without
loading JAX (see ``benchmarks/cli_startup.py``); :mod:`rlrec.envs.registry` builds the environments.
"""

from __future__ import annotations

import dataclasses
from typing import Any

SETTINGS: dict[str, dict[str, Any]] = {
    "bandit": {"max_steps": 200},
    "drift": {"max_steps": 200, "drift_rate": 0.1, "boredom_weight": 2.0, "boredom_decay": 0.8},
    # Tuned so that maximising the next click is not maximising the session: popular items are strong clickbait
    # (appeal_weight 4) and satisfying items refill the budget (refund 2 per fully satisfying click), so a learner
    # that looks ahead beats the myopic oracle without seeing hidden state (benchmarks/README.md, "Tuning history").
    "session": {
        "max_steps": 100,
        "drift_rate": 0.05,
        "boredom_weight": 2.0,
        "boredom_decay": 0.8,
        "appeal_weight": 4.0,
        "no_click_logit": 5.0,
        "satisfaction_threshold": 0.5,
        "initial_budget": 5.0,
        "step_cost": 1.0,
        "budget_refund": 2.0,
    },
}


# The conversation's knobs per setting (rlrec.envs.conversation.ConversationalParams): in the session setting a
# question costs a tenth of a step's patience: enough that asking at every step shortens sessions, not so much
# that every question is ruinous (benchmarks/README.md, "Tuning history").
CONVERSATION_SETTINGS: dict[str, dict[str, Any]] = {"bandit": {}, "session": {"question_cost": 0.1}}


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """How to build a registered environment."""

    id: str
    setting: str
    catalog: str
    slate_size: int
    description: str
    conversational: bool = False  # the recommender may ask about key-terms (rlrec.envs.conversation)


CATALOG_PREFIXES = {"MovieLens": "movielens", "IMDB": "ggplot2movies"}  # id prefix -> built-in catalog
SLATES = {"": 1, "Slate": 5}  # setting suffix -> slate size


def setting_names() -> list[str]:
    """The middle part of the ids: ``Bandit``, ``BanditSlate``, ``Drift``, ..., ``ConversationalSessionSlate``."""
    plain = [f"{setting.capitalize()}{suffix}" for setting in SETTINGS for suffix in SLATES]
    talking = [f"Conversational{'' if setting == 'bandit' else setting.capitalize()}{suffix}"
               for setting in CONVERSATION_SETTINGS for suffix in SLATES]
    return plain + talking


def _specs() -> dict[str, EnvSpec]:
    specs = {}
    for prefix, catalog in CATALOG_PREFIXES.items():
        for setting in SETTINGS:
            for suffix, slate in SLATES.items():
                env_id = f"{prefix}-{setting.capitalize()}{suffix}-v0"
                what = "a slate of 5" if slate > 1 else "one item"
                specs[env_id] = EnvSpec(
                    env_id, setting, catalog, slate, f"{setting} setting on the {catalog} catalog, {what} per step"
                )
        for setting in CONVERSATION_SETTINGS:
            for suffix, slate in SLATES.items():
                middle = "" if setting == "bandit" else setting.capitalize()
                env_id = f"{prefix}-Conversational{middle}{suffix}-v0"
                what = "a slate of 5" if slate > 1 else "one item"
                specs[env_id] = EnvSpec(env_id, setting, catalog, slate, f"{setting} setting on the {catalog} "
                                        f"catalog, {what} per step, and a question about a key-term", True)
    return specs


REGISTRY: dict[str, EnvSpec] = _specs()


def registered_envs() -> list[str]:
    """Ids accepted by :func:`rlrec.make` (and, prefixed with ``rlrec/``, by ``gymnasium.make``)."""
    return sorted(REGISTRY)


def register_gymnasium() -> None:
    """Registers every rlrec environment with Gymnasium under the ``rlrec/`` namespace.

    The entry points are strings, so nothing heavy loads until ``gymnasium.make`` builds an environment.
    """
    import gymnasium

    for env_id in REGISTRY:
        full_id = f"rlrec/{env_id}"
        if full_id in gymnasium.registry:
            continue
        gymnasium.register(
            id=full_id,
            entry_point="rlrec.envs.gym:RecGymEnv",
            vector_entry_point="rlrec.envs.gym:RecVectorEnv",
            kwargs={"env_id": env_id},
        )
