"""The errors a user can cause, each answered in one line by the command line.

Every step raises one of these (or a plain ``ValueError``, ``KeyError`` or
``FileNotFoundError`` for a bad name or path, which the command line treats like a
:class:`UsageError`) with a message that names the file, column, parameter or path at fault and
says what to do. ``lue-spie`` (:func:`lue_spie.cli.main`) prints that message as one line and
exits with the error's :attr:`LueSpieError.exit_code`: 2 for a command that cannot run as given
(a usage error), 1 for data or results that are wrong, damaged, or made from other inputs, and
for a write that failed. A traceback is printed only with ``--debug`` (or
``LUE_SPIE_DEBUG=1``).
"""

from __future__ import annotations

__all__ = ["LueSpieError", "UsageError", "DataError", "OutputError", "USAGE", "DATA"]

#: Exit status of a command that cannot run as given (argparse's own status for bad options).
USAGE = 2
#: Exit status of a command stopped by its data or results (or a failed write).
DATA = 1


class LueSpieError(Exception):
    """An error the user can fix, with a one-line message that says how.

    Attributes:
        exit_code: The command's exit status for this error.
    """

    exit_code: int = DATA


class UsageError(LueSpieError, ValueError):
    """The command cannot run as given: an option, a name or a path (an output folder that is a
    file, on a read-only file system or without space) the user chose."""

    exit_code = USAGE


class DataError(LueSpieError, ValueError):
    """Data or results that cannot be used: a damaged or truncated file, a table of another
    schema, or results made from other inputs than the ones given."""

    exit_code = DATA


class OutputError(LueSpieError, OSError):
    """A result could not be written (no space left, a read-only file system, no permission);
    names the file and what to do. Whatever was written before stays valid (every write is
    atomic), so the same command resumes once the cause is fixed."""

    exit_code = DATA

    def __str__(self) -> str:
        # The one-line message given, not the system's "[Errno N] ..." form that OSError
        # builds from the errno, strerror and filename attributes.
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()
