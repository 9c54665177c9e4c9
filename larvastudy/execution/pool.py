"""Worker processes that stay up for a whole sweep, each fed engine-call chunks as it finishes them."""

from __future__ import annotations

import multiprocessing
import os
import queue
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Generic

from larvastudy.definition.batch import Batch
from larvastudy.execution.tasks import Outcome, TaskT
from larvastudy.execution.worker import Simulate, worker_main

#: Seconds to wait for a result before checking whether a worker died.
POLL = 0.5
#: "fork" on Linux: workers start in milliseconds with the engine already imported, and scripts
#: without an ``if __name__ == "__main__"`` guard (like the Batch page's examples) still work, where
#: spawn and forkserver re-import the user's script. Workers never touch the parent's storage
#: connections and are stopped with SIGKILL, so no inherited SQLAlchemy connection is ever used or
#: closed in a child. Elsewhere fork is unsafe (macOS) or absent (Windows): spawn.
START = multiprocessing.get_context("fork") if sys.platform == "linux" else multiprocessing.get_context("spawn")


class WorkerPool(Generic[TaskT]):
    """``n`` worker processes running one Batch's simulations (tasks of one kind: ``WorkerPool[SweepTask]``,
    ``WorkerPool[FitTask]``) with ``simulate``; use as a context manager (leaving it stops them)."""

    def __init__(self, batch: Batch, n: int, simulate: Simulate):
        ctx = START
        self._results = ctx.Queue()
        self._inboxes = [ctx.Queue() for _ in range(n)]
        self._procs = [ctx.Process(target=worker_main, daemon=True, name=f"larvastudy-worker-{i}",
                                   args=(batch, simulate, inbox, self._results, i, os.getpid()))
                       for i, inbox in enumerate(self._inboxes)]
        self._queued: list[deque[list[TaskT]]] = [deque() for _ in range(n)]
        for inbox in self._inboxes:
            inbox.cancel_join_thread()  # chunks left unread by a stopped worker must not block exit
        for proc in self._procs:
            proc.start()

    def __enter__(self) -> WorkerPool[TaskT]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.terminate()

    def run(self, source: Callable[[], list[TaskT]]) -> Iterator[list[Outcome[TaskT]]]:
        """Outcomes of each chunk as it finishes, asking ``source`` for a chunk whenever a worker is free,
        until it returns an empty one. A worker gets its next chunk before the caller stores the last one's
        outcomes, so it never waits for the caller's writes, and it holds one chunk at a time, so the last
        chunks go to whichever worker is free first and a stop loses only the chunks being run."""
        todo = _Chunks(source)
        for worker in range(len(self._procs)):
            self._feed(worker, todo)
        while any(self._queued):
            try:
                worker, outcomes = self._results.get(timeout=POLL)
            except queue.Empty:
                yield from self._reap()
                continue
            self._queued[worker].popleft()
            self._feed(worker, todo)
            yield outcomes

    @property
    def alive(self) -> bool:
        """Whether any worker process still runs."""
        return any(proc.is_alive() for proc in self._procs)

    def stop(self, wait: float) -> Iterator[list[Outcome[TaskT]]]:
        """Stop: the outcomes of the chunks being run that finish within ``wait`` seconds (no new chunk is
        fed), then every worker is stopped."""
        running = {worker for worker, chunks in enumerate(self._queued) if chunks and self._procs[worker].is_alive()}
        deadline = time.monotonic() + wait
        while running and (left := deadline - time.monotonic()) > 0:
            try:
                worker, outcomes = self._results.get(timeout=min(left, POLL))
            except queue.Empty:
                running = {worker for worker in running if self._procs[worker].is_alive()}
                continue
            self._queued[worker].popleft()
            running.discard(worker)
            yield outcomes
        self.terminate()

    def terminate(self) -> None:
        """Stop every worker now (SIGKILL: workers ignore the stop signals, which are their parent's)."""
        for proc in self._procs:
            if proc.is_alive():
                proc.kill()
        for proc in self._procs:
            proc.join()

    def _feed(self, worker: int, todo: _Chunks[TaskT]) -> None:
        if not self._queued[worker] and self._procs[worker].is_alive() and (tasks := todo.next()):
            self._queued[worker].append(tasks)
            self._inboxes[worker].put(tasks)

    def _reap(self) -> Iterator[list[Outcome[TaskT]]]:
        """Fail the chunks of workers that died (e.g. killed for memory); the rest carry on without them."""
        for worker, proc in enumerate(self._procs):
            if proc.is_alive() or not self._queued[worker]:
                continue
            error = f"worker process died (exit code {proc.exitcode})"
            lost = list(self._queued[worker])
            now = datetime.now()
            yield [Outcome(task, {}, None, error, now, now) for tasks in lost for task in tasks]
            self._queued[worker].clear()


class _Chunks(Generic[TaskT]):
    """A chunk source that is asked no more once it returned an empty chunk."""

    def __init__(self, source: Callable[[], list[TaskT]]):
        self._source, self._empty = source, False

    def next(self) -> list[TaskT]:
        tasks = [] if self._empty else self._source()
        self._empty = not tasks
        return tasks
