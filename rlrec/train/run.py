"""A training run on disk: config, per-chunk metrics (CSV, TensorBoard), orbax checkpoints, resume, evaluation.

``DIR/config.json`` (what was asked), ``DIR/metrics.csv`` (one row per chunk), ``DIR/checkpoints/<iteration>``
(the whole training carry of every seed: learners, replay buffers, users mid-episode), ``DIR/tensorboard``
when ``tensorboardX`` is installed. A resumed run restores the last checkpoint and continues with the same
per-iteration keys, so it ends with exactly the parameters of an uninterrupted run. Ctrl-C between or during
chunks leaves the last complete checkpoint usable.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from rlrec import _progress
from rlrec.agents import make_agent
from rlrec.agents.base import Frozen
from rlrec.envs.registry import make
from rlrec.errors import InputError, NotAFolderError, PathTakenError
from rlrec.files import TRAIN_FORMAT, FolderLock, atomic_write_text, check_folder_command, package_versions
from rlrec.metrics import check_finite
from rlrec.rollout.driver import join, run_chunks
from rlrec.train.checkpoint import Checkpointer, CheckpointError, check_metadata
from rlrec.train.trainer import Trainer, TrainResult

FORMAT = TRAIN_FORMAT  # config.json says so: rlrec.files.FOLDER_FORMATS


@dataclasses.dataclass
class TrainConfig:
    """What a training run does. Every field is a command-line option of ``rlrec train``.

    Attributes:
        env: registered environment id.
        agent: agent name (``rlrec.agents.AGENTS``); deep agents: dqn, slateq, ppo, reinforce.
        hyperparameters: agent hyperparameters overriding its defaults.
        env_overrides: environment overrides (as ``rlrec.make`` takes them).
        seeds: independent training seeds (vmapped, sharded over devices).
        users: simulated users stepping in parallel per seed (one shared learner).
        iterations: training iterations (each: ``rollout_length`` steps of every user, then one update).
        chunk: iterations per jitted call; one metrics row and one checkpoint per chunk.
        seed: root seed.
    """

    env: str = "MovieLens-Session-v0"
    agent: str = "ppo"
    hyperparameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    env_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    seeds: int = 4
    users: int = 256
    iterations: int = 300
    chunk: int = 25
    seed: int = 0

    def __post_init__(self):
        for name in ("seeds", "users", "iterations", "chunk"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}.")
        if "track_regret" in self.env_overrides:
            raise InputError("track_regret is chosen by the trainer (off while training, on in evaluation).")
        # Checked before anything is built or written: a typo fails in a second, not after the catalog loads.
        from rlrec.agents import AGENTS
        from rlrec.agents.base import check_hyperparameters
        from rlrec.envs.registry import REGISTRY, check_overrides

        if self.env.removeprefix("rlrec/") not in REGISTRY:
            raise InputError(f"Unknown environment {self.env!r}; choose one of {', '.join(sorted(REGISTRY))}.")
        if self.agent not in AGENTS:
            raise InputError(f"Unknown agent {self.agent!r}; choose one of {', '.join(AGENTS)}.")
        check_overrides(self.env, self.env_overrides)
        check_hyperparameters(AGENTS[self.agent][0], dict(AGENTS[self.agent][1], **self.hyperparameters), self.agent)

    def build(self, track_regret: bool = False):
        """``(env, params, agent)`` of this config (the oracle is skipped while training)."""
        env, params = make(self.env, track_regret=track_regret, **self.env_overrides)
        agent = make_agent(self.agent, env, **self.hyperparameters)
        return env, params, agent

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainConfig:
        if data.get("format") != FORMAT:
            raise CheckpointError(f"Run config has format {data.get('format')!r}; this rlrec reads {FORMAT!r}.")
        return cls(**{field.name: data[field.name] for field in dataclasses.fields(cls)})


class _MetricsLog:
    """``metrics.csv`` (rewritten atomically each chunk) and, when tensorboardX is installed, TensorBoard."""

    def __init__(self, directory: Path, start_iteration: int):
        self.path = directory / "metrics.csv"
        self.rows: list[dict[str, Any]] = []
        if start_iteration > 0 and self.path.exists():
            with self.path.open() as handle:
                self.rows = [row for row in csv.DictReader(handle) if int(row["iteration"]) <= start_iteration]
        try:
            from tensorboardX import SummaryWriter

            self.writer = SummaryWriter(str(directory / "tensorboard"), purge_step=start_iteration or None)
        except ImportError:  # optional: CSV is always written
            self.writer = None

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        columns = list(dict.fromkeys(name for each in self.rows for name in each))
        lines = [",".join(columns)] + [",".join(str(each.get(name, "")) for name in columns) for each in self.rows]
        atomic_write_text(self.path, "\n".join(lines) + "\n")
        if self.writer is not None:
            for name, value in row.items():
                if name != "iteration" and isinstance(value, (int, float)):
                    self.writer.add_scalar(name, value, row["iteration"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _row(iteration: int, env_steps: int, outputs: dict[str, np.ndarray], seconds: float, steps: int) -> dict:
    """One metrics row summarising a chunk over seeds and iterations."""
    episodes = float(outputs["episodes"].sum())
    row = {
        "iteration": iteration,
        "env_steps": env_steps,
        "episode_return": float(outputs["return_sum"].sum() / max(episodes, 1.0)),
        "episodes": int(episodes),
        "ctr": float(outputs["reward"].mean()),
    }
    for name, value in outputs.items():
        if name not in ("reward", "episodes", "return_sum"):
            row[name] = float(np.nanmean(value))
    row["env_steps_per_second"] = round(steps / max(seconds, 1e-9), 1)
    return row


def run_training(
    config: TrainConfig, out_dir: str | os.PathLike, *, resume: bool = False, progress: bool | None = True
) -> TrainResult:
    """Trains as ``config`` says, writing config, metrics and checkpoints under ``out_dir``.

    ``progress``: ``True``: a bar where someone watches (a terminal or a notebook; its estimate leaves out the
    first chunk, which also compiles), plain lines on stderr elsewhere (a first one, one every half minute and a
    last one); ``None``: the bar where someone watches, nothing elsewhere; ``False``: nothing.

    Raises:
        FileExistsError: ``out_dir`` already holds a run and ``resume`` is False.
        CheckpointError: ``resume`` with no usable checkpoint, or one written by a different config.
    """
    out_dir = Path(out_dir).expanduser().resolve()  # once, at the edge: checkpoints need an absolute path
    if out_dir.exists() and not out_dir.is_dir():
        raise NotAFolderError(f"{out_dir} is a file, not a folder; choose another --out for the training run.")
    check_folder_command(out_dir, "rlrec train")
    config_path = out_dir / "config.json"
    taken = f"{out_dir} already holds a training run; pass --resume to continue it or choose another --out."
    if config_path.exists() and not resume:
        raise PathTakenError(taken)
    if resume and not config_path.exists():
        raise CheckpointError(f"Nothing to resume in {out_dir} (no config.json); start a new run without --resume.")
    env, params, agent = config.build()
    trainer = Trainer(env, params, agent, num_seeds=config.seeds, num_users=config.users, seed=config.seed)
    # One process trains into a folder at a time: a second run (or resume) of the same folder is refused, naming
    # the holder, instead of interleaving its checkpoints and metrics with the first's.
    with FolderLock(out_dir, "training run"):
        if config_path.exists() and not resume:  # another process started a run here since the check above
            raise PathTakenError(taken)
        return _train_locked(config, out_dir, resume, progress, env, agent, trainer)


def _train_locked(config, out_dir: Path, resume: bool, progress: bool | None, env, agent,
                  trainer: Trainer) -> TrainResult:
    config_path = out_dir / "config.json"
    metadata = config.to_json()
    carry = trainer.init()
    start = 0
    with Checkpointer(out_dir) as checkpointer:
        if resume:
            saved = TrainConfig.from_json(json.loads(config_path.read_text()))
            if dataclasses.replace(saved, iterations=config.iterations) != config:
                different = [
                    f"{field.name}: saved {getattr(saved, field.name)!r}, asked {getattr(config, field.name)!r}"
                    for field in dataclasses.fields(config)
                    if field.name != "iterations" and getattr(saved, field.name) != getattr(config, field.name)
                ]
                raise CheckpointError(
                    f"{out_dir} was trained with a different config ({'; '.join(different)}); resume with the same "
                    "settings (only --iterations may change) or start a new --out."
                )
            atomic_write_text(config_path, json.dumps({**metadata, "versions": package_versions()}, indent=2) + "\n")
            if checkpointer.latest_step() is not None:
                like = jax.eval_shape(lambda: carry)
                carry, _ = checkpointer.restore(like=like)
                carry = jax.device_put(carry, trainer.sharded)
                start = int(np.asarray(carry.iteration)[0])
        else:
            atomic_write_text(config_path, json.dumps({**metadata, "versions": package_versions()}, indent=2) + "\n")
        log = _MetricsLog(out_dir, start)
        display = None
        if _progress.wanted(progress) and start < config.iterations:
            display = _progress.Progress(
                config.iterations, f"training {agent.name} on {env.name}", "it", initial=start,
                announce=(f"iterations {start:,} to {config.iterations:,}" if start
                          else f"{config.iterations:,} iterations") + f", a checkpoint every {config.chunk:,}",
            )
            display.set_status("compiling and running the first chunk")
        started = time.perf_counter()

        def after_chunk(carry, outputs, iteration, seconds):
            # Before anything of this chunk is saved: a NaN loss or reward stops the run, and the last
            # checkpoint (all finite) stays the latest.
            length = next(iter(outputs.values())).shape[1]
            check_finite(outputs, list(outputs), f"training {agent.name} on {env.name}",
                         axes=("seed", "iteration"), offsets=(0, iteration - length + 1))
            steps = trainer.env_steps_per_iteration() * length
            log.add(_row(iteration, trainer.env_steps_per_iteration() * iteration, outputs, seconds, steps))
            checkpointer.save(iteration, carry, metadata)
            return f"episode_return {log.rows[-1]['episode_return']:.2f}"

        try:
            carry, pieces = run_chunks(
                lambda carry, _, length: trainer.advance(carry, length), carry, start=start,
                stop=config.iterations, chunk_size=config.chunk, display=display, first_compiles=True,
                on_chunk=after_chunk,
                summary=lambda seconds: (f"{config.iterations - start:,} iterations in {_progress.duration(seconds)}, "
                                         f"episode_return {log.rows[-1]['episode_return']:.2f}"),
            )
        except KeyboardInterrupt:
            last = checkpointer.latest_step()
            raise KeyboardInterrupt(
                f"Training interrupted; the last complete checkpoint is iteration {last} in {out_dir} "
                "(continue with --resume)."
            ) from None
        finally:
            log.close()
    metrics = join(pieces) if pieces else {}
    return TrainResult(
        agent=agent,
        carry=carry,
        metrics=metrics,
        env_steps=trainer.env_steps_per_iteration() * max(config.iterations - start, 0),
        wall_time=time.perf_counter() - started,
        devices=trainer.devices,
    )


def load_trained(out_dir: str | os.PathLike, step: int | None = None):
    """``(config, env, params, agent, agent_states)`` of a saved run (states: leading seed axis).

    The env is built with the oracle on (for regret in evaluation).
    """
    out_dir = Path(out_dir)
    config_path = out_dir / "config.json"
    if not config_path.exists():
        raise CheckpointError(f"{out_dir} is not a training run (no config.json); pass the --out of `rlrec train`.")
    config = TrainConfig.from_json(json.loads(config_path.read_text()))
    env, params, agent = config.build(track_regret=True)
    trainer = Trainer(env, params, agent, num_seeds=config.seeds, num_users=config.users, seed=config.seed)
    like = jax.eval_shape(trainer.init)
    with Checkpointer(out_dir) as checkpointer:
        # The whole config must match, except how many iterations were asked for (a resumed run may ask more).
        expected = config.to_json()
        check_metadata(checkpointer.metadata(step), expected, keys=[key for key in expected if key != "iterations"])
        carry, _ = checkpointer.restore(step, like=like)
    return config, env, params, agent, carry.agent_state


EVAL_SEEDS = 16  # fresh user streams per trained seed: `rlrec train`'s evaluation and `rlrec evaluate` use both
EVAL_STEPS = 200
EVAL_SEED = 1
EVALUATION_FILE = "evaluation.json"  # the evaluation `rlrec train` ends with, in the run folder


def evaluate(
    out_dir: str | os.PathLike,
    *,
    step: int | None = None,
    num_seeds: int = EVAL_SEEDS,
    num_steps: int = EVAL_STEPS,
    seed: int = EVAL_SEED,
    deterministic: bool | None = None,
) -> dict[str, Any]:
    """Evaluates the learners of a saved run, frozen, on fresh users (personal mode, ``rlrec.run``).

    Deep Q-agents act greedily; policy-gradient agents sample from their policy (``deterministic``
    overrides). Returns per-trained-seed mean episode returns, CTR and regret, and the settings that give them
    (``iteration``, ``num_seeds``, ``num_steps``, ``seed``): the same settings give the same numbers.
    """
    from rlrec.metrics import episode_returns
    from rlrec.rollout.runner import run

    if step is None and (Path(out_dir) / "config.json").exists():  # the latest, named before it is restored
        with Checkpointer(out_dir) as checkpointer:
            step = checkpointer.latest_step()
    config, env, params, agent, states = load_trained(out_dir, step)
    if deterministic is None:
        deterministic = bool(agent.evaluate_greedily)
    rows = []
    for index in range(config.seeds):
        state = jax.tree.map(lambda x: x[index], states)
        frozen = Frozen.of(agent, state, deterministic=deterministic)
        result = run(env, params, frozen, num_seeds=num_seeds, num_steps=num_steps, seed=seed)
        returns = np.concatenate([episode_returns(r, d) for r, d in zip(result.reward, result.done)])
        rows.append(
            {
                "trained_seed": index,
                "episode_return": float(returns.mean()) if returns.size else float("nan"),  # nan: none ended
                "episodes": int(returns.size),
                "ctr": float(result.reward.mean()),
                "regret_per_step": float(result.regret.mean()),
            }
        )
    return {
        "config": dataclasses.asdict(config),
        "iteration": step,
        "num_seeds": num_seeds,
        "num_steps": num_steps,
        "seed": seed,
        "deterministic": deterministic,
        "seeds": rows,
    }
