"""Save an environment (static config + params) to one ``.npz`` and load it back, with no LM or catalog.

Useful to ship an exact environment to another machine (an accelerator without the language model, a
colleague) or to pin the environment of a published result.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from rlrec.envs.conversation import ConversationalEnv, ConversationalParams
from rlrec.envs.recsys import EnvParams, RecEnv
from rlrec.errors import InputError, MissingPathError
from rlrec.lm import atomic_save_npz

FORMAT = "rlrec-env-v1"
PLAIN, CONVERSATIONAL = "plain", "conversational"
_CLASSES = {PLAIN: (RecEnv, EnvParams), CONVERSATIONAL: (ConversationalEnv, ConversationalParams)}


def save_env(path: str | os.PathLike, env: RecEnv, params: EnvParams) -> Path:
    """Writes ``env`` and ``params`` to ``path`` (``.npz``, atomically)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise InputError(f"Environment snapshots are .npz files; got {path}.")
    # The env's settings (its catalog reference is not one: the params hold what the env needs of it).
    config = {"format": FORMAT, "env": {f.name: getattr(env, f.name) for f in dataclasses.fields(env) if f.compare}}
    if isinstance(env, ConversationalEnv):  # older snapshots have no kind: a plain RecEnv
        config["kind"] = CONVERSATIONAL
    arrays = {f"params.{field.name}": np.asarray(getattr(params, field.name)) for field in dataclasses.fields(params)}
    atomic_save_npz(path, config=np.asarray(json.dumps(config)), **arrays)
    return path


def load_env(path: str | os.PathLike) -> tuple[RecEnv, EnvParams]:
    """Reads a snapshot written by :func:`save_env`."""
    path = Path(path)
    if not path.is_file():
        raise MissingPathError(f"No environment snapshot at {path}.")
    with np.load(path) as contents:
        try:
            config = json.loads(str(contents["config"]))
        except KeyError as error:
            raise InputError(f"{path} is not an rlrec environment snapshot (no config entry).") from error
        if config.get("format") != FORMAT:
            raise InputError(f"{path} has snapshot format {config.get('format')!r}; this rlrec reads {FORMAT!r}.")
        env_class, params_class = _CLASSES[config.get("kind", PLAIN)]
        fields = {field.name for field in dataclasses.fields(params_class)}
        stored = {name.removeprefix("params."): contents[name] for name in contents.files if name.startswith("params.")}
        if set(stored) != fields:
            raise InputError(
                f"{path} does not match this rlrec's {params_class.__name__} (missing {sorted(fields - set(stored))}, "
                f"unknown {sorted(set(stored) - fields)})."
            )
        params = params_class(**{name: jnp.asarray(value) for name, value in stored.items()})
    return env_class(**config["env"]), params
