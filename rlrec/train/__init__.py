"""Training (docs/design.md section 7): ``jit(vmap(scan))`` loops, runs on disk with checkpoints, evaluation.

    from rlrec.train import train
    result = train(env, params, agent, num_iterations=300, num_seeds=4, num_users=256)

``run_training(TrainConfig(...), out_dir)`` (and ``rlrec train``) adds metrics logs, orbax checkpoints and
resume; ``evaluate(out_dir)`` scores a saved run on fresh users.
"""

from rlrec.train.checkpoint import Checkpointer, CheckpointError
from rlrec.train.run import TrainConfig, evaluate, load_trained, run_training
from rlrec.train.trainer import Trainer, TrainResult, train

__all__ = [
    "CheckpointError",
    "Checkpointer",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "evaluate",
    "load_trained",
    "run_training",
    "train",
]
