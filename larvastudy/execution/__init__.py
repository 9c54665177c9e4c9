"""Running Batch sweeps: worker processes, chunked engine calls, exactly-once trials, resume."""

from larvastudy.execution.sweep import ProgressCallback, SweepInterrupted, SweepSummary, run_batch

__all__ = ["ProgressCallback", "SweepInterrupted", "SweepSummary", "run_batch"]
