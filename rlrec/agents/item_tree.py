"""The item tree: a hierarchical item policy over catalogs of any size, and its kernels.

A softmax over all ``N`` items costs ``O(N d)`` per step and per gradient. Policy-gradient agents instead use
a balanced **item tree** (:func:`build_item_tree`): ``C ~ sqrt(N)`` leaves of similar items; the policy picks a
leaf (scored by its centroid, :func:`centroid_scores`) and then an item within it (:func:`leaf_item_scores`;
hierarchical softmax, Morin & Bengio 2005), so acting and learning cost ``O((C + N / C) d)``. A batch of users
is scored leaf by leaf (:func:`leaf_item_scores` groups the users who chose the same leaf), which keeps the work
in matrix products rather than per-user gathers. DQN uses the same tree for its beam-search argmax.

Scores are those of :func:`rlrec.agents.networks.score_items` (the user tower dotted with item features),
computed from the tree's tables. The kernels below are shaped for XLA's CPU backend; two of them,
:func:`in_blocks` and :func:`packed_argsort`, also serve the deep agents' features and shuffling
(:mod:`rlrec.agents.deep`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct

from rlrec.envs.recsys import bandit_features
from rlrec.errors import InputError

# Logit of padding (and of items already chosen for a slate): finite, so gradients stay finite (0 * -inf is NaN).
MASKED = -1e9


# -- item tree (hierarchical softmax) ---------------------------------------------------------------------


@struct.dataclass
class ItemTree:
    """A balanced partition of the catalog into ``C`` leaves of ``L`` similar items (``C L >= N``).

    Attributes:
        leaves: int32 ``(C, L)`` item ids per leaf, ``-1`` for padding (only the last leaf is padded).
        leaf_of: int32 ``(N,)`` the leaf of each item.
        slot_of: int32 ``(N,)`` the item's position within its leaf.
        centroid_features: ``(C, d + 2)`` mean item features per leaf.
        centroid_embeddings: ``(C, d)`` mean item embeddings per leaf.
        leaf_features: ``(C, L, d + 2)`` the items' features laid out leaf by leaf (zeros for padding), so a
            policy reads one contiguous block per user instead of gathering ``L`` scattered rows.
        leaf_embeddings: ``(C, L, d)`` likewise for the embeddings.
        leaf_features_t: ``(C, d + 2, L)``, ``leaf_features`` transposed: the layout in which XLA's CPU backend
            multiplies a group of users' queries by a leaf's items fastest (the contracted axis first); see
            ``_group_products``.
        leaf_embeddings_t: ``(C, d, L)`` likewise for the embeddings.
    """

    leaves: jax.Array
    leaf_of: jax.Array
    slot_of: jax.Array
    centroid_features: jax.Array
    centroid_embeddings: jax.Array
    leaf_features: jax.Array
    leaf_embeddings: jax.Array
    leaf_features_t: jax.Array
    leaf_embeddings_t: jax.Array


def tree_shape(num_items: int, min_leaf_size: int = 1, num_leaves: int = 0) -> tuple[int, int]:
    """``(C, L)``: ``C`` a power of two near ``sqrt(N)`` with leaves of at least ``min_leaf_size`` items.

    ``num_leaves > 0`` asks for that many leaves instead (a power of two, leaving ``min_leaf_size`` items per
    leaf): fewer, larger leaves cost less to pick among and more to pick within.
    """
    if num_leaves:
        size = math.ceil(num_items / num_leaves)
        last = num_items - (num_leaves - 1) * size  # items in the last leaf, which holds the padding
        if num_leaves < 1 or num_leaves & (num_leaves - 1):
            problem = "the number of leaves must be a power of two"
        elif last < max(min_leaf_size, 1):
            problem = (
                f"{num_leaves} leaves of {size} slots leave {num_leaves * size - num_items} slots empty, and they must "
                f"all fit in the last leaf while it keeps at least {max(min_leaf_size, 1)} item(s)"
            )
        else:
            return num_leaves, size
        raise InputError(
            f"An item tree of {num_items} items cannot have {num_leaves} leaves: {problem}. Use fewer leaves (a power "
            f"of two), or 0 for about sqrt(N) = {2 ** tree_depth(num_items)}."
        )
    depth = tree_depth(num_items)
    while depth > 0 and math.ceil(num_items / 2**depth) < min_leaf_size:
        depth -= 1
    leaves = 2**depth
    return leaves, math.ceil(num_items / leaves)


def tree_depth(num_items: int) -> int:
    """Depth of the default tree: ``2^depth`` is the power of two nearest ``sqrt(N)``."""
    return max(0, round(math.log2(math.sqrt(num_items))))


def build_item_tree(
    env_params, min_leaf_size: int = 1, power_iterations: int = 8, num_leaves: int = 0
) -> ItemTree:
    """Balanced principal-direction tree over the item embeddings (pure JAX, ``O(N log N)``).

    Each level splits every group at the median of its items' projection on the group's principal direction
    (power iteration), so leaves hold ``L`` neighbouring items; padding sorts last, into the final leaf.
    Deterministic (no randomness), so every seed builds the same tree.
    """
    embeddings = env_params.item_features
    num_items, _ = embeddings.shape
    num_leaves, leaf_size = tree_shape(num_items, min_leaf_size, num_leaves)
    padded = num_leaves * leaf_size
    order = jnp.arange(padded, dtype=jnp.int32)

    def split(group):
        valid = group < num_items
        points = jnp.where(valid[:, None], embeddings[jnp.minimum(group, num_items - 1)], 0.0)
        centre = jnp.sum(points, 0) / jnp.maximum(jnp.sum(valid), 1)
        centred = jnp.where(valid[:, None], points - centre, 0.0)
        direction = jnp.ones(centred.shape[1]) / math.sqrt(centred.shape[1])

        def iterate(_, v):
            v = centred.T @ (centred @ v)
            return v / jnp.maximum(jnp.linalg.norm(v), 1e-12)

        direction = jax.lax.fori_loop(0, power_iterations, iterate, direction)
        projection = jnp.where(valid, centred @ direction, jnp.inf)
        return group[jnp.argsort(projection, stable=True)]

    for level in range(int(math.log2(num_leaves))):
        order = jax.vmap(split)(order.reshape(2**level, -1)).reshape(-1)
    leaves = jnp.where(order < num_items, order, -1).reshape(num_leaves, leaf_size)
    positions = jnp.arange(padded, dtype=jnp.int32)
    target = jnp.where(order < num_items, order, num_items)  # padding scatters out of range: dropped
    leaf_of = jnp.zeros(num_items, jnp.int32).at[target].set(positions // leaf_size, mode="drop")
    slot_of = jnp.zeros(num_items, jnp.int32).at[target].set(positions % leaf_size, mode="drop")
    mask = (leaves >= 0)[..., None]
    counts = jnp.maximum(jnp.sum(mask, axis=1), 1)
    features = bandit_features(env_params)
    leaf_features = jnp.where(mask, features[jnp.maximum(leaves, 0)], 0.0)
    leaf_embeddings = jnp.where(mask, embeddings[jnp.maximum(leaves, 0)], 0.0)
    centroid_features = jnp.sum(leaf_features, axis=1) / counts
    centroid_embeddings = jnp.sum(leaf_embeddings, axis=1) / counts
    return ItemTree(
        leaves, leaf_of, slot_of, centroid_features, centroid_embeddings, leaf_features, leaf_embeddings,
        jnp.swapaxes(leaf_features, 1, 2), jnp.swapaxes(leaf_embeddings, 1, 2),
    )


# -- scores of leaves and of a leaf's items ---------------------------------------------------------------


def _valid_items(tree: "ItemTree", leaves: jax.Array) -> jax.Array:
    """``(B, L)`` whether each slot of leaf ``leaves[b]`` holds an item (only the last leaf is padded)."""
    sizes = jnp.sum(tree.leaves >= 0, axis=1)
    return jnp.arange(tree.leaves.shape[1]) < sizes[leaves][:, None]


def leaf_item_similarity(tree: "ItemTree", memory: jax.Array, leaves: jax.Array) -> jax.Array:
    """``(B, L)`` boredom term ``relu(<memory_b, e_i>)`` of the items of leaf ``leaves[b]`` (0 for padding).

    It has no parameters, so policy-gradient agents compute it once when acting and keep it for the update.
    """
    products = _leaf_products(tree, tree.leaf_embeddings, tree.leaf_embeddings_t, memory, leaves)
    return jnp.where(_valid_items(tree, leaves), jax.nn.relu(products), 0.0)


def leaf_item_scores(
    tree: "ItemTree", head: dict[str, jax.Array], similarity: jax.Array, leaves: jax.Array
) -> jax.Array:
    """``(B, L)`` scores of the items of leaf ``leaves[b]`` for a batch of users (``MASKED`` for padding).

    ``head`` holds one head per user (``query (B, d + 2)``, ``boredom (B,)``, ``bias (B,)``); ``similarity``
    is :func:`leaf_item_similarity` of the same users and leaves. Same scores as
    :func:`~rlrec.agents.networks.score_items`.
    """
    products = _leaf_products(tree, tree.leaf_features, tree.leaf_features_t, head["query"], leaves)
    scores = products - head["boredom"][:, None] * similarity + head["bias"][:, None]
    return jnp.where(_valid_items(tree, leaves), scores, MASKED)


def centroid_similarity(tree: "ItemTree", memory: jax.Array) -> jax.Array:
    """``(..., C)`` boredom term ``relu(<memory, centroid embedding>)`` of every leaf (no parameters)."""
    return jax.nn.relu(memory @ tree.centroid_embeddings.T)


def centroid_scores(tree: "ItemTree", head: dict[str, jax.Array], similarity: jax.Array) -> jax.Array:
    """``(..., C)`` scores of every leaf's centroid (:func:`~rlrec.agents.networks.score_items` with
    :func:`centroid_similarity`)."""
    features = head["query"] @ tree.centroid_features.T
    return features - head["boredom"][..., None] * similarity + head["bias"][..., None]


# -- kernels (shaped for XLA's CPU backend) ---------------------------------------------------------------


# Batches of users score the items of their chosen leaves in groups of at most LEAF_GROUP users sharing a leaf,
# or, when smaller than the number of leaves, in blocks of LEAF_CHUNK users (see _leaf_products).
LEAF_GROUP = 16
LEAF_CHUNK = 128


def leaf_group_size(batch: int, num_leaves: int) -> int:
    """Users per group in :func:`_leaf_products`: about the users per leaf, a power of two in ``[4, LEAF_GROUP]``.

    Each leaf's last group is padded, so groups much larger than a leaf's share of the batch multiply mostly
    zeros; where many users share a leaf, larger groups gather its block fewer times, into larger products.
    """
    per_leaf = max(batch // max(num_leaves, 1), 1)
    return int(min(max(1 << (per_leaf.bit_length() - 1), 4), LEAF_GROUP))


def in_blocks(one, inputs, chunk_size: int) -> jax.Array:
    """``one`` mapped over the leading axis of ``inputs`` in blocks of ``chunk_size`` users, its gathers redone in
    the backward pass (``jax.checkpoint``) rather than kept (XLA's CPU backend materialises a batched gather's
    whole output; in blocks it stays in cache)."""
    size = jax.tree.leaves(inputs)[0].shape[0]
    return jax.lax.map(jax.checkpoint(one), inputs, batch_size=min(chunk_size, size))


def packed_argsort(keys: jax.Array, key_bits: int) -> jax.Array:
    """Indices that sort unsigned ``keys`` (each below ``2^key_bits``), ties kept in index order.

    One sort of ``uint32`` words holding the key above the index: XLA's CPU backend sorts a single array far
    faster than (key, value) pairs. Falls back to a stable ``argsort`` when key and index do not fit in 32 bits
    together.
    """
    size = keys.shape[0]
    index_bits = max(size - 1, 1).bit_length()
    if index_bits + key_bits > 32:
        return jnp.argsort(keys, stable=True).astype(jnp.int32)
    low = jnp.uint32((1 << index_bits) - 1)
    packed = (keys.astype(jnp.uint32) << index_bits) | jnp.arange(size, dtype=jnp.uint32)
    return (jnp.sort(packed) & low).astype(jnp.int32)


@jax.custom_vjp
def _group_products(grouped: jax.Array, group_leaf: jax.Array, table: jax.Array, table_t: jax.Array) -> jax.Array:
    """``(G, S, L)``: each group's ``(S, D)`` vectors times its leaf's items, ``table_t[group_leaf]`` ``(D, L)``.

    A custom VJP only to pick layouts: XLA's CPU backend multiplies these small batched matrices faster when
    the contracted axis comes first in the second operand, so the forward product reads the ``(C, D, L)`` table
    and the backward one (``d grouped = d out @ table[group_leaf]``) the ``(C, L, D)`` one. The tables are
    constants of the item tree: no cotangent.
    """
    return jnp.einsum("gsd,gdl->gsl", grouped, table_t[group_leaf])


def _group_products_forward(grouped, group_leaf, table, table_t):
    return _group_products(grouped, group_leaf, table, table_t), (group_leaf, table, table_t)


def _group_products_backward(residuals, cotangent):
    group_leaf, table, table_t = residuals
    return jnp.einsum("gsl,gld->gsd", cotangent, table[group_leaf]), None, None, None


_group_products.defvjp(_group_products_forward, _group_products_backward)


def _leaf_products(
    tree: "ItemTree", table: jax.Array, table_t: jax.Array, vectors: jax.Array, leaves: jax.Array
) -> jax.Array:
    """``(B, L)``: ``table[leaves[b]] @ vectors[b]`` for every user ``b``.

    The table comes in both layouts, ``(C, L, D)`` and transposed ``(C, D, L)`` (see :func:`_group_products`).

    The direct way gathers a ``(L, D)`` block per user. XLA's CPU backend materialises the whole gather, and for
    a PPO minibatch that is 4k users x 71 items x 34 floats (40 MB) written and read back per table, forward
    and backward, a cost that cache-sized blocks reduce but do not remove. Users choosing the same leaf can share
    its block instead: batches of at least ``C`` users are sorted by leaf into groups of :func:`leaf_group_size`
    users (the last group of a leaf padded), each group's block is gathered once and multiplied as one matrix.
    That is at most ``B / group + C`` blocks, and plain matrix products.
    Smaller batches (one user, under ``vmap``) gather per user, in blocks.
    """
    size = leaves.shape[0]
    num_leaves = tree.leaves.shape[0]
    if size < num_leaves:
        return in_blocks(lambda args: table[args[0]] @ args[1], (leaves, vectors), LEAF_CHUNK)
    group = leaf_group_size(size, num_leaves)
    num_groups = size // group + num_leaves  # sum over leaves of ceil(count / group) is at most this
    counts = jnp.zeros(num_leaves, jnp.int32).at[leaves].add(1)
    groups = (counts + group - 1) // group
    first_group = jnp.cumsum(groups) - groups  # of each leaf
    # Rank of each user among the users of its leaf, from a stable sort by leaf.
    order = packed_argsort(leaves, max(num_leaves - 1, 1).bit_length())
    sorted_leaves = leaves[order]
    rank = jnp.arange(size, dtype=jnp.int32) - (jnp.cumsum(counts) - counts)[sorted_leaves]
    sorted_position = (first_group[sorted_leaves] + rank // group) * group + rank % group
    position = jnp.zeros(size, jnp.int32).at[order].set(sorted_position)  # each user's row in the groups
    group_leaf = jnp.minimum(
        jnp.searchsorted(jnp.cumsum(groups), jnp.arange(num_groups), side="right"), num_leaves - 1
    )  # groups past the last leaf's are empty: any leaf
    grouped = jnp.zeros((num_groups * group, vectors.shape[-1]), vectors.dtype).at[position].set(vectors)
    products = _group_products(grouped.reshape(num_groups, group, -1), group_leaf, table, table_t)
    return products.reshape(num_groups * group, -1)[position]
