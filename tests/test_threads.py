"""What benchmark suites share between their compiling threads (issue 38): agents' programs kept apart by class,
builders that build each key once, lazy names loaded once. Every thread test starts its threads together
(``threading.Barrier``) and holds the first builder inside the build until the others have asked, so the race is
run every time, not left to chance."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache, partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from synthetic import UNIT, synthetic_catalog, synthetic_env, synthetic_population

from rlrec.agents.bandits import LinTS, LinUCB, PopularityAgent, RandomAgent

THREADS = 8


def hammer(call, threads: int = THREADS) -> list:
    """``call()`` from ``threads`` threads started together; their results in thread order."""
    barrier = threading.Barrier(threads)

    def one(_):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(threads)))


class SlowBuild:
    """A build that counts its calls and, while the first runs, waits for the other threads to ask (at most
    ``patience`` seconds): without a lock every thread then builds; with one, the others wait outside."""

    def __init__(self, make, patience: float = 0.5):
        self.make, self.patience = make, patience
        self.calls = 0
        self.lock = threading.Lock()
        self.inside = threading.Condition(self.lock)

    def __call__(self, *args, **kwargs):
        with self.inside:
            self.calls += 1
            self.inside.notify_all()
            self.inside.wait_for(lambda: self.calls >= THREADS, timeout=self.patience)
        return self.make(*args, **kwargs)


# -- programs: the agent's class is part of each program's key ---------------------------------------------------


@pytest.mark.parametrize("first, second", [(LinUCB, LinTS), (RandomAgent, PopularityAgent)])
def test_agents_of_two_classes_never_share_a_program_key(first, second):
    """jaxlib 0.10 compares two flax.struct classes with equal static fields as equal tree structures, so JAX's
    caches could hand LinTS the program traced for LinUCB; the agents rlrec's programs see differ by class."""
    assert jax.tree.structure(first()) != jax.tree.structure(second())
    # Two agents of one class, differing in numbers or display name only, still share one program.
    assert jax.tree.structure(first(label="one")) == jax.tree.structure(first(label="other"))


def test_a_jitted_program_runs_the_class_it_was_given():
    """Many agent classes with the same fields (as a user's variants of a built-in agent have): each call runs
    its own class's program. Without the class in the key, about one in eight ran another class's."""
    classes = [type(f"Tagged{i}", (RandomAgent,), {"tag": i}) for i in range(100)]

    @jax.jit
    def tag(agent):
        return jnp.int32(type(agent).tag)

    ran = [int(tag(cls())) for cls in classes]
    assert ran == [cls.tag for cls in classes]


def test_agents_inside_an_agent_are_keyed_by_class_too():
    from rlrec.agents.base import Frozen

    one, other = Frozen(agent=LinUCB(label="mine"), state=()), Frozen(agent=LinTS(), state=())
    assert jax.tree.structure(one) != jax.tree.structure(other)
    assert jax.tree.map(lambda leaf: leaf, one).agent.label == "mine"  # the display name survives unflattening


def test_policies_are_keyed_by_class_and_not_by_label():
    from rlrec.ope.policies import Greedy

    twin = type("Twin", (Greedy,), {})  # a class of its own with Greedy's fields
    assert jax.tree.structure(Greedy(agent=LinUCB())) != jax.tree.structure(twin(agent=LinUCB()))
    assert jax.tree.structure(Greedy(agent=LinUCB(), label="a")) == jax.tree.structure(Greedy(agent=LinUCB()))


def test_display_names_share_a_program_and_classes_never_do():
    """Traces counted: "linucb" and "lm-linucb" (one class, other numbers and names) and an env renamed share one
    program; LinTS, with the fields of LinUCB, gets its own."""
    import dataclasses

    from rlrec.agents import make_agent

    env, params = synthetic_env("MovieLens-Bandit-v0", **UNIT)
    traced = []

    @partial(jax.jit, static_argnames="env")
    def init(agent, params, env):
        traced.append(type(agent).__name__)
        return agent.init(jax.random.key(0), params)

    for name, on in (("linucb", env), ("lm-linucb", env), ("linucb", dataclasses.replace(env, name="other")),
                     ("lints", env), ("lm-lints", env)):
        init(make_agent(name, on), params, env=on)
    assert traced == ["LinUCB", "LinTS"]


# -- builders: each key built once, every thread gets the same object --------------------------------------------


def test_memoised_builds_a_key_once_where_lru_cache_builds_it_in_every_thread():
    from rlrec._lazy import memoised

    plain = SlowBuild(lambda key: object())
    locked = SlowBuild(lambda key: object())
    plain_cached = lru_cache(maxsize=4)(plain)
    plain_results = hammer(lambda: plain_cached("key"))
    locked_cached = memoised(maxsize=4)(locked)
    locked_results = hammer(lambda: locked_cached("key"))
    # The harness does race: lru_cache alone built the key in every thread, each getting its own object.
    assert plain.calls == THREADS and len({id(result) for result in plain_results}) == THREADS
    assert locked.calls == 1 and len({id(result) for result in locked_results}) == 1
    assert locked_cached.cache_info().hits == THREADS - 1
    locked_cached.cache_clear()
    assert locked_cached.cache_info().currsize == 0


def test_memoised_builds_other_keys_in_parallel_and_does_not_cache_errors():
    from rlrec._lazy import memoised

    started = threading.Barrier(2, timeout=10)  # each key's build waits for the other's: both must run at once

    @memoised(maxsize=4)
    def build(key):
        started.wait()
        return key

    # Two keys from two threads: neither waits for the other's lock (else the barrier above breaks).
    keys = iter(["a", "b"])
    lock = threading.Lock()

    def next_key():
        with lock:
            return next(keys)

    assert sorted(hammer(lambda: build(next_key()), threads=2)) == ["a", "b"]

    attempts = []

    @memoised(maxsize=4)
    def flaky(key):
        attempts.append(key)
        if len(attempts) == 1:
            raise RuntimeError("first build fails")
        return key

    with pytest.raises(RuntimeError):
        flaky("k")
    assert flaky("k") == "k" and attempts == ["k", "k"]


def test_a_builtin_catalog_is_built_once_for_threads_that_ask_at_once(monkeypatch):
    from rlrec.data import builtin, load_catalog

    build = SlowBuild(lambda encoder: synthetic_catalog(40, 8))
    monkeypatch.setitem(builtin.BUILTIN_CATALOGS, "synthetic-threads", build)
    monkeypatch.setattr(builtin.lm, "get_encoder", lambda model_path=None: None)
    catalogs = hammer(lambda: load_catalog("synthetic-threads", dim=4))
    assert build.calls == 1
    assert len({id(catalog) for catalog in catalogs}) == 1
    assert catalogs[0].features.shape == (40, 4)


def test_the_default_population_is_built_once_for_threads_that_ask_at_once(monkeypatch):
    from rlrec.simulators import population

    build = SlowBuild(lambda catalog: synthetic_population(6, 8))
    monkeypatch.setattr(population, "movielens_population", build)
    monkeypatch.setattr("rlrec.data.load_catalog", lambda name, model_path=None: None)
    users = hammer(lambda: population.default_population("/nowhere/threads-test"))
    assert build.calls == 1 and len({id(found) for found in users}) == 1
    assert users[0].interests.shape == (6, 8)


def test_a_default_bank_is_built_once_for_threads_that_ask_at_once():
    from rlrec.envs import registry

    catalog = synthetic_catalog(40, 8)

    class Bank:
        for_catalog = SlowBuild(lambda catalog: np.zeros((3, catalog.dim)))

    banks = hammer(lambda: registry._bank(Bank, "key_terms", catalog, None))
    assert Bank.for_catalog.calls == 1 and len({id(bank) for bank in banks}) == 1


def test_a_shared_encoder_and_its_model_load_once_for_threads_that_ask_at_once(monkeypatch, tmp_path):
    from rlrec import lm

    built = SlowBuild(lambda path, cache_dir=None: object())
    monkeypatch.setattr(lm, "TextEncoder", built)
    encoders = hammer(lambda: lm.get_encoder(tmp_path / "threads-model"))
    assert built.calls == 1 and len({id(encoder) for encoder in encoders}) == 1
    monkeypatch.undo()

    encoder = lm.TextEncoder(cache_dir=False)
    load = SlowBuild(lambda: (object(), object()))
    monkeypatch.setattr(encoder, "_load_model", load)
    loaded = hammer(encoder._load)
    assert load.calls == 1 and len({(id(model), id(tokenizer)) for model, tokenizer in loaded}) == 1


def test_a_network_graph_is_built_once_for_threads_that_trace_at_once():
    from rlrec.agents import networks

    graphs = hammer(lambda: networks.graphdef(37, 11, 13, 3))
    assert len({id(graph) for graph in graphs}) == 1


# -- lazy names: loaded once, complete, in a fresh interpreter ------------------------------------------------------

LAZY = textwrap.dedent(
    """
    import json, threading
    from concurrent.futures import ThreadPoolExecutor
    import rlrec, rlrec.agents, rlrec.bench, rlrec.envs
    names = [(rlrec, "make"), (rlrec, "run"), (rlrec.agents, "make_agent"), (rlrec.bench, "run_suite"),
             (rlrec.envs, "registry"), (rlrec, "rollout")]
    barrier = threading.Barrier(8)
    def one(_):
        barrier.wait()
        return [id(getattr(module, name)) for module, name in names]
    with ThreadPoolExecutor(8) as pool:
        seen = list(pool.map(one, range(8)))
    print(json.dumps({"distinct": [len({ids[i] for ids in seen}) for i in range(len(names))],
                      "complete": callable(rlrec.make) and hasattr(rlrec.envs.registry, "make")}))
    """
)


def test_lazy_names_asked_for_by_threads_at_once_are_loaded_once():
    """In a fresh interpreter (nothing loaded yet), eight threads ask for lazy names together: each name is one
    object, fully loaded."""
    done = subprocess.run([sys.executable, "-c", LAZY], capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"distinct": [1] * 6, "complete": True}
