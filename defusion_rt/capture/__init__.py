"""Stages 1-2: capture threads and pairing of the two streams (stage.py wires them for the pipeline)."""
from .pairing import LivePairer, PairStats, RecordedPairer
from .queues import END, Closed, FrameQueue
from .reader import CaptureThread
from .sources import Frame, Source, SourceInfo, open_source, source_kind
from .stage import CaptureStage, SourcesSettings

__all__ = ["CaptureStage", "CaptureThread", "Closed", "END", "Frame", "FrameQueue", "LivePairer", "PairStats",
           "RecordedPairer", "Source", "SourceInfo", "SourcesSettings", "open_source", "source_kind"]
