"""Stage 1-2: capture threads and pairing of the two streams."""
from .pairing import LivePairer, PairStats, RecordedPairer
from .queues import END, Closed, FrameQueue
from .reader import CaptureThread
from .sources import Frame, Source, SourceInfo, open_source, source_kind

__all__ = ["CaptureThread", "Closed", "END", "Frame", "FrameQueue", "LivePairer", "PairStats", "RecordedPairer",
           "Source", "SourceInfo", "open_source", "source_kind"]
