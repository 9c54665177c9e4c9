"""The errors larvastudy raises on purpose; the CLI prints each as one line and exits with its ``exit_code``.

- :class:`LarvastudyError`: the base, exit code 2;
- :class:`SpecError`: an invalid definition, parameter, value or option (also a ValueError);
- :class:`StorageError`: a storage that cannot be opened or read;
- :class:`ConflictError`: a request that clashes with what is stored or running (:class:`DefinitionChanged`,
  a study in use, a study of the other kind);
- :class:`ExportError`: an export file or table that could not be written (exit 1 or 2).
"""

from __future__ import annotations

import errno
import sqlite3


class LarvastudyError(Exception):
    """An error larvastudy raises on purpose, with a one-line message naming the problem."""

    #: The CLI's exit code for this error.
    exit_code = 2


class SpecError(LarvastudyError, ValueError):
    """An invalid experiment, parameter, value or Batch definition."""


class StorageError(LarvastudyError):
    """A storage that cannot be opened: a bad URL, a missing driver, file or server, or a file that is not one."""


class ConflictError(LarvastudyError):
    """A request that clashes with what is stored or running: nothing was changed."""


class DefinitionChanged(ConflictError):
    """A run asked for a study under a name whose stored definition differs in ``found`` (``name: stored ->
    requested``, see :mod:`larvastudy.study.identity`). Its message is for Python callers (``study_name=``,
    ``replace=True``); :meth:`for_cli` words the ways on as the command line's options."""

    #: Differences the one-line message lists before "and N more".
    SHOWN = 4

    def __init__(self, study_name: str, where: str, found: list[str]):
        self.study_name, self.where, self.found = study_name, where, found
        super().__init__(self._text("another study_name=", "replace=True"))

    def for_cli(self) -> str:
        """The message with the command line's options."""
        return self._text("--study-name NAME", "--replace")

    def _text(self, rename: str, replace: str) -> str:
        listed = "; ".join(self.found[:self.SHOWN])
        if len(self.found) > self.SHOWN:
            listed += f"; and {len(self.found) - self.SHOWN} more"
        return (f"study {self.study_name!r} in {self.where} holds another definition: {listed}; run it under a "
                f"new name ({rename}) or delete the stored study and start again ({replace})")


class InertParameterWarning(UserWarning):
    """A parameter that is set or swept but cannot change any result (the CLI prints it as one line)."""


class ExportError(LarvastudyError):
    """An export file or table that could not be written, naming it and the cause. Exit code 2 when the place
    cannot be written to (read-only, no permission, not a folder), 1 when the disk or database failed (full
    disk, I/O error)."""

    def __init__(self, what: str, cause: OSError | sqlite3.Error):
        if isinstance(cause, OSError):
            text = cause.strerror or str(cause)
            self.exit_code = 2 if cause.errno in _PLACE_ERRNOS else 1
        else:
            text = str(cause)
            self.exit_code = 2 if "readonly" in text else 1
        super().__init__(f"cannot write {what}: {text}")


#: errno values that mean "this place cannot be written to", not "the write failed".
_PLACE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.EEXIST,
                           errno.ENAMETOOLONG})
