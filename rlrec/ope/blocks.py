"""Rows (rounds or user streams) per compiled block of every pass of :mod:`rlrec.ope` over a log, from one budget.

A block's size is part of its numbers: another size is another program, which may round a float differently, and
sums over blocks add in another order. So each pass keeps the most rows it always had, and the budget binds only
where a row is large (a Monte Carlo policy's catalog-sized arrays, long user streams).
"""

from __future__ import annotations

BUDGET = 2**27  # bytes of a block's per-row arrays: 128 MiB, which keeps every block of the built-in suites' size
ROUNDS = 4096  # the most rounds per block of a per-round program (the truth, estimator inputs, a target's slates)
USERS = 8192  # the most user streams per block of collect
MONTE_CARLO_USERS = 1024  # the same for a Monte Carlo behaviour
STATISTICS_ROUNDS = 65536  # the most rounds per block of the reward model's sufficient statistics
FEWEST = 16  # rows per block however large a row


def rows_per_block(bytes_per_row: int, most: int) -> int:
    """As many rows as fit :data:`BUDGET` at ``bytes_per_row`` each, between :data:`FEWEST` and ``most``."""
    return int(max(FEWEST, min(most, BUDGET // max(int(bytes_per_row), 1))))


def target_rounds(slate_size: int, num_items: int, deterministic: bool) -> int:
    """Rounds per block of a target policy's pass over a log (its truth, its estimator inputs): a deterministic
    target's slates come computed (:data:`ROUNDS`); a stochastic one holds its float32 ``(k, N)`` marginals or one
    draw's ``(N,)`` noise per round."""
    return ROUNDS if deterministic else rows_per_block(4 * (slate_size + 1) * num_items, ROUNDS)
