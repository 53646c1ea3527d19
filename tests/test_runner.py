"""The runner: shapes, chunking invariance, determinism, shared mode, 1 device == 8 devices, reports."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from synthetic import UNIT, synthetic_catalog, synthetic_env

from rlrec.agents import make_agent
from rlrec.bench import report
from rlrec.rollout import run

# slate_bandit and bandit_env: the synthetic stand-ins of conftest.py (no language model).


def test_result_shapes_and_chunking_invariance(slate_bandit):
    env, params = slate_bandit
    agent = make_agent("lints", env)
    whole = run(env, params, agent, num_seeds=3, num_steps=40, seed=5)
    chunked = run(env, params, agent, num_seeds=3, num_steps=40, seed=5, chunk_size=15)
    assert whole.regret.shape == (3, 40) and whole.slates.shape == (3, 40, 5)
    for name in ("reward", "regret", "slates", "precision", "diversity"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(chunked, name))
    other = run(env, params, agent, num_seeds=3, num_steps=40, seed=6)
    assert not np.array_equal(whole.slates, other.slates)


def test_personal_mode_resets_the_learner_with_each_new_user():
    env, params = synthetic_env("MovieLens-Bandit-v0", **UNIT, max_steps=10)
    result = run(env, params, make_agent("linucb", env), num_seeds=2, num_steps=30)
    assert result.done.sum(axis=1).tolist() == [3, 3]
    # each new cold-start user starts from the same prior, so the first action only depends on the request
    assert np.isfinite(report.per_seed_metrics(result, env.num_items(params))["episode_return"]).all()


def test_shared_mode_learns_from_a_batch_of_users(slate_bandit):
    env, params = slate_bandit
    agent = make_agent("linucb", env, context="request-item")
    result = run(env, params, agent, num_seeds=2, num_steps=60, mode="shared", num_users=32)
    assert result.regret.shape == (2, 60) and result.slates.shape == (2, 60, 32, 5)
    assert result.regret[:, 40:].mean() < 0.8 * result.regret[:, :10].mean()
    baseline = run(env, params, make_agent("random", env), num_seeds=2, num_steps=60, mode="shared", num_users=32)
    assert result.regret.mean() < baseline.regret.mean()


def test_runner_rejects_bad_input(slate_bandit, bandit_env):
    env, params = slate_bandit
    single = make_agent("random", bandit_env[0])
    with pytest.raises(ValueError, match="slates of 1 but the env expects 5"):
        run(env, params, single)
    with pytest.raises(ValueError, match="mode must be one of"):
        run(env, params, make_agent("random", env), mode="global")
    with pytest.raises(ValueError, match="num_seeds must be >= 1"):
        run(env, params, make_agent("random", env), num_seeds=0)


def test_one_device_equals_eight_forced_cpu_devices(slate_bandit):
    env, params = slate_bandit
    reference = run(env, params, make_agent("lints", env), num_seeds=8, num_steps=25, seed=2)
    script = textwrap.dedent(
        """
        import json, os, sys
        import jax
        from rlrec.agents import make_agent
        from rlrec.rollout.runner import run
        sys.path.insert(0, TESTS)
        from synthetic import UNIT, synthetic_env
        assert len(jax.devices()) == 8, jax.devices()
        env, params = synthetic_env("MovieLens-BanditSlate-v0", **UNIT)
        result = run(env, params, make_agent("lints", env), num_seeds=8, num_steps=25, seed=2)
        print(json.dumps({"devices": result.devices, "slates": result.slates.tolist(),
                          "regret": result.regret.tolist()}))
        """
    ).replace("TESTS", repr(str(Path(__file__).resolve().parent)))
    import os

    environment = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=environment, timeout=600, check=True
    )
    sharded = json.loads(completed.stdout.strip().splitlines()[-1])
    assert len(sharded["devices"]) == 8
    np.testing.assert_array_equal(np.array(sharded["slates"]), reference.slates)
    np.testing.assert_allclose(np.array(sharded["regret"]), reference.regret, rtol=1e-5, atol=1e-6)


def test_summary_and_plot(tmp_path, slate_bandit):
    env, params = slate_bandit
    results = [run(env, params, make_agent(name, env), num_seeds=4, num_steps=30) for name in ("random", "oracle")]
    popularity = synthetic_catalog(UNIT["items"], UNIT["dim"]).popularity  # the catalog of slate_bandit
    genres = np.random.default_rng(0).random((env.num_items(params), 6)) < 0.3  # multi-hot, as MovieLens's
    summary = report.summarise(results[1], env.num_items(params), popularity, genres)
    assert summary["cumulative_regret"] == (0.0, 0.0)
    assert summary["precision"][0] == 1.0
    assert set(report.SUMMARY_METRICS) - {"questions"} == set(summary)  # questions: conversational envs only
    path = report.plot_regret(results, tmp_path / "regret.png")
    assert path.stat().st_size > 10_000
    assert report.format_value(1.23456, 0.5) == "1.235 ± 0.500"


def test_non_finite_results_stop_the_run_naming_seed_and_step():
    import jax.numpy as jnp

    from rlrec.metrics import NonFiniteResultError

    env, params = synthetic_env("MovieLens-BanditSlate-v0", slate_size=3)
    broken = params.replace(temperature=jnp.asarray(0.0, jnp.float32))  # bypasses make's checks: logits / 0
    with pytest.raises(NonFiniteResultError, match=r"random on MovieLens-BanditSlate-v0 produced a non-finite "
                                                    r"expected_reward \(nan\) at seed 0, step 0 \(10 non-finite"):
        run(env, broken, make_agent("random", env), num_seeds=2, num_steps=5)
    assert np.isfinite(run(env, params, make_agent("random", env), num_seeds=2, num_steps=5).regret).all()


def test_seed_blocks_give_the_same_numbers(monkeypatch):
    # On one CPU device the runner steps seeds in cache-sized blocks (lax.scan over blocks, vmap within): the
    # per-seed computation is unchanged, so every number must equal one vmap over all seeds. (Blocks of at least
    # 8 seeds: with 4, XLA vectorised some float reductions differently and the last bit of regret changed.)
    from rlrec.rollout import runner

    env, params = synthetic_env("MovieLens-BanditSlate-v0", slate_size=3)
    seed_block = runner.seed_block
    assert seed_block(9066, 1, 256, 1) == 64 and seed_block(9066, 1, 32, 1) == 0
    assert seed_block(9066, 1, 256, 8) == 0  # several devices: the widest batch per device
    for name in ("linucb", "lints"):  # LinTS keeps a zero-size variance array: blocks must reshape it too
        agent = make_agent(name, env)
        monkeypatch.setattr(runner, "seed_block", lambda *args: 0)
        whole = run(env, params, agent, num_seeds=32, num_steps=12, seed=4)
        monkeypatch.setattr(runner, "seed_block", lambda *args: 8)
        blocked = run(env, params, agent, num_seeds=32, num_steps=12, seed=4)
        for field in ("reward", "regret", "expected_reward", "slates", "precision", "diversity", "done"):
            np.testing.assert_array_equal(getattr(blocked, field), getattr(whole, field), err_msg=f"{name} {field}")


def test_progress_never_changes_a_number_and_says_compile_and_run_apart(slate_bandit, capsys, monkeypatch):
    """Where nobody watches: one plain line (no "\\r"); where someone does: a bar; None: only where watched."""
    from rlrec import _progress

    env, params = slate_bandit
    agent = make_agent("lints", env)
    quiet = run(env, params, agent, num_seeds=3, num_steps=40, seed=5, chunk_size=10)
    capsys.readouterr()
    logged = run(env, params, agent, num_seeds=3, num_steps=40, seed=5, chunk_size=10, progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b[" not in err
    compiled = _progress.duration(logged.compile_time)
    assert err.splitlines() == [f"lints on MovieLens-BanditSlate-v0: compiled {compiled}, "
                                f"ran 40 steps x 3 seeds in {err.split(' seeds in ')[1].strip()}"]
    run(env, params, agent, num_seeds=3, num_steps=40, seed=5, chunk_size=10, progress=None)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(_progress, "interactive", lambda: True)
    watched = run(env, params, agent, num_seeds=3, num_steps=40, seed=5, chunk_size=10, progress=None)
    bar = capsys.readouterr().err
    assert "lints on MovieLens-BanditSlate-v0: 100%" in bar and "40/40" in bar and "step/s" in bar
    for other in (logged, watched):
        for name in ("reward", "regret", "slates", "precision", "diversity"):
            np.testing.assert_array_equal(getattr(quiet, name), getattr(other, name))


def test_pinned_users_run_each_user_with_every_seed():
    # users= runs each chosen population user x every seed in one program: a row's users are always that
    # prototype (after every auto-reset too), rows are user-major, and a row equals the same user pinned alone.
    from synthetic import synthetic_env

    env, params = synthetic_env("MovieLens-Session-v0", users=5, max_steps=4)
    agent = make_agent("linucb", env)
    result = run(env, params, agent, num_seeds=3, num_steps=12, users=[4, 1], accuracy_k=0)
    assert result.num_seeds == 6 and result.pinned.tolist() == [4, 4, 4, 1, 1, 1]
    assert result.by_user("regret").shape == (2, 3, 12) and "pinned_users=2" in repr(result)
    alone = run(env, params, agent, num_seeds=3, num_steps=12, users=[1], accuracy_k=0)
    np.testing.assert_array_equal(result.by_user("slates")[1], alone.slates)
    np.testing.assert_array_equal(result.by_user("reward")[1], alone.reward)
    # The oracle's slate depends on who the user is: pinned streams of different users see different slates,
    # and the oracle stays optimal for every pinned user (regret 0 up to float32 rounding of the session's utilities).
    oracle = run(env, params, make_agent("oracle", env), num_seeds=2, num_steps=8, users="all", accuracy_k=0)
    assert oracle.num_seeds == 10 and oracle.regret.max() < 1e-6
    firsts = oracle.by_user("slates")[:, 0, 0]  # (users, k): each user's first slate of seed 0
    assert len({tuple(slate.tolist()) for slate in firsts}) > 1
    for bad, message in (([5], "population users 0..4"), ([], "non-empty"), ([1, 1], "twice"), ("some", "'all'")):
        with pytest.raises(ValueError, match=message):
            run(env, params, agent, num_seeds=2, num_steps=2, users=bad)
    with pytest.raises(ValueError, match="personal-mode"):
        run(env, params, agent, num_seeds=2, num_steps=2, users=[0], mode="shared")
