"""The real-time two-stream pipeline (stages 1-5) and its YAML settings."""
from .runner import Pipeline, Summary, print_summary
from .settings import PipelineSettings, load_pipeline

__all__ = ["Pipeline", "PipelineSettings", "Summary", "load_pipeline", "print_summary"]
