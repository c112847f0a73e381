"""Stage 4: fusion. The Fuser (an engine plus a task's conventions), video frames through it (StreamedFuser),
image files through it (fuse_paths), and the pipeline's fusion stage (stage.py)."""
from .files import fuse_paths, pair_folders
from .fuser import Fuser, decompose, decomposition_network, display_gain, to_image, to_tensor
from .stage import FusedFrame, FusionSettings, FusionStage, make_engine
from .streamed import StreamedFuser

__all__ = ["FusedFrame", "FusionSettings", "FusionStage", "Fuser", "StreamedFuser", "decompose",
           "decomposition_network", "display_gain", "fuse_paths",
           "make_engine", "pair_folders", "to_image", "to_tensor"]
