"""``python -m rlrec.cli``: the ``rlrec`` command, named as the console script names it."""

from rlrec.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
