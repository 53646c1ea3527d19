"""What benchmark suites share between their compiling threads (issue 38): agents' programs kept apart by class."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from rlrec.agents.bandits import LinTS, LinUCB, PopularityAgent, RandomAgent
from rlrec.rollout.runner import unnamed


# -- programs: the agent's class is part of each program's key ---------------------------------------------------


@pytest.mark.parametrize("first, second", [(LinUCB, LinTS), (RandomAgent, PopularityAgent)])
def test_agents_of_two_classes_never_share_a_program_key(first, second):
    """jaxlib 0.10 compares two flax.struct classes with equal static fields as equal tree structures, so JAX's
    caches could hand LinUCB the program traced for LinTS; the agents rlrec's programs see differ by class."""
    assert jax.tree.structure(unnamed(first())) != jax.tree.structure(unnamed(second()))
    # Two agents of one class, differing in numbers or display name only, still share one program.
    renamed = unnamed(first(label="one"))
    assert jax.tree.structure(renamed) == jax.tree.structure(unnamed(first(label="other")))


def test_a_jitted_program_runs_the_class_it_was_given():
    """Many agent classes with the same fields (as a user's variants of a built-in agent have): each call runs
    its own class's program. Without the class in the key, about one in eight ran another class's."""
    classes = [type(f"Tagged{i}", (RandomAgent,), {"tag": i}) for i in range(100)]

    @jax.jit
    def tag(agent):
        return jnp.int32(type(agent).tag)

    ran = [int(tag(unnamed(cls()))) for cls in classes]
    assert ran == [cls.tag for cls in classes]


def test_agents_inside_an_agent_are_keyed_by_class_too():
    from rlrec.agents.base import Frozen

    one, other = Frozen(agent=LinUCB(), state=()), Frozen(agent=LinTS(), state=())
    assert jax.tree.structure(unnamed(one)) != jax.tree.structure(unnamed(other))
    assert unnamed(one).agent.label.startswith("rlrec.agents.bandits.LinUCB#")
