"""Running Batches: grid sweeps (claims shared by any number of processes, exactly-once trials, resume)
and adaptive fits (an Optuna sampler proposing points), both on worker processes."""

from larvastudy.execution.adaptive import ADAPTIVE_SAMPLERS, FitInterrupted, FitSummary
from larvastudy.execution.plan import ProgressCallback
from larvastudy.execution.sweep import GRACE, SweepInterrupted, SweepSummary, check_grace, join_sweep, run_batch

__all__ = ["ADAPTIVE_SAMPLERS", "GRACE", "FitInterrupted", "FitSummary", "ProgressCallback", "SweepInterrupted",
           "SweepSummary", "check_grace", "join_sweep", "run_batch"]
