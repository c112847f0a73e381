"""`defusion-rt quantize`: the network in int8 for OpenVINO, by NNCF post-training quantization.

Calibration runs the network on a few hundred pairs like the ones it will fuse: frames of IR-visible videos or
folders of registered pairs, or, for multi-focus and multi-exposure, pairs made from photographs the way training
makes them (train/synthetic.py). The pairs pass through the Fuser's own preprocessing (task conventions, reflect
padding), so the ranges NNCF records are those the engine will see.

Quality is kept by NNCF's accuracy control: a fifth of the pairs is held out, and layers whose int8 form costs
more than `max_drop` of the validation score (fusion_score: Qabf, VIF and MI) go back to float, most harmful
first (per-layer fallback), after the layers known to need float (quantize()). The result is an OpenVINO model with dynamic size, named by the digest of the weights it came from (engines/openvino.py finds it).
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch

from ..engines.base import Engine
from ..engines.compiled import model_digest
from ..engines.openvino import to_openvino
from ..errors import UserError
from ..fusion.files import pair_folders
from ..fusion.fuser import Fuser, to_tensor
from ..imageio import list_images, read_image
from ..metrics import mutual_information, qabf, to_grey255, vif
from ..tasks import check_task, match_sizes


def _video_frames(spec: str, count: int) -> list[np.ndarray]:
    """`count` frames spread evenly over a video file, RGB float."""
    cap = cv2.VideoCapture(spec)
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    if not cap.isOpened() or total <= 0:
        raise UserError(f"cannot read video {spec}: the file is corrupt, truncated or not a video")
    frames = []
    for i in np.linspace(0, total - 1, min(count, total)).astype(int):
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
        ok, img = cap.read()
        if ok:
            frames.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32) / 255)
    cap.release()
    return frames


def _source_pairs(a: str, b: str, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pairs from two folders matched by name, or from two videos frame by frame."""
    if Path(a).is_dir() and Path(b).is_dir():
        found, _ = pair_folders(Path(a), Path(b))
        if not found:
            raise UserError(f"no file names in common between {a} and {b}; pairs are matched by name")
        picks = [found[i] for i in np.linspace(0, len(found) - 1, min(count, len(found))).astype(int)]
        pairs = []
        for pa, pb in picks:
            ia = read_image(pa)
            pairs.append((ia, match_sizes(ia, read_image(pb), resize=True)))
        return pairs
    if Path(a).is_file() and Path(b).is_file():
        fa, fb = _video_frames(a, count), _video_frames(b, count)
        return [(x, match_sizes(x, y, resize=True)) for x, y in zip(fa, fb)]
    raise UserError(f"--a {a} and --b {b} must both be folders of frames or both video files")


def _photo_pairs(task: str, folders: list[str], count: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Synthetic multi-focus or multi-exposure pairs from photographs (a centred square, at most 512 px)."""
    from .synthetic import MAKERS
    if task not in MAKERS:
        raise UserError(f"--data makes {' and '.join(MAKERS)} pairs; for {task} give real pairs with --a/--b")
    photos = [p for f in folders for p in list_images(f, recursive=True)]
    if not photos:
        raise UserError(f"no images found in {', '.join(folders)}")
    rng = np.random.default_rng(seed)
    pairs = []
    for path in rng.choice(photos, min(count, len(photos)), replace=False):
        img = read_image(path)
        side = min(img.shape[:2])
        top, left = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
        sq = cv2.resize(img[top:top + side, left:left + side], (min(side, 512),) * 2, interpolation=cv2.INTER_AREA)
        pairs.append(MAKERS[task](sq, rng))
    return pairs


def calibration_pairs(task: str, a: list[str], b: list[str], photos: list[str], count: int,
                      seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """About `count` pairs, shared evenly among the sources given (--a/--b pairs and --data folders)."""
    check_task(task)
    if len(a or []) != len(b or []):
        raise UserError(f"--a is given {len(a or [])} time(s) and --b {len(b or [])}; give one --b per --a")
    groups = len(a or []) + (1 if photos else 0)
    if not groups:
        raise UserError("give calibration pairs: --a A --b B (folders of frames or two videos), or --data PHOTOS "
                        "for multi-focus and multi-exposure")
    each = max(1, count // groups)
    pairs = [p for x, y in zip(a or [], b or []) for p in _source_pairs(x, y, each)]
    return pairs + (_photo_pairs(task, photos, each, seed) if photos else [])


class _Recorder(Engine):
    """Stands in for an engine inside a Fuser to keep the padded inputs it would be given."""
    name = "recorder"

    def __init__(self, model):
        super().__init__(torch.device("cpu"))
        self.model, self.inputs = model, []

    def __call__(self, a, b):
        self.inputs.append({"a": a.contiguous().numpy().copy(), "b": b.contiguous().numpy().copy()})
        return a.float()


def engine_inputs(model, task: str, pairs: list) -> list[dict]:
    """The padded network inputs the Fuser makes of each pair (task conventions included)."""
    recorder = _Recorder(model)
    fuser = Fuser(recorder, task)
    with torch.inference_mode():
        for a, b in pairs:
            fuser.fuse_tensors(to_tensor(a, recorder.device), to_tensor(b, recorder.device))
    return recorder.inputs


def fusion_score(compiled, inputs) -> tuple[float, list[float]]:
    """NNCF's validation function: mean of Qabf + VIF + MI / 5 over the pairs (and each pair's). The weights make
    the bounds of issue #20 equal (Qabf and VIF within 0.01 of fp32, MI within 0.05); MI rewards copying source
    levels exactly, so it is the first to suffer from quantization noise."""
    scores = []
    for x in inputs:
        out = compiled({"a": x["a"], "b": x["b"]})[0]
        a, b, f = (to_grey255(np.clip(v[0].transpose(1, 2, 0), 0, 1)) for v in (x["a"], x["b"], out))
        scores.append(qabf(a, b, f) + vif(a, f) + vif(b, f) + (mutual_information(a, f) + mutual_information(b, f)) / 5)
    return float(np.mean(scores)), scores


def quantize(model, task: str, pairs: list, max_drop: float = 0.01) -> tuple[object, dict]:
    """(int8 OpenVINO model, report). Every fifth pair validates; the rest calibrate."""
    try:
        import nncf
    except ImportError:
        raise UserError("quantize needs NNCF: pip install 'defusion-rt[quantize]'") from None
    inputs = engine_inputs(model, task, pairs)
    val, calib = inputs[::5], [x for i, x in enumerate(inputs) if i % 5]
    if len(val) < 2 or len(calib) < 8:
        raise UserError(f"{len(inputs)} calibration pairs are too few; give at least 20 (a few hundred is usual)")
    float_model = to_openvino(model)
    # Float from the start where int8 costs the most quality: the embedding sum, the heads and the full-resolution
    # mix (Add, Multiply, head_*), the decoders' last convs (d3) and every bilinear resize (requantizing
    # upsampled features). On the validation pairs all-int8 moved Qabf/MI/VIF by -0.017/-0.28/-0.038, this scope by
    # -0.000/-0.019/-0.001; it costs time (33.6 against 23.6 ms in one AVX2-emulated run):
    # benchmarks/int8_scope.py, benchmarks/results/int8_scope_amd-epyc-2c-avx2-emulated.json. The encoder's stem
    # too since the IR-visible contrast-target weights: with it in int8 their VIFB Qabf moved by 0.011 and MI by
    # 0.10, with it in float by 0.001 and 0.026 (benchmarks/results/int8_stem_scope_amd-epyc-2c.json).
    keep = nncf.IgnoredScope(types=["Add", "Multiply", "Interpolate"],
                             patterns=[".*head_.*", ".*\\.d3\\..*", ".*encoder\\.stem.*"], validate=False)
    int8 = nncf.quantize_with_accuracy_control(
        float_model, nncf.Dataset(calib), nncf.Dataset(val), fusion_score, max_drop=max_drop,
        preset=nncf.QuantizationPreset.MIXED, subset_size=len(calib), ignored_scope=keep,
        fast_bias_correction=False)
    report = dict(task=task, calibration_pairs=len(calib), validation_pairs=len(val), max_score_drop=max_drop,
                  float_layers=_float_convs(int8), convolutions=_count(int8, "Convolution"))
    return int8, report


def _count(ov_model, kind: str) -> int:
    return sum(op.get_type_name() == kind for op in ov_model.get_ops())


def _float_convs(ov_model) -> list[str]:
    """Convolutions left in float: those whose weights are not quantized (no FakeQuantize or int8 constant)."""
    def quantized(node, depth: int = 0) -> bool:
        if node.get_type_name() == "FakeQuantize" or node.get_output_element_type(0).get_type_name() in ("i8", "u8"):
            return True
        return depth < 4 and any(quantized(v.get_node(), depth + 1) for v in node.input_values())
    return [op.get_friendly_name() for op in ov_model.get_ops() if op.get_type_name() == "Convolution"
            and not quantized(op.input_value(1).get_node())]


def save(int8_model, model, stem: str, folder: Path, report: dict) -> Path:
    """STEM.DIGEST.int8.xml (+ .bin, + .json report) in `folder`; the digest names the weights it fits."""
    import openvino as ov
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.{model_digest(model)}.int8.xml"
    ov.save_model(int8_model, str(path), compress_to_fp16=False)
    path.with_name(path.name.replace(".xml", ".json")).write_text(json.dumps(report, indent=1) + "\n")
    return path
