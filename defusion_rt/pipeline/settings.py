"""Pipeline settings, one section per stage (the keys of a pipelines/*.yaml file); every key is validated."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..config import build, load_yaml


@dataclass
class SourcesSettings:
    a: str = "sample:ir"        # camera index, video file, URL, folder of frames, or sample:ir / sample:vis
    b: str = "sample:vis"
    mode: str = "auto"          # auto (live if a camera or URL is involved) | recorded | live
    paced: bool = False         # play recorded sources at their frame rate, as cameras would
    fps: float = 0.0            # frame rate of folders, samples and paced videos (0: a video's own, 25 for folders,
                                # 30 for samples)
    tolerance_ms: float = 20.0  # live pairing: largest capture-time difference of a pair
    queue: int = 4              # frames buffered per source (live sources keep only the freshest)
    timeout_s: float = 5.0      # network open/read timeout, and the stall watchdog on frame age
    reconnect: bool = True      # live sources reopen with exponential back-off after a drop
    sample_frames: int = 90     # length of the built-in sample streams


@dataclass
class RegisterSettings:
    method: str = "none"        # none | auto (cross-modal, checked) | ecc | features | path to a calibration YAML
    model: str = "homography"   # homography | affine, for auto and features
    fov: str = "crop"           # crop to the common field of view | pad (keep A's full frame)
    allow_untrusted: bool = False  # recorded runs: fuse unregistered when the estimate fails its check


@dataclass
class FusionSettings:
    task: str = "ir-vis"        # ir-vis | multi-exposure | multi-focus
    method: str = "defusion"    # defusion | average | max | laplacian | mertens
    # auto (model, engine, precision): camera rate first; on a CPU the real-time variant defusion_fast through
    # torch.export in bf16; on CUDA the task's best variant in fp16 (engines.auto_choice). Name them to choose.
    model: str = "auto"         # auto | defusion | defusion_fast | defusion_lite
    engine: str = "auto"        # auto | eager | torchscript | compile | export | onnx | tensorrt
    device: str = "auto"        # auto | cpu | cuda
    precision: str = "auto"     # auto | fp32 | fp16 (CUDA) | bf16
    batch: int = 1              # pairs fused per call for recorded sources (live sources fuse one at a time)
    weights: str = ""           # empty: the weights shipped in the package
    colour: bool = False        # ir-vis: keep the visible image's colour


@dataclass
class RenderSettings:
    display: bool = False       # an OpenCV window (q or Esc stops); ignored without a screen
    side_by_side: bool = False  # show and record A | B | fused
    overlay: bool = True        # FPS, latency and drops drawn on the output
    record: str = ""            # output video path (.mp4: H.264 via PyAV, else MPEG-4 Part 2; .avi: MJPG)
    codec: str = "auto"         # auto | h264 | mp4v
    csv: str = ""               # per-frame timestamps and latencies


@dataclass
class RunSettings:
    max_frames: int = 0         # stop after this many fused frames (0: when the sources end)
    progress: bool = True       # progress bar for recorded sources


@dataclass
class PipelineSettings:
    sources: SourcesSettings = field(default_factory=SourcesSettings)
    register: RegisterSettings = field(default_factory=RegisterSettings)
    fusion: FusionSettings = field(default_factory=FusionSettings)
    render: RenderSettings = field(default_factory=RenderSettings)
    run: RunSettings = field(default_factory=RunSettings)


def load_pipeline(path: str | None = None) -> PipelineSettings:
    return build(PipelineSettings, load_yaml(path) if path else {})
