"""Running Batch sweeps: claims shared by any number of processes, worker pools, exactly-once trials, resume."""

from larvastudy.execution.sweep import GRACE, ProgressCallback, SweepInterrupted, SweepSummary, join_sweep, run_batch

__all__ = ["GRACE", "ProgressCallback", "SweepInterrupted", "SweepSummary", "join_sweep", "run_batch"]
