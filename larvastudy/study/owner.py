"""Who holds a claim: a name for this process, and whether the process a name belongs to provably died.

An owner is ``host:pid:nonce:boot:pidns:start``: the host name, the PID, a random nonce (so no two
processes ever share a name), and, where this process can read them from its own ``/proc``, the
kernel's boot id, the inode of its PID namespace and its start time in clock ticks since boot.

Only an owner whose host, boot id and PID namespace are all this process's own can be judged, and it
is dead when no process has its PID, or that PID's process is a zombie or started at another time (the
PID was reused). Every other owner — another machine, another container (same host name, other PID
namespace: Docker ``--network host``, Kubernetes ``hostNetwork``), before a reboot, an owner written
by an older larvastudy, or any owner when this process's ``/proc`` is not its own — is never taken
for dead: only its lease's expiry frees its claims. A PID namespace that was destroyed cannot hold a
live process, so a later namespace reusing its inode number judges correctly too.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path

_PROC = Path("/proc")


@dataclass(frozen=True)
class _Where:
    """Where a process lives: the kernel boot and the PID namespace (as ``/proc`` spells them)."""

    boot: str
    pidns: str


def owner_id() -> str:
    """A name for this process that no other process, here or elsewhere, ever had (see the module)."""
    host, pid, nonce = socket.gethostname(), os.getpid(), uuid.uuid4().hex[:8]
    where, start = _here(), _start_time(pid)
    if where is None or start is None:
        return f"{host}:{pid}:{nonce}"
    return f"{host}:{pid}:{nonce}:{where.boot}:{where.pidns}:{start}"


def is_dead(owner: str) -> bool:
    """Whether ``owner`` is provably a process that no longer runs (see the module; never a guess)."""
    parts = owner.split(":")
    where = _here()
    if (len(parts) != 6 or where is None or parts[0] != socket.gethostname()
            or _Where(parts[3], parts[4]) != where or not parts[1].isdigit()):
        return False
    pid = int(parts[1])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process: it exists
        pass
    try:
        fields = _stat(pid)
    except (OSError, IndexError):
        return True  # it exited between the two looks
    return fields[0] == "Z" or fields[19] != parts[5]


@cache
def _here() -> _Where | None:
    """This process's boot and PID namespace, or None where its ``/proc`` is not its own PID namespace's
    (``unshare --pid`` without ``--mount-proc``) or does not exist: then no PID it shows can be trusted."""
    try:
        if (_PROC / "self").readlink().name != str(os.getpid()):
            return None
        boot = (_PROC / "sys/kernel/random/boot_id").read_text().strip().replace("-", "")
        pidns = (_PROC / "self/ns/pid").readlink().name.removeprefix("pid:[").removesuffix("]")
    except OSError:
        return None
    return _Where(boot, pidns) if boot and pidns.isdigit() else None


def _start_time(pid: int) -> str | None:
    """When process ``pid`` started, in clock ticks since boot, or None if ``/proc`` cannot tell."""
    if _here() is None:
        return None
    try:
        return _stat(pid)[19]
    except (OSError, IndexError):
        return None


def _stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name: state first, start time at index 19."""
    return (_PROC / str(pid) / "stat").read_text().rpartition(")")[2].split()
