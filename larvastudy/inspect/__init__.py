"""Inspecting a Batch study: replicate statistics and power, sensitivity, an HTML report, the dashboard."""
