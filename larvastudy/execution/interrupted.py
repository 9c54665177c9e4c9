"""A run (grid sweep or fit) stopped by Ctrl-C, SIGTERM or SIGHUP, as the exception it raises."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # both modules raise a subclass of RunInterrupted
    from larvastudy.execution.adaptive import FitSummary
    from larvastudy.execution.sweep import SweepSummary


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C, SIGTERM or SIGHUP (``signum``) stopped the run; what it finished is stored, what it had started
    is given back (:attr:`released_as`), and running it again carries on (:attr:`again`)."""

    #: What became of the work the run had started, and how to carry on: each kind of run says its own.
    released_as: ClassVar[str]
    again: ClassVar[str]

    def __init__(self, summary: SweepSummary | FitSummary, signum: int):
        #: What is stored and what was given back, without the advice to rerun.
        self.stored = (f"interrupted: {summary.complete}/{summary.total} {summary.unit} of study "
                       f"{summary.study_name!r} are stored in {summary.storage_url} ({summary.ran} by this run; "
                       f"{summary.released} it had started {self.released_as})")
        super().__init__(f"{self.stored}; {self.again}")
        self.summary, self.signum = summary, signum
