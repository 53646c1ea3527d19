"""One process of the multi-host check in test_multihost.py (a script the test launches; pytest does not collect it).

    python tests/multihost_worker.py RESULT.npz SUITE_DIR [--coordinator HOST:PORT --processes N --process-id I]

With ``--processes`` > 1 it first joins a ``jax.distributed`` job (CPU collectives over gloo); with the default
of 1 it is an ordinary single process. Either way it then makes the same calls: ``rlrec.run`` of LinUCB on a
small synthetic env in personal and shared mode, and a tiny benchmark suite into SUITE_DIR. It saves to
RESULT.npz every per-step array (``run/...``), the suite's cells and summary (``suite/...``) and facts about
the topology it ran on (``meta/...``) for the test to compare.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

RUN_FIELDS = ("reward", "regret", "expected_reward", "oracle_expected_reward", "precision", "recall", "ndcg",
              "diversity", "done", "slates")
RUNS = {"personal": {}, "shared": {"mode": "shared", "num_users": 8}}  # name -> extra rlrec.run arguments
SEEDS, STEPS = 4, 30
MESH_SEEDS = (1, 2, 3, 4)  # seed counts whose mesh is recorded


def join(coordinator: str, processes: int, process_id: int) -> None:
    """Joins the ``jax.distributed`` job; must come before anything touches a JAX backend."""
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # already the default in jax 0.10
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=processes, process_id=process_id,
                               initialization_timeout=120)


def synthetic_env():
    """A 50-item, 6-prototype MovieLens-Bandit env built from random arrays (no language model)."""
    import rlrec
    from rlrec.data import Catalog
    from rlrec.simulators.population import Population

    rng = np.random.default_rng(0)
    catalog = Catalog.from_arrays(rng.normal(size=(50, 8)), popularity=rng.integers(1, 100, 50),
                                  quality=rng.normal(size=50))
    interests = rng.normal(size=(6, 8))
    population = Population.from_arrays(interests, requests=interests[:, None, :] + 0.5 * rng.normal(size=(6, 2, 8)))
    return rlrec.make("MovieLens-Bandit-v0", catalog=catalog, population=population)


def run_arrays() -> dict[str, np.ndarray]:
    """``run/<mode>/<field>``: the per-step arrays of LinUCB on the synthetic env, in each mode."""
    import rlrec
    from rlrec.agents import make_agent

    env, params = synthetic_env()
    agent = make_agent("linucb", env)
    arrays = {}
    for name, extra in RUNS.items():
        result = rlrec.run(env, params, agent, num_seeds=SEEDS, num_steps=STEPS, **extra)
        arrays.update({f"run/{name}/{field}": getattr(result, field) for field in RUN_FIELDS})
        arrays[f"meta/devices/{name}"] = np.asarray(json.dumps(result.devices))
    return arrays


def suite_arrays(out: Path) -> dict[str, np.ndarray]:
    """``suite/cell/...`` (per-seed metrics, regret curves) and ``suite/summary/...`` (mean, half-width)."""
    from rlrec.bench import Suite, run_suite

    suite = Suite(name="mh", envs=("MovieLens-Bandit-v0",), agents=("random", "linucb"), seeds=SEEDS, steps=20)
    result = run_suite(suite, out, progress=False)
    arrays = {}
    for cell in result.cells:
        prefix = f"suite/cell/{cell.env}/{cell.agent}"
        arrays[f"{prefix}/cumulative_regret"] = cell.cumulative_regret
        arrays.update({f"{prefix}/metric/{name}": values for name, values in cell.metrics.items()})
    for (env, agent), intervals in result.summary().items():
        arrays.update({f"suite/summary/{env}/{agent}/{name}": np.asarray(pair) for name, pair in intervals.items()})
    return arrays


def topology() -> dict[str, np.ndarray]:
    """``meta/...``: process count and index, and which processes each seed count's mesh spans (or its error)."""
    import jax

    from rlrec.rollout.seeds import seed_mesh

    meshes = {}
    for seeds in MESH_SEEDS:
        try:
            meshes[seeds] = sorted({device.process_index for device in seed_mesh(seeds).devices.flat})
        except ValueError as error:
            meshes[seeds] = str(error)
    return {
        "meta/process_count": np.asarray(jax.process_count()),
        "meta/process_index": np.asarray(jax.process_index()),
        "meta/mesh": np.asarray(json.dumps(meshes)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("result", type=Path, help="where to save the arrays (.npz)")
    parser.add_argument("suite_out", type=Path, help="the suite's run folder")
    parser.add_argument("--coordinator", default="", help="HOST:PORT of process 0's coordinator")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--process-id", type=int, default=0)
    args = parser.parse_args()
    if args.processes > 1:
        join(args.coordinator, args.processes, args.process_id)
    arrays = {**run_arrays(), **suite_arrays(args.suite_out), **topology()}
    np.savez(args.result, **arrays)


if __name__ == "__main__":
    main()
