"""Off-policy evaluation (OPE), checked against the simulator's exact truth.

Log a behaviour policy with its propensities (:func:`collect`), compute any target policy's exact value on the
same users (:func:`true_value`), and see how far each estimator lands from it (:mod:`rlrec.ope.estimators`).
"""
