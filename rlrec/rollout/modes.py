"""The learning modes of :func:`rlrec.run`, without JAX (the command line and suites check them before loading it).

``personal``: one learner per user stream, learning that user from scratch; ``shared``: one learner serves a batch
of users and learns from all of them.
"""

PERSONAL = "personal"
SHARED = "shared"
MODES = (PERSONAL, SHARED)
