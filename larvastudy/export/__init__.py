"""Exports of a Batch study: larvaworld's par_df, summary statistics, figures and stored tables."""

from larvastudy.export.figures import make_figures
from larvastudy.export.par_df import build_par_df, summary_df
from larvastudy.export.store import Exported, export_study

__all__ = ["Exported", "build_par_df", "export_study", "make_figures", "summary_df"]
