"""Study names: which a new study may have, and the folder its exports go to.

A study name becomes a folder under ``storage/`` and part of SQLite table names, so a new study's name
(``--study-name``, a TOML ``name``, ``Batch(name=...)``, ``BatchRun(study_name=...)``) is 1 to
:data:`MAX_LENGTH` characters among letters, digits and ``_ - . + =``, not starting with ``.``. A study
with another name (made by plain Optuna or an older larvastudy) can still be read, run and exported: its
folder is the name percent-encoded (:func:`folder_name`).
"""

from __future__ import annotations

import hashlib
import string
from pathlib import Path
from typing import TypeGuard

from larvastudy.errors import SpecError

#: The longest new study name: its folder name, and the names of files made beside it, stay far below
#: the 255 bytes file systems allow.
MAX_LENGTH = 128
#: The characters of a new study name.
CHARACTERS = frozenset(string.ascii_letters + string.digits + "_-.+=")
#: What a valid name is, for messages.
RULE = f"use 1 to {MAX_LENGTH} letters, digits and _ - . + = (not starting with '.')"
#: Files SQLite keeps beside a database file ``<db>``: a study folder must not take one of their names.
_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal", ".lock")


def is_valid(name: object) -> TypeGuard[str]:
    """Whether ``name`` may name a new study."""
    return (isinstance(name, str) and 0 < len(name) <= MAX_LENGTH and not name.startswith(".")
            and set(name) <= CHARACTERS)


def check_name(name: object, what: str = "study name") -> str:
    """``name`` if it may name a new study, else a SpecError naming it and :data:`RULE`."""
    if not is_valid(name):
        raise SpecError(f"invalid {what} {shown(name)}: {RULE}")
    return name


def shown(name: object) -> str:
    """``name`` quoted for a one-line message, shortened if long."""
    text = repr(name)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(str(name))} characters)"


def invalid_hint(name: str) -> str:
    """For a message saying study ``name`` does not exist: why it also could not be made, if so."""
    return "" if is_valid(name) else f" (nor could it be made: {RULE})"


def folder_name(name: str) -> str:
    """The folder of study ``name``: the name itself if valid, else percent-encoded (each character outside
    :data:`CHARACTERS`, and a leading ``.``, as ``%XX`` per UTF-8 byte), which maps distinct names to
    distinct folders and never to a valid name's. An encoding longer than :data:`MAX_LENGTH` is cut and
    ends with ``%%`` and a hash of the whole name (an encoding never has ``%%``)."""
    if is_valid(name):
        return name
    encoded = "".join(c if c in CHARACTERS and not (i == 0 and c == ".") else
                      "".join(f"%{byte:02X}" for byte in c.encode("utf-8", "surrogatepass"))
                      for i, c in enumerate(name))
    if len(encoded) > MAX_LENGTH:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        encoded = f"{encoded[:MAX_LENGTH - 18]}%%{digest}"
    return encoded


def study_folder(root: Path, name: str) -> Path:
    """``root/<folder_name(name)>``, resolved; a SpecError unless it lies directly inside ``root`` (a second
    line of defence, which also refuses a symbolic link leading out) and is a folder or nothing yet, and not
    the name of a SQLite file's companion there (``<db>-wal``, ...)."""
    root = Path(root).resolve()
    folder = (root / folder_name(name)).resolve()
    if folder.parent != root:
        raise SpecError(f"the folder of study {shown(name)}, {folder}, is not inside {root}")
    if folder.exists() and not folder.is_dir():
        raise SpecError(f"the folder of study {shown(name)}, {folder}, is a file: choose another study name")
    for suffix in _SQLITE_COMPANIONS:
        if folder.name.endswith(suffix) and (root / folder.name.removesuffix(suffix)).is_file():
            raise SpecError(f"the folder of study {shown(name)}, {folder}, would take the name of a SQLite file "
                            "of that folder: choose another study name")
    return folder
