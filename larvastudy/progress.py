"""A run's progress for a person: a live bar on a terminal, a plain log line every few seconds elsewhere."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

#: Seconds between plain progress lines where the output is not a terminal (a cluster job's log, nohup).
LOG_EVERY = 10.0


def clock(seconds: float) -> str:
    """``seconds`` as ``m:ss`` or ``h:mm:ss``."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressDisplay:
    """A :data:`~larvastudy.execution.ProgressCallback` that shows ``name``'s progress on ``console``.

    The rate counts only what this run completed, and the time left assumes it continues at that rate.
    Call :meth:`close` when the run ends; nothing is shown before the first call, so an error that
    comes first stays a single line.
    """

    def __init__(self, name: str, console: Console, unit: str = "simulations", log_every: float = LOG_EVERY):
        self._name, self._console, self._unit, self._log_every = name, console, unit, log_every
        self._first: int | None = None
        self._bar: Progress | None = None
        self._logged_at = time.monotonic()

    def __call__(self, done: int, failed: int, total: int, elapsed: float) -> None:
        if self._first is None:
            self._first = done
        text = self.describe(done, failed, total, elapsed)
        if self._console.is_terminal:
            if self._bar is None:
                self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                     TextColumn("{task.fields[text]}"), console=self._console, transient=True)
                self._bar.add_task(self._name, total=total, text=text)
                self._bar.start()
            self._bar.update(self._bar.task_ids[0], completed=done, total=total, text=text)
        elif time.monotonic() - self._logged_at >= self._log_every:
            self._console.print(f"{self._name}: {text}", markup=False, highlight=False)
            self._logged_at = time.monotonic()

    def describe(self, done: int, failed: int, total: int, elapsed: float) -> str:
        """``done/total unit, failed, rate, elapsed, time left``, e.g.
        ``80/160 simulations (50 %), 0 failed, 40.0/s, elapsed 0:02, about 0:02 left``."""
        rate = (done - (self._first or 0)) / elapsed if elapsed > 0 else 0.0
        left = f"about {clock((total - done) / rate)} left" if rate > 0 and done < total else "time left unknown"
        share = f" ({done / total:.0%})" if total else ""
        return (f"{done}/{total} {self._unit}{share}, {failed} failed, {rate:.1f}/s, "
                f"elapsed {clock(elapsed)}, {left if done < total else 'done'}")

    def close(self) -> None:
        """Remove the bar (the caller prints how the run ended)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
