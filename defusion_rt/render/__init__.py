"""Stage 5: overlays, display and recording (stage.py wires them for the pipeline)."""
from .display import Window, has_screen
from .overlay import StatsOverlay, side_by_side
from .sink import TimingLog, VideoSink
from .stage import RenderSettings, RenderStage

__all__ = ["RenderSettings", "RenderStage", "StatsOverlay", "TimingLog", "VideoSink", "Window", "has_screen",
           "side_by_side"]
