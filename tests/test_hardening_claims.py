"""Issue 16, items 2 and 8, with real processes on real SQLite files: claims are never stolen across PID
namespaces (containers with one host name) yet a killed process on this machine is recovered at once;
SIGTERM and SIGHUP stop a run cleanly; pool workers do not outlive a killed parent; ``--grace`` is bounded."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlite_utils

from larvastudy.definition.batch import batch_from_kwargs
from larvastudy.execution.claimbook import ClaimBook
from larvastudy.execution.plan import all_tasks
from larvastudy.study import open_storage, open_study, storage_url
from larvastudy.study.owner import is_dead, owner_id

from conftest import missing
from seams import exactly_once

#: A command in a new PID namespace with its own /proc: ``sh`` is its PID 1, larvastudy gets an ordinary PID.
NEW_PID_NAMESPACE = ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", '"$@"; exit $?', "sh"]
#: 240 simulations of a few larvae for one minute: about 1 s of engine work, claimed 5 at a time.
SWEEP = {"experiment": "dish", "sample": {"Npoints": [1, 2, 3, 4, 5, 6]}, "fixed": {"duration": 1.0}, "Nsims": 40}


def larvastudy(*args: str) -> list[str]:
    return [sys.executable, "-m", "larvastudy.cli", *args]


def can_unshare() -> bool:
    try:
        return subprocess.run([*NEW_PID_NAMESPACE, "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def new_study(db: Path, name: str, **changes) -> int:
    """Create study ``name`` of :data:`SWEEP` in ``db``; its number of simulations."""
    batch = batch_from_kwargs(**{**SWEEP, **changes}, name=name)
    open_study(batch, open_storage(storage_url(db)), name)
    return batch.grid_size


def worker(db: Path, name: str, *extra: str, prefix: tuple[str, ...] = ()) -> subprocess.Popen:
    return subprocess.Popen([*prefix, *larvastudy("worker", name, "--storage", str(db), "--chunk-size", "5", *extra)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def rows(db: Path, sql: str) -> list[dict]:
    return list(sqlite_utils.Database(db).query(sql))


def events(db: Path, event: str) -> list[dict]:
    return rows(db, f"select task, owner, detail from larvastudy_claim_events where event = '{event}'")


def held(db: Path) -> int:
    try:
        return rows(db, "select count(*) as n from larvastudy_claims where state = 'running'")[0]["n"]
    except Exception:  # the table does not exist yet
        return 0


def wait_until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# --- item 2: claims in containers -------------------------------------------------------------------------------

def test_an_owner_is_judged_only_in_its_own_host_boot_and_pid_namespace():
    me = owner_id()
    host, pid, _, boot, pidns, start = me.split(":")
    assert (host, pid) == (socket.gethostname(), str(os.getpid()))
    assert not is_dead(me)
    assert is_dead(f"{host}:{pid}:cafe:{boot}:{pidns}:{int(start) + 1}"), "a reused PID is not its old owner"
    child = subprocess.Popen(["true"])  # a PID that no longer runs
    child.wait()
    assert is_dead(f"{host}:{child.pid}:cafe:{boot}:{pidns}:{start}")
    for other in (f"{host}:{child.pid}:cafe:{boot}:{int(pidns) + 1}:{start}",  # another container
                  f"{host}:{child.pid}:cafe:{'0' * 32}:{pidns}:{start}",  # before a reboot
                  f"elsewhere:{child.pid}:cafe:{boot}:{pidns}:{start}",  # another machine
                  f"{host}:{child.pid}:cafe"):  # an older larvastudy's owner
        assert not is_dead(other), other


def test_a_zombie_owner_is_dead():
    child = subprocess.Popen(["true"])
    wait_until(lambda: Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z")
    host, _, _, boot, pidns, _ = owner_id().split(":")
    start = Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[19]
    assert is_dead(f"{host}:{child.pid}:cafe:{boot}:{pidns}:{start}")
    child.wait()


def test_workers_in_two_pid_namespaces_with_one_host_name_steal_nothing(tmp_path):
    if not can_unshare():
        missing("needs `unshare --pid --fork --mount-proc` (root or user namespaces)")
    db = tmp_path / "s.db"
    total = new_study(db, "boxes")
    host = worker(db, "boxes")
    wait_until(lambda: held(db))
    boxed = worker(db, "boxes", prefix=tuple(NEW_PID_NAMESPACE))
    outputs = [proc.communicate(timeout=120) for proc in (host, boxed)]
    assert [host.returncode, boxed.returncode] == [0, 0], outputs
    ran = [int(re.search(r"this worker ran (\d+)", out)[1]) for out, _ in outputs]
    assert min(ran) > 0 and sum(ran) == total, ran
    assert events(db, "lost") == []
    exactly_once(db, total)


def test_a_killed_owner_in_this_pid_namespace_is_recovered_at_once(tmp_path):
    db = tmp_path / "s.db"
    total = new_study(db, "killed")
    victim = worker(db, "killed")  # default grace: 60 s before its lease expires
    wait_until(lambda: held(db))
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    start = time.monotonic()
    rescuer = subprocess.run(larvastudy("worker", "killed", "--storage", str(db)), capture_output=True, text=True,
                             timeout=120)
    assert rescuer.returncode == 0, rescuer.stderr
    assert time.monotonic() - start < 30, "the dead owner's claims waited for their lease"
    lost = events(db, "lost")
    assert lost and all(e["owner"].split(":")[1] == str(victim.pid) and "died" in e["detail"] for e in lost)
    exactly_once(db, total)


def test_a_process_never_takes_back_its_own_expired_claims(tmp_path):
    batch = batch_from_kwargs(**{**SWEEP, "Nsims": 2}, name="own")
    rdb = open_storage(storage_url(tmp_path / "s.db"))
    open_study(batch, rdb, "own")
    book = ClaimBook(rdb, rdb.get_study_id_from_name("own"), batch, all_tasks(batch), grace=0.05, retries=0)
    book.prepare(set, fresh=True)
    first = book.claim(4)
    time.sleep(0.1)  # its lease expired, but its workers still run them
    again = book.claim(100)
    assert {(t.grid_point, t.replicate) for t in first}.isdisjoint((t.grid_point, t.replicate) for t in again)
    assert len(first) + len(again) == batch.grid_size and book.claim(100) == []
    assert events(tmp_path / "s.db", "lost") == []


# --- item 8: signals, orphans, --grace ---------------------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM])
def test_sighup_and_sigterm_to_the_group_stop_a_run_cleanly_and_it_resumes_exactly_once(tmp_path, signum):
    """As a terminal that hangs up (SIGHUP) or a scheduler (SIGTERM) does: the signal goes to the whole
    process group, pool workers included; only the parent acts on it."""
    (tmp_path / "slow.toml").write_text('experiment = "dish"\nNsims = 30\n[sample]\nNpoints = [20, 30]\n'
                                        '[fixed]\nduration = 3.0\n')  # about 1 s of engine work on 2 cores
    db = tmp_path / "s.db"
    args = ("run", "slow.toml", "--storage", str(db), "-j", "2", "--log-every", "0")
    proc = subprocess.Popen(larvastudy(*args), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    wait_until(lambda: held(db))
    os.killpg(proc.pid, signum)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signum, stderr
    message = [line for line in stderr.splitlines() if line.startswith("interrupted: ")]
    assert len(message) == 1 and message[0].endswith("resume with: larvastudy " + " ".join(args)), stderr
    assert "Traceback" not in stderr
    assert held(db) == 0
    assert rows(db, "select count(*) as n from trials where state != 'COMPLETE'") == [{"n": 0}]
    resumed = subprocess.run(larvastudy(*args), cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    exactly_once(db, 60)
    assert events(db, "lost") == []


def test_worker_and_export_stop_on_sighup_and_sigterm_with_one_line(tmp_path):
    db = tmp_path / "s.db"
    new_study(db, "stops")
    work = worker(db, "stops")
    wait_until(lambda: held(db))
    os.killpg(work.pid, signal.SIGHUP)
    _, stderr = work.communicate(timeout=30)
    assert work.returncode == 128 + signal.SIGHUP and stderr.splitlines()[-1].startswith("interrupted: "), stderr
    assert held(db) == 0 and "Traceback" not in stderr
    export = subprocess.Popen(larvastudy("export", "stops", "--storage", str(db)), cwd=tmp_path, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_until(lambda: _catches(export.pid, signal.SIGTERM))
    export.terminate()
    _, stderr = export.communicate(timeout=30)
    assert export.returncode == 128 + signal.SIGTERM and stderr.count("\n") == 1 and "interrupted" in stderr, stderr


def _catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler for ``signum`` (so the command, not Python's start-up, gets it)."""
    caught = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("SigCgt"))
    return bool(int(caught.split()[1], 16) >> (signum - 1) & 1)


def test_pool_workers_die_with_their_killed_parent(tmp_path):
    db = tmp_path / "s.db"
    new_study(db, "orphans", fixed={"duration": 3.0}, sample={"Npoints": [30]}, Nsims=200)
    parent = subprocess.Popen(larvastudy("worker", "orphans", "--storage", str(db), "-j", "2", "--chunk-size", "100"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_until(lambda: held(db) == 200)  # both workers are in the middle of a chunk of several seconds
    children = [int(pid) for pid in Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split()]
    assert len(children) == 2
    parent.kill()
    killed = time.monotonic()
    parent.wait()
    wait_until(lambda: not any(_running(pid) for pid in children), timeout=1.0)
    assert time.monotonic() - killed < 1.0


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("command, grace", [("run", "0.05"), ("run", "inf"), ("worker", "nan")])
def test_a_grace_out_of_range_is_one_line_and_exit_2(tmp_path, command, grace):
    result = subprocess.run(larvastudy(command, "PItest_off", "--storage", str(tmp_path / "s.db"), "--grace", grace),
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and f"got {grace}" in result.stderr and "from 2 to 86400" in result.stderr
    assert list(tmp_path.iterdir()) == []
