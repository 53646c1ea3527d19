"""Seeds on devices: the root key's per-seed keys, the device mesh they are sharded over, seed blocks, results.

Seed ``s`` of root seed ``seed`` uses ``fold_in(key(seed), s)``; its first split half starts the users and the
learner, its second half drives the steps (or training iterations), step ``t`` with ``fold_in(half, t)``. So a
run's numbers do not depend on how it is chunked, on how many devices share the seeds, or on resuming.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from rlrec.errors import InputError

# XLA compiler options of the training loop (rlrec.train): XLA's CPU backend hands YNNPACK dots together with the
# element-wise ops and reductions around them by default, and under ``vmap`` over seeds some of those fused
# reductions are far slower than XLA's own loops, so YNNPACK gets only the dots (benchmarks/README.md, "Tuning
# history"). A CPU option: other backends ignore it.
LOOP_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}

# XLA options of rlrec.run's programs: compiling is most of a short run's time, and LLVM optimisation level 1
# (instead of 2) compiles faster with the same numbers, bit for bit (benchmarks/README.md, "Tuning history").
RUNNER_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}


def seed_mesh(num_seeds: int) -> Mesh:
    """A 1-D mesh over the devices that divide the seed batch (all of them when they do).

    With several processes (``jax.distributed``) every process must hold seeds (each runs the program and
    gathers the results), so the mesh takes the same number of devices from each process.
    """
    devices = jax.devices()
    processes = jax.process_count()
    if processes == 1:
        usable = max(d for d in range(1, len(devices) + 1) if num_seeds % d == 0)
        return Mesh(np.array(devices[:usable]), ("seeds",))
    by_process = [[d for d in devices if d.process_index == p] for p in range(processes)]
    local = min(len(group) for group in by_process)
    per_process = [n for n in range(1, local + 1) if num_seeds % (n * processes) == 0]
    if not per_process:
        raise InputError(
            f"With {processes} processes num_seeds must be a multiple of {processes} (every process runs an equal "
            f"share of the seeds), got {num_seeds}."
        )
    return Mesh(np.array([d for group in by_process for d in group[: max(per_process)]]), ("seeds",))


class SeedPlacement:
    """The seeds of one run on their devices: ``mesh``, the per-seed ``keys`` (sharded) and how to place data.

    ``seeds``: the seed index of each row (default ``0..num_seeds-1``); rows may repeat a seed (pinned users run
    every user with the same seeds).
    """

    def __init__(self, seed: int, num_seeds: int, seeds: np.ndarray | None = None):
        self.mesh = seed_mesh(num_seeds)
        self.sharded = NamedSharding(self.mesh, PartitionSpec("seeds"))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        root = jax.random.key(seed)
        indices = jnp.arange(num_seeds) if seeds is None else jnp.asarray(seeds)
        keys = jax.vmap(lambda s: jax.random.fold_in(root, s))(indices)
        # Typed keys as their raw uint32 data: with several processes (jax.distributed) device_put only places
        # plain arrays on a mesh spanning other processes' devices.
        self.keys = jax.random.wrap_key_data(
            jax.device_put(jax.random.key_data(keys), self.sharded), impl=jax.random.key_impl(keys)
        )

    @property
    def devices(self) -> list[str]:
        return [str(device) for device in self.mesh.devices.ravel()]

    def shard(self, tree):
        """``tree`` with its leading (seed) axis split over the devices."""
        return jax.device_put(tree, self.sharded)

    def replicate(self, tree):
        """``tree`` whole on every device (params, the agent)."""
        return jax.device_put(tree, self.replicated)


def stream_keys(seed_key: jax.Array, start, length: int) -> jax.Array:
    """Keys of steps (or iterations) ``start .. start + length - 1`` of one seed."""
    _, stream_key = jax.random.split(seed_key)  # the first half started the users and the learner
    return jax.vmap(lambda t: jax.random.fold_in(stream_key, t))(start + jnp.arange(length))


def init_key(seed_key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(env_key, agent_key)`` that start one seed's users and learner."""
    first, _ = jax.random.split(seed_key)  # the second half drives the steps
    return jax.random.split(first)


def in_seed_blocks(batched, args, block: int):
    """``batched(*args)`` over the leading (seed) axis, ``block`` seeds at a time (``lax.scan`` over blocks).

    Each block's arrays stay in the CPU's caches: the catalog-sized per-seed arrays of a whole batch (e.g. 1,024
    seeds x 9,066 item scores, 37 MB per array) do not, and then every elementwise pass runs at memory speed.
    Same numbers either way (tested): each seed's computation is unchanged, and blocks hold at least 8 seeds
    (with 4, XLA's CPU code vectorised some float reductions differently and the last bit of a regret changed).
    ``block`` of 0, or not smaller than the batch and dividing it, is one call.
    """
    count = jax.tree.leaves(args)[0].shape[0]
    if block <= 0 or block >= count or count % block:
        return batched(*args)
    blocks = count // block
    split = jax.tree.map(lambda x: x.reshape((blocks, block) + x.shape[1:]), args)
    _, outputs = jax.lax.scan(lambda _, block_args: (None, batched(*block_args)), None, split)
    return jax.tree.map(lambda x: x.reshape((count,) + x.shape[2:]), outputs)


# Per-seed arrays of about this many floats per block of seeds (4 MB: half of a small CPU's caches).
_BLOCK_FLOATS = 1 << 20


def seed_block(num_items: int, users: int, num_seeds: int, devices: int) -> int:
    """Seeds per block on a single CPU device (0: no blocks; accelerators want the widest batch)."""
    if devices > 1 or jax.default_backend() != "cpu":
        return 0
    block = 1 << max(int(np.log2(max(_BLOCK_FLOATS // max(num_items * users, 1), 1))), 3)
    block = min(block, 1024)
    while num_seeds % block and block > 8:
        block //= 2
    return block if block < num_seeds and num_seeds % block == 0 else 0


def fetch(array: jax.Array) -> np.ndarray:
    """A (possibly sharded) result as one host array; with several processes (``jax.distributed``) every
    process gathers the shards of all of them."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(array, tiled=True))
    return np.asarray(array)
