"""The real-time two-stream pipeline (stages 1-5) and its YAML settings; several pairs through one engine in
multi.py."""
from .multi import MultiPipeline, MultiSummary, print_multi_summary
from .runner import Pipeline, Summary, print_summary
from .settings import MultiSettings, PipelineSettings, is_multi, load_multi, load_pipeline

__all__ = ["MultiPipeline", "MultiSettings", "MultiSummary", "Pipeline", "PipelineSettings", "Summary", "is_multi",
           "load_multi", "load_pipeline", "print_multi_summary", "print_summary"]
