"""The Optuna side of a Batch: storage, one study per Batch, and trials in the exporter's layout."""

from larvastudy.study.delete import Deleted, delete_study
from larvastudy.study.grid import distributions, grid_ids, grid_sampler, search_space
from larvastudy.study.records import add_trials
from larvastudy.study.storage import default_outdir, display_url, open_storage, setup_lock, storage_url
from larvastudy.study.study import BATCH_ATTR, completed, load_study, open_study

__all__ = [
    "BATCH_ATTR", "Deleted", "add_trials", "completed", "default_outdir",
    "delete_study", "display_url", "distributions", "grid_ids", "grid_sampler", "load_study", "open_storage",
    "open_study", "search_space", "setup_lock", "storage_url",
]
