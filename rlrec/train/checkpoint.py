"""Checkpoints of a training run: a state pytree plus the run's metadata, saved with orbax under ``DIR/checkpoints``.

Layout: ``DIR/checkpoints/<step>/state`` (orbax ``StandardSave`` of the state) and
``DIR/checkpoints/<step>/manifest`` (JSON: the run metadata and the path, shape and dtype of every state leaf).
The manifest lets :meth:`Checkpointer.restore` name the leaf that does not fit a template before orbax reads
any array. Typed PRNG keys (``jax.random.key``) are stored as their key data and rewrapped on restore.

Saves are synchronous and atomic: orbax writes ``<step>.orbax-checkpoint-tmp`` and renames it to ``<step>``
only when complete, so an interrupted save leaves the previous checkpoints intact, and orbax never lists a
temporary directory as a step.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint.path import atomicity_types

from rlrec.errors import InputError, UserInputError

PyTree = Any
FORMAT = "rlrec-checkpoint-v1"
_MAX_PROBLEMS = 5
_MISSING = "<missing>"


class CheckpointError(UserInputError):
    """A checkpoint is missing, unreadable, or does not match what the caller expects."""


def _is_key(leaf: Any) -> bool:
    dtype = getattr(leaf, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _storable(leaf: Any) -> Any:
    """A leaf as orbax stores it: typed PRNG keys as their ``uint32`` key data, NumPy scalars as 0-d arrays."""
    if not _is_key(leaf):
        return np.asarray(leaf) if isinstance(leaf, np.generic) else leaf  # orbax restores no NumPy scalars
    if isinstance(leaf, jax.ShapeDtypeStruct):
        return jax.eval_shape(jax.random.key_data, leaf)
    return jax.random.key_data(leaf)


def _describe_leaves(tree: PyTree) -> dict[str, dict[str, Any]]:
    """Maps each leaf's path (``jax.tree_util.keystr``) to its shape and dtype, as stored in the manifest."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {
        jax.tree_util.keystr(path): {
            "shape": list(np.shape(leaf)),
            # Not `leaf.dtype or ...`: a NumPy dtype is falsy (it has no fields).
            "dtype": str(leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype),
        }
        for path, leaf in leaves
    }


def _spec(leaf: dict[str, Any]) -> str:
    """``float32[4,64]``: a manifest entry in JAX's shape notation."""
    return f"{leaf['dtype']}[{','.join(map(str, leaf['shape']))}]"


def _as_json(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """``metadata`` as it reads back from JSON (tuples become lists, keys strings)."""
    try:
        return json.loads(json.dumps(dict(metadata)))
    except (TypeError, ValueError) as error:
        raise CheckpointError(
            f"Checkpoint metadata must be JSON-serialisable ({error}). Pass plain str/int/float/bool/list/dict "
            "values, e.g. dataclasses.asdict(config)."
        ) from error


def _flatten(metadata: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> ``{"a.b": value}``, so that mismatches name the innermost differing key."""
    flat: dict[str, Any] = {}
    for key, value in metadata.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_metadata(saved: Mapping[str, Any], expected: Mapping[str, Any], keys: Iterable[str] | None = None) -> None:
    """Raises if the metadata saved with a checkpoint differs from this run's on the given keys.

    Values are compared as they read back from JSON, and nested dicts key by key (``"agent.hidden"``).

    Args:
        saved: Metadata returned by :meth:`Checkpointer.restore` or :meth:`Checkpointer.metadata`.
        expected: Metadata of the run that wants to resume.
        keys: Top-level or dotted keys to compare (a key covers everything nested under it); all keys of
            ``expected`` when None.

    Raises:
        CheckpointError: Listing each differing key with its saved and expected value.
    """
    saved_flat, expected_json = _flatten(_as_json(saved)), _as_json(expected)
    expected_flat = _flatten(expected_json)
    wanted = list(expected_json) if keys is None else list(keys)
    compared = {
        key
        for key in {*saved_flat, *expected_flat}
        if any(key == prefix or key.startswith(f"{prefix}.") for prefix in wanted)
    }
    differing = sorted(key for key in compared if saved_flat.get(key, _MISSING) != expected_flat.get(key, _MISSING))
    if differing:
        lines = "; ".join(
            f"{key}: saved {saved_flat.get(key, _MISSING)!r}, expected {expected_flat.get(key, _MISSING)!r}"
            for key in differing
        )
        raise CheckpointError(
            f"Checkpoint metadata does not match this run on {len(differing)} key(s): {lines}. Resume with the "
            "saved configuration, or start a new run directory for the new one."
        )


class Checkpointer:
    """Saves and restores ``(state, metadata)`` checkpoints of one run under ``run_dir/checkpoints/<step>``.

    Not thread-safe and one writer per directory (like orbax's ``CheckpointManager``); any number of readers.

    Example::

        with Checkpointer(run_dir) as checkpointer:
            if checkpointer.latest_step() is not None:
                state, metadata = checkpointer.restore(like=init_state, expect=config)
            checkpointer.save(step, state, config)
    """

    def __init__(self, run_dir: str | os.PathLike, max_to_keep: int = 3):
        """Opens (without creating) the checkpoint directory of a run.

        Args:
            run_dir: The run directory; checkpoints live in its ``checkpoints`` subdirectory.
            max_to_keep: How many of the latest checkpoints to keep; older ones are deleted after each save.

        Raises:
            ValueError: If ``max_to_keep`` is below 1.
        """
        if max_to_keep < 1:
            raise InputError(f"max_to_keep must be at least 1; got {max_to_keep}.")
        # Absolute once, here: orbax refuses relative paths, and a path resolved later could point elsewhere if
        # the working directory changed.
        self.directory = Path(run_dir).expanduser().resolve() / "checkpoints"
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, enable_async_checkpointing=False, create=False)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def all_steps(self) -> list[int]:
        """Steps of the complete checkpoints on disk, ascending (temporary directories excluded)."""
        self._manager.reload()
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        """The highest saved step, or None when the directory holds no checkpoint."""
        steps = self.all_steps()
        return steps[-1] if steps else None

    def save(self, step: int, state: PyTree, metadata: Mapping[str, Any]) -> Path:
        """Writes a checkpoint and returns only when it is complete on disk.

        Temporary directories left by interrupted saves are deleted first; then orbax deletes the checkpoints
        beyond ``max_to_keep``, only after the new one is in place.

        Args:
            step: Training step; must be higher than every saved step.
            state: A pytree container (dict, ``flax.struct`` dataclass, ...) of arrays, typed PRNG keys and
                Python scalars.
            metadata: JSON-serialisable run configuration (env id, agent name, hyperparameters, seeds).

        Returns:
            The checkpoint's directory, ``run_dir/checkpoints/<step>``.

        Raises:
            CheckpointError: If ``step`` is not after the latest saved step, or the metadata is not JSON.
        """
        latest = self.latest_step()
        if latest is not None and step <= latest:
            raise CheckpointError(
                f"Cannot save step {step} in {self.directory}: it already holds step {latest}, and steps must "
                "increase. Resume from the latest step, or delete the later step directories to branch off."
            )
        manifest = {"format": FORMAT, "metadata": _as_json(metadata), "leaves": _describe_leaves(state)}
        self._remove_interrupted_saves()
        saved = self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(jax.tree.map(_storable, state)), manifest=ocp.args.JsonSave(manifest)
            ),
            force=True,  # never skip silently: orbax's save-interval policy returns False instead of raising
        )
        self._manager.wait_until_finished()
        if not saved:
            raise CheckpointError(f"orbax declined to save step {step} in {self.directory}.")
        return self.directory / str(step)

    def metadata(self, step: int | None = None) -> dict[str, Any]:
        """The metadata saved with a checkpoint, e.g. to rebuild the agent before :meth:`restore`.

        Args:
            step: Step to read; the latest when None.

        Raises:
            CheckpointError: If there is no such checkpoint or it is unreadable.
        """
        return self._read_manifest(self._resolve_step(step))["metadata"]

    def restore(
        self, step: int | None = None, *, like: PyTree, expect: Mapping[str, Any] | None = None
    ) -> tuple[PyTree, dict[str, Any]]:
        """Reads a checkpoint into the structure, shapes and dtypes of ``like``.

        Args:
            step: Step to restore; the latest when None.
            like: Template state, e.g. a freshly initialised one (concrete arrays or ``jax.ShapeDtypeStruct``).
                Restored arrays take its shardings.
            expect: If given, :func:`check_metadata` checks the saved metadata against it on its keys first.

        Returns:
            ``(state, metadata)``: the state with the treedef of ``like``, and the saved metadata.

        Raises:
            CheckpointError: If there is no such checkpoint, it is unreadable, its metadata differs from
                ``expect``, or its leaves differ from ``like`` in path, shape or dtype.
        """
        step = self._resolve_step(step)
        manifest = self._read_manifest(step)
        if expect is not None:
            check_metadata(manifest["metadata"], expect)
        self._check_leaves(step, manifest, like)
        target = jax.tree.map(_storable, like)
        try:
            args = ocp.args.Composite(state=ocp.args.StandardRestore(target))
            restored = self._manager.restore(step, args=args).state
        except Exception as error:  # orbax and tensorstore raise many types for unreadable files
            raise self._unreadable(step, error) from error
        state = jax.tree.map(
            lambda template, leaf: jax.random.wrap_key_data(leaf, dtype=template.dtype) if _is_key(template) else leaf,
            like,
            restored,
        )
        return state, manifest["metadata"]

    def close(self) -> None:
        """Releases orbax's resources."""
        self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _remove_interrupted_saves(self) -> None:
        """Deletes the temporary directories of saves that never finished (done at save time, not on open,
        so that a reader opened during another process's save does not delete that save)."""
        if self.directory.is_dir():
            for path in self.directory.glob(f"*{atomicity_types.TMP_DIR_SUFFIX}*"):
                shutil.rmtree(path, ignore_errors=True)

    def _resolve_step(self, step: int | None) -> int:
        steps = self.all_steps()
        if not steps:
            raise CheckpointError(
                f"No checkpoints in {self.directory}. Check the run directory (checkpoints are saved under "
                "<run_dir>/checkpoints/<step>), or start training from scratch."
            )
        if step is None:
            return steps[-1]
        if step not in steps:
            raise CheckpointError(f"No checkpoint for step {step} in {self.directory}; saved steps are {steps}.")
        return step

    def _unreadable(self, step: int, error: BaseException) -> CheckpointError:
        """The error for a checkpoint that could not be read. It never advises deleting anything: the files may be
        fine and the cause elsewhere (a version of orbax that reads them differently, a filesystem problem)."""
        step_dir = self.directory / str(step)
        earlier = [other for other in self.all_steps() if other < step]
        fallback = f" To go on from an earlier checkpoint instead, pass its step (saved: {earlier})." if earlier else ""
        reason = (str(error).strip().splitlines() or [""])[0][:300]
        return CheckpointError(
            f"Could not read checkpoint {step_dir} ({type(error).__name__}: {reason}). Check that the folder is "
            f"complete and readable and that this rlrec and orbax-checkpoint are the versions that wrote it (see the "
            f"run's config.json).{fallback}"
        )

    def _read_manifest(self, step: int) -> dict[str, Any]:
        try:
            manifest = self._manager.restore(step, args=ocp.args.Composite(manifest=ocp.args.JsonRestore())).manifest
        except Exception as error:
            raise self._unreadable(step, error) from error
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
            raise self._unreadable(step, ValueError(f"manifest format is {found!r}, this rlrec reads {FORMAT!r}"))
        return manifest

    def _check_leaves(self, step: int, manifest: dict[str, Any], like: PyTree) -> None:
        """Raises naming the leaves where the checkpoint and the template differ in path, shape or dtype."""
        saved, wanted = manifest["leaves"], _describe_leaves(like)
        problems = [
            f"leaf {path} is {_spec(saved[path])} in the checkpoint but {_spec(wanted[path])} in the template"
            for path in wanted
            if path in saved and saved[path] != wanted[path]
        ]
        if only_saved := sorted(set(saved) - set(wanted)):
            problems.append(f"leaves only in the checkpoint: {', '.join(only_saved)}")
        if only_wanted := sorted(set(wanted) - set(saved)):
            problems.append(f"leaves only in the template: {', '.join(only_wanted)}")
        if problems:
            more = f"; and {len(problems) - _MAX_PROBLEMS} more" if len(problems) > _MAX_PROBLEMS else ""
            raise CheckpointError(
                f"Checkpoint {self.directory / str(step)} does not fit the template: "
                f"{'; '.join(problems[:_MAX_PROBLEMS])}{more}. The checkpoint was written with metadata "
                f"{json.dumps(manifest['metadata'], sort_keys=True)[:500]}; build the template from that "
                "configuration (Checkpointer.metadata() reads it, check_metadata() compares it with yours), or "
                "start a new run directory."
            )
