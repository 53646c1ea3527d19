"""User dynamics against hand-computed cases."""

import jax.numpy as jnp
import numpy as np

from rlrec.simulators import dynamics


def test_drift_moves_toward_consumed_item_and_stays_unit():
    interest = jnp.array([1.0, 0.0])
    consumed = jnp.array([0.0, 1.0])
    moved = dynamics.drift(interest, consumed, jnp.array(0.5), jnp.array(True))
    np.testing.assert_allclose(moved, [np.sqrt(0.5), np.sqrt(0.5)], rtol=1e-6)
    unchanged = dynamics.drift(interest, consumed, jnp.array(0.5), jnp.array(False))
    np.testing.assert_array_equal(unchanged, interest)


def test_memory_decays_and_accumulates_clicks():
    memory = jnp.array([1.0, 0.0])
    item = jnp.array([0.0, 1.0])
    np.testing.assert_allclose(dynamics.update_memory(memory, item, 0.5, jnp.array(True)), [0.5, 1.0])
    np.testing.assert_allclose(dynamics.update_memory(memory, item, 0.5, jnp.array(False)), [0.5, 0.0])


def test_boredom_penalises_similar_items_only():
    memory = jnp.array([2.0, 0.0])
    items = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    np.testing.assert_allclose(dynamics.boredom_penalty(memory, items, 1.5), [3.0, 0.0, 0.0])


def test_satisfaction_formula():
    value = dynamics.satisfaction(jnp.array(0.5), jnp.array(1.0), jnp.array(0.2), 8.0, 0.3, 0.5)
    np.testing.assert_allclose(value, 1 / (1 + np.exp(-(8 * 0.2 + 0.5 - 0.2))), rtol=1e-6)


def test_budget_pays_each_step_and_refunds_satisfying_clicks():
    assert float(dynamics.update_budget(3.0, 0.5, jnp.array(True), 1.0, 2.0)) == 3.0
    assert float(dynamics.update_budget(3.0, 0.5, jnp.array(False), 1.0, 2.0)) == 2.0
