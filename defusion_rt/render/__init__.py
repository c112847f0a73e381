"""Stage 5: overlays, display and recording."""
from .display import Window, has_screen
from .overlay import StatsOverlay, side_by_side
from .sink import TimingLog, VideoSink

__all__ = ["StatsOverlay", "TimingLog", "VideoSink", "Window", "has_screen", "side_by_side"]
