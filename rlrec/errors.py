"""What went wrong, by whose doing: rlrec's exceptions for mistakes in the user's input.

An input mistake (a bad value, name, file or folder) raises one of these where the input is checked, with a
message that names the problem and the fix; the ``rlrec`` command prints it as one ``error:`` line and exits
with code 2. Every other exception is a bug in rlrec (or in a library it calls): the command prints its
traceback with a request to report it, and exits with code 1 (``rlrec.cli``). So a shape error from inside a
compiled program never reads as if the user had typed something wrong.

The classes also derive from the built-in exception a library caller would expect (``ValueError`` for a bad
value, ``FileNotFoundError`` for a missing path, ...), so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class UserInputError(Exception):
    """The input was wrong: the base of every rlrec exception shown to a user as one ``error:`` line."""


class InputError(UserInputError, ValueError):
    """A value, name, setting or file's content that rlrec cannot use; the message names the fix."""


class PathInputError(UserInputError, OSError):
    """A path the user named cannot be used as asked (missing, a file for a folder, already taken, ...)."""


class MissingPathError(PathInputError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class NotAFolderError(PathInputError, NotADirectoryError):
    """A path the user gave as a folder is a file."""


class PathTakenError(PathInputError, FileExistsError):
    """A path the user gave already holds something rlrec will not overwrite."""


class PathPermissionError(PathInputError, PermissionError):
    """A path the user gave cannot be written (or read) with this account's permissions."""


class StateError(UserInputError, RuntimeError):
    """A call made in the wrong order or on a resource in use (a locked run folder, ``step`` before ``reset``)."""
