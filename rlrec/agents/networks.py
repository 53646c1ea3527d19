"""Networks for deep RL agents: a user tower over the observation, dotted with item features.

Every deep agent scores item ``i`` for a user in state ``s`` as::

    score(s, i) = <query(s), x_i> - softplus(boredom(s)) * relu(<memory(s), e_i>) + bias(s)

with ``x_i = [e_i, quality_i, appeal_i]`` the item's features (:func:`~rlrec.envs.recsys.bandit_features`)
and ``memory(s)`` a decayed sum of the embeddings of recently clicked items (from the observed history).
The user tower (a Flax NNX MLP) maps the observation to ``query``, ``boredom`` and ``bias`` for each of its
score heads, and to a state value. Nothing depends on the catalog size, so one network serves a 9k or a 58k
catalog, single items or slates.

Networks are Flax NNX modules split into ``(graphdef, state)`` at the jit boundary: agents keep the
graphdef as static configuration (rebuilt from shapes with :func:`graphdef`) and the parameters as a pytree
in their state, so training loops are plain ``jax.jit(jax.vmap(jax.lax.scan(...)))``.

Policy-gradient agents pick items through an item tree (leaves of similar items, then an item within the
leaf): :mod:`rlrec.agents.item_tree`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from rlrec._lazy import memoised

NUM_SCALARS = 6


def observation_features(obs: dict, env_params, decay: float) -> tuple[jax.Array, jax.Array]:
    """``(features (4 d + 6,), memory (d,))`` of one user's observation.

    Features: the request embedding; ``memory``, the decayed sum of clicked items' embeddings (what the user
    has just consumed: boredom); the decayed sum of clicked embeddings weighted by satisfaction minus 1/2
    (what pleased or disappointed); the decayed mean embedding of shown slates; and scalars (history click
    rate, mean satisfaction of clicks, last step's click and satisfaction, whether there is any history,
    episode progress ``step / max_steps``).
    """
    items, clicks, feedback = obs["history_items"], obs["history_clicks"], obs["history_feedback"]
    length = items.shape[0]
    embeddings = env_params.item_features
    weights = decay ** jnp.arange(length - 1, -1, -1, dtype=jnp.float32)  # most recent step last
    shown = items[:, 0] >= 0
    clicked = clicks >= 0
    clicked_items = jnp.take_along_axis(items, jnp.maximum(clicks, 0)[:, None], axis=1)[:, 0]
    clicked_embeddings = embeddings[jnp.maximum(clicked_items, 0)]
    click_weights = jnp.where(clicked, weights, 0.0)
    memory = click_weights @ clicked_embeddings
    liked = (click_weights * (feedback - 0.5)) @ clicked_embeddings
    slate_embeddings = jnp.mean(embeddings[jnp.maximum(items, 0)], axis=1)
    seen = jnp.where(shown, weights, 0.0) @ slate_embeddings
    num_shown = jnp.sum(shown)
    num_clicked = jnp.sum(clicked)
    scalars = jnp.stack(
        [
            num_clicked / jnp.maximum(num_shown, 1),
            jnp.sum(jnp.where(clicked, feedback, 0.0)) / jnp.maximum(num_clicked, 1),
            clicked[-1].astype(jnp.float32),
            feedback[-1],
            (num_shown > 0).astype(jnp.float32),
            obs["progress"][0],
        ]
    )
    features = jnp.concatenate([obs["request"], memory, liked, seen, scalars.astype(jnp.float32)])
    return features, memory


class UserTower(nnx.Module):
    """MLP from observation features to ``heads`` score heads (query, boredom, bias) and a value."""

    def __init__(self, feature_dim: int, item_dim: int, hidden: int, heads: int, rngs: nnx.Rngs):
        self.heads, self.item_dim = heads, item_dim
        self.layer1 = nnx.Linear(feature_dim, hidden, rngs=rngs)
        self.layer2 = nnx.Linear(hidden, hidden, rngs=rngs)
        # Small initial queries: near-uniform policies and near-zero Q-values at the start.
        small = nnx.initializers.variance_scaling(0.01, "fan_in", "truncated_normal")
        self.query = nnx.Linear(hidden, heads * item_dim, kernel_init=small, rngs=rngs)
        self.scalars = nnx.Linear(hidden, heads * 2 + 1, kernel_init=small, rngs=rngs)

    def __call__(self, features: jax.Array) -> dict[str, jax.Array]:
        hidden = nnx.relu(self.layer2(nnx.relu(self.layer1(features))))
        query = self.query(hidden).reshape(*features.shape[:-1], self.heads, self.item_dim)
        scalars = self.scalars(hidden)
        return {
            "query": query,
            "boredom": jax.nn.softplus(scalars[..., : self.heads]),
            "bias": scalars[..., self.heads : 2 * self.heads],
            "value": scalars[..., -1],
        }


@memoised(maxsize=64)  # traced by a suite's compiling threads: one graph per shape
def graphdef(feature_dim: int, item_dim: int, hidden: int, heads: int) -> nnx.GraphDef:
    """The (static, hashable) graph of a :class:`UserTower` of these sizes, built from shapes only."""
    abstract = nnx.eval_shape(lambda: UserTower(feature_dim, item_dim, hidden, heads, nnx.Rngs(0)))
    return nnx.split(abstract)[0]


def init_tower(key: jax.Array, feature_dim: int, item_dim: int, hidden: int, heads: int) -> nnx.State:
    """Freshly initialised parameters of a :class:`UserTower`."""
    return nnx.split(UserTower(feature_dim, item_dim, hidden, heads, nnx.Rngs(params=key)))[1]


def tower_dims(env_params) -> tuple[int, int]:
    """``(feature_dim, item_dim)`` of the towers for these env params."""
    dim = env_params.item_features.shape[1]
    return 4 * dim + NUM_SCALARS, dim + 2


def apply_tower(graph: nnx.GraphDef, params: nnx.State, features: jax.Array) -> dict[str, jax.Array]:
    return nnx.merge(graph, params)(features)


def score_items(
    head: dict[str, jax.Array], features: jax.Array, embeddings: jax.Array, memory: jax.Array
) -> jax.Array:
    """Scores of items with ``features (..., d + 2)`` and ``embeddings (..., d)`` for one head of one user.

    ``head`` holds that head's ``query (d + 2,)``, ``boredom ()`` and ``bias ()``.
    """
    return features @ head["query"] - head["boredom"] * jax.nn.relu(embeddings @ memory) + head["bias"]


HEAD = ("query", "boredom", "bias")


def select_head(outputs: dict[str, jax.Array], index: int) -> dict[str, jax.Array]:
    """Head ``index`` of one user's tower outputs (of a batch: ``index`` of every user's heads)."""
    return {name: outputs[name][..., index] if name != "query" else outputs[name][..., index, :] for name in HEAD}
