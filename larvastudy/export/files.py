"""Export files that are whole or absent: never half-written, whatever kills the writer or fills the disk.

Every file is written under a temporary name in the folder it goes to (or in a hidden staging folder
inside the study folder), flushed to disk, then renamed over the old file (``os.replace``, atomic on
one file system): a reader, a kill -9 or a full disk leaves the previous file or the new one. A failed
write removes what it wrote and raises an :class:`~larvastudy.errors.ExportError` naming the file.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from larvastudy.errors import ExportError
from larvastudy.study.owner import is_dead, owner_id

#: Prefix of a staging folder: ``.export-<owner id>@<random>`` (see :mod:`larvastudy.study.owner`).
_STAGING = ".export-"


class Staging:
    """Files staged for one export of ``folder`` (see :func:`staging`); :meth:`commit` puts them in place."""

    def __init__(self, folder: Path, staged: Path):
        self.folder, self._staged = folder, staged
        self._files: list[str] = []
        self.current: Path = folder  # the file being written, for error messages

    def path(self, relative: str) -> Path:
        """Where to write the file that becomes ``folder/relative``."""
        self.current = self.folder / relative
        self._files.append(relative)
        path = self._staged / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def commit(self) -> None:
        """Flush every staged file to disk, then rename each over its target (a reader never sees a partial
        file; the set is complete within the renames' microseconds)."""
        for relative in self._files:
            self.current = self.folder / relative
            _flush(self._staged / relative)
        for relative in self._files:
            self.current = target = self.folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._staged / relative, target)


@contextmanager
def staging(folder: Path) -> Iterator[Staging]:
    """A :class:`Staging` for ``folder`` (created if missing), in a hidden folder inside it that is removed
    at the end, whatever happens. OSErrors become ExportErrors naming the file being written. Staging
    folders left by killed exports on this machine are removed first."""
    folder = Path(folder)
    stage = None
    try:
        _make_folder(folder)
        _remove_abandoned(folder)
        staged = Path(tempfile.mkdtemp(prefix=f"{_STAGING}{owner_id()}@", dir=folder))
        stage = Staging(folder, staged)
        try:
            yield stage
        finally:
            shutil.rmtree(staged, ignore_errors=True)
    except OSError as error:
        raise ExportError(str(stage.current if stage else folder), error) from None


def write_file(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` whole or not at all; its folder is created if missing."""
    path = Path(path)
    temp = None
    try:
        _make_folder(path.parent)
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except OSError as error:
        if temp is not None:
            Path(temp).unlink(missing_ok=True)
        raise ExportError(str(path), error) from None


def _make_folder(folder: Path) -> None:
    """Create ``folder`` and its parents if missing; a file in the way is "Not a directory"."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder)) from None


def _flush(path: Path) -> None:
    """Make the written contents of ``path`` durable (a full disk may only show here, on some file systems)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_abandoned(folder: Path) -> None:
    """Remove the staging folders in ``folder`` of exports whose process provably died (never one of
    another machine or container: :func:`larvastudy.study.owner.is_dead`)."""
    for staged in folder.glob(f"{_STAGING}*"):
        if is_dead(staged.name.removeprefix(_STAGING).rpartition("@")[0]):
            shutil.rmtree(staged, ignore_errors=True)
