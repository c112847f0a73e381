"""Benchmarks: the engine matrix with telemetry, the end-to-end pipeline, and reports from saved results."""
from .matrix import BenchSettings, run_matrix, save
from .report import load_results, markdown_table, plot, update_readme

__all__ = ["BenchSettings", "load_results", "markdown_table", "plot", "run_matrix", "save", "update_readme"]
