"""Off-policy evaluation (OPE), checked against the simulator's exact truth.

Log a behaviour policy with its propensities (:func:`collect`), compute any target policy's exact value on the
same users (:func:`true_value`), and see how far each estimator lands from it (:func:`evaluate`)::

    env, params = rlrec.make("MovieLens-BanditSlate-v0")
    behaviour = rlrec.ope.make_policy("epsilon-greedy:popularity:0.1", env, params)
    target = rlrec.ope.make_policy("linucb", env, params)  # trained, then frozen and greedy
    log = rlrec.ope.collect(env, params, behaviour, 10_000)
    truth = rlrec.ope.true_value(env, params, target, log).value
    estimates = rlrec.ope.evaluate(env, params, log, target).estimates  # {"ips": (value, stderr), ...}

Logs save and load (:func:`save`, :func:`load`: ``.npz`` or Parquet) and export to Open Bandit Pipeline's
``bandit_feedback`` (:func:`to_obp`). ``rlrec ope --suite quick`` scores every estimator against the truth over
log sizes and seeds (:mod:`rlrec.ope.suite`). Importing this package loads JAX only when a name is first used.
"""

from rlrec._lazy import attach

_LAZY = {
    "Log": "rlrec.ope.log",
    "collect": "rlrec.ope.collector",
    "true_value": "rlrec.ope.truth",
    "on_policy_value": "rlrec.ope.truth",
    "Truth": "rlrec.ope.truth",
    "evaluate": "rlrec.ope.evaluation",
    "Evaluation": "rlrec.ope.evaluation",
    "make_policy": "rlrec.ope.build",
    "fitted": "rlrec.ope.build",
    "Uniform": "rlrec.ope.policies",
    "Greedy": "rlrec.ope.policies",
    "EpsilonGreedy": "rlrec.ope.policies",
    "Softmax": "rlrec.ope.policies",
    "Sampled": "rlrec.ope.policies",
    "Policy": "rlrec.ope.policies",
    "save": "rlrec.ope.io",
    "load": "rlrec.ope.io",
    "to_obp": "rlrec.ope.io",
    "run_ope_suite": "rlrec.ope.suite_run",
}
__all__ = sorted(_LAZY)

__getattr__, __dir__ = attach(__name__, _LAZY, globals(), __all__)
