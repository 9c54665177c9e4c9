"""Running Batches: grid sweeps (claims shared by any number of processes, exactly-once trials, resume)
and adaptive fits (an Optuna sampler proposing points), both on worker processes.
:func:`larvastudy.api.run_batch` chooses between them."""

from larvastudy.execution.adaptive import ADAPTIVE_SAMPLERS, FitInterrupted, FitSummary, fit_batch
from larvastudy.execution.interrupted import RunInterrupted
from larvastudy.execution.plan import ProgressCallback
from larvastudy.execution.sweep import GRACE, SweepInterrupted, SweepSummary, check_grace, sweep_batch, worker_count

__all__ = ["ADAPTIVE_SAMPLERS", "GRACE", "FitInterrupted", "FitSummary", "ProgressCallback", "RunInterrupted",
           "SweepInterrupted", "SweepSummary", "check_grace", "fit_batch", "sweep_batch", "worker_count"]
