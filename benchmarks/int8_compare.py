"""int8 for CPUs, two ways, side by side (issue #20): NNCF post-training quantization for OpenVINO (what
`defusion-rt quantize` does) against ONNX Runtime's static QDQ quantization, from the same calibration pairs and
with the same layers left in float (the embedding sum, the heads, the full-resolution mix).

Reported: Qabf, MI and VIF on TNO and VIFB against each runtime's own fp32, and the real-time network's latency at
640x480 natively and with the ISA capped at AVX2 (ONEDNN_MAX_CPU_ISA=AVX2 + ATEN_CPU_CAPABILITY=avx2: oneDNN's
convolutions then use AVX2 kernels, an emulation of the AVX2 class, labelled so).

    python benchmarks/int8_compare.py --out benchmarks/results/int8_compare_amd-epyc-2c.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from defusion_rt.bench.telemetry import machine  # noqa: E402
from defusion_rt.engines.padding import crop, pad  # noqa: E402
from defusion_rt.train.quantize import calibration_pairs, engine_inputs  # noqa: E402
from defusion_rt.fusion.files import pair_folders  # noqa: E402
from defusion_rt.imageio import read_image  # noqa: E402
from defusion_rt.metrics import score  # noqa: E402
from defusion_rt.model import FusedOnly, create_model  # noqa: E402
from defusion_rt.tasks import network_inputs  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SHAPE = (1, 3, 512, 672)  # 640x480 padded as the Fuser pads it
AVX2_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


def calibration(model, holdout: bool = False) -> list[dict]:
    """The padded network inputs `defusion-rt quantize` made the shipped IR-visible int8 network from: its
    calibration pairs, or with `holdout` every pair (every fifth is its validation pair)."""
    video = DATA / "ir_vis_video" / "M3SVD"
    clips = sorted(p.name for p in (video / "ir").glob("*.mp4"))
    a = [str(video / "ir" / c) for c in clips] + [str(DATA / "ir_vis" / "RoadScene" / "ir")]
    b = [str(video / "vis" / c) for c in clips] + [str(DATA / "ir_vis" / "RoadScene" / "vis")]
    inputs = engine_inputs(model, "ir-vis", calibration_pairs("ir-vis", a, b, [], 300))
    return inputs if holdout else [x for i, x in enumerate(inputs) if i % 5]


def openvino_models(model) -> dict:
    import openvino as ov
    from defusion_rt.engines.openvino import int8_path, to_openvino
    return {"openvino fp32": to_openvino(model),
            "openvino int8 (shipped, NNCF)": ov.Core().read_model(str(int8_path(model)))}


def onnx_models(model, calib, folder: Path) -> dict:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    fp32 = folder / "fp32.onnx"
    ex = (torch.rand(SHAPE), torch.rand(SHAPE))
    dyn = {0: "n", 2: "h", 3: "w"}
    torch.onnx.export(FusedOnly(model).eval(), ex, str(fp32), input_names=["a", "b"], output_names=["fused"],
                      opset_version=17, dynamo=False, dynamic_axes={"a": dyn, "b": dyn, "fused": dyn})

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib)

        def get_next(self):
            return next(self.it, None)

    int8 = folder / "int8.onnx"
    # Convolutions only, the fused head excluded: the layers NNCF quantizes.
    import onnx
    head = [n.name for n in onnx.load(str(fp32)).graph.node if n.op_type == "Conv" and "head_fused" in n.name]
    quantize_static(str(fp32), str(int8), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"],
                    nodes_to_exclude=head)
    return {"onnxruntime fp32": fp32, "onnxruntime int8 (QDQ)": int8}


def runner(name: str, model):
    """A callable (a, b) numpy -> fused numpy for one model of either runtime."""
    if name.startswith("openvino"):
        import openvino as ov
        compiled = ov.Core().compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY",
                                                          "INFERENCE_PRECISION_HINT": "f32"})
        return lambda a, b: compiled({"a": a, "b": b})[0]
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    return lambda a, b: session.run(None, {"a": a, "b": b})[0]


def quality(run, pairs) -> dict:
    out = {"Qabf": [], "MI": [], "VIF": []}
    for a, b in pairs:
        na, nb = network_inputs(torch.from_numpy(a.transpose(2, 0, 1))[None],
                                torch.from_numpy(b.transpose(2, 0, 1))[None], "ir-vis")
        (pa, box), (pb, _) = pad(na.contiguous(), 16, 16), pad(nb.contiguous(), 16, 16)
        fused = crop(torch.from_numpy(np.asarray(run(pa.numpy(), pb.numpy()))), box)
        f = fused[0].clamp(0, 1).mean(0).numpy()
        s = score(a, b, f, "ir-vis")
        for k in out:
            out[k].append(s[k])
    return {k: round(float(np.mean(v)), 4) for k, v in out.items()}


def latency(run, reps: int = 30) -> float:
    x = np.random.default_rng(0).random(SHAPE, dtype=np.float32)
    for _ in range(3):
        run(x, x)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        run(x, x)
        times.append(1000 * (time.perf_counter() - t))
    return round(float(np.median(times)), 2)


def speeds(folder: Path) -> dict:
    """Latency of every model, run in this process (called in a child with the ISA capped)."""
    import openvino as ov
    out = {}
    for name, ref in json.loads((folder / "models.json").read_text()).items():
        model = ov.Core().read_model(ref) if name.startswith("openvino") else ref
        out[name] = latency(runner(name, model))
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--speeds-only", help=argparse.SUPPRESS)  # the child: a folder of saved models
    args = p.parse_args()
    if args.speeds_only:
        print(json.dumps(speeds(Path(args.speeds_only))))
        return
    import openvino as ov
    torch.manual_seed(0)
    model = create_model("defusion_fast", pretrained=True, task="ir-vis")
    calib = calibration(model)
    folder = Path(tempfile.mkdtemp())
    ovm = openvino_models(model)
    refs = {}
    for name, m in ovm.items():
        refs[name] = str(folder / (name.split()[1] + ".xml"))
        ov.save_model(m, refs[name], compress_to_fp16=False)
    refs |= {k: str(v) for k, v in onnx_models(model, calib, folder).items()}
    (folder / "models.json").write_text(json.dumps(refs))
    sets = {s: [(read_image(a), read_image(b)) for a, b in pair_folders(DATA / "ir_vis" / s / "ir",
                                                                          DATA / "ir_vis" / s / "vis")[0]]
            for s in ("TNO", "VIFB")}
    result = dict(created=time.strftime("%Y-%m-%dT%H:%M:%S"), machine=machine(), calibration_pairs=len(calib),
                  input_shape=list(SHAPE), models={})
    for name, ref in refs.items():
        run = runner(name, ov.Core().read_model(ref) if name.startswith("openvino") else ref)
        result["models"][name] = {s: quality(run, pairs) for s, pairs in sets.items()}
        print(name, result["models"][name], flush=True)
    for label, env in (("native", {}), ("avx2_emulated", AVX2_ENV)):
        child = subprocess.run([sys.executable, __file__, "--out", "-", "--speeds-only", str(folder)],
                               env=os.environ | env, capture_output=True, text=True, check=True)
        for name, ms in json.loads(child.stdout.strip().splitlines()[-1]).items():
            result["models"][name][f"latency_ms_{label}"] = ms
        print(label, child.stdout.strip().splitlines()[-1], flush=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
