"""Which layers the int8 network keeps in float (issue #20), measured: each scope quantized by NNCF from the same
calibration pairs `defusion-rt quantize` uses, scored on its held-out validation pairs (Qabf, MI, VIF against
the float network) and timed at 640x480 (OpenVINO, fp32 for what stays float).

    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/int8_scope.py --out benchmarks/results/int8_scope_amd-epyc-2c-avx2-emulated.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from defusion_rt.bench.telemetry import machine  # noqa: E402
from defusion_rt.metrics import mutual_information, qabf, to_grey255, vif  # noqa: E402
from defusion_rt.model import create_model  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from int8_compare import SHAPE, calibration  # noqa: E402

SCOPES = {  # IgnoredScope arguments: what stays float
    "all int8": dict(),
    "tail (embedding sum, heads, full-resolution mix)": dict(types=["Add", "Multiply"], patterns=[".*head_.*"]),
    "tail + decoders' d3": dict(types=["Add", "Multiply"], patterns=[".*head_.*", r".*\.d3\..*"]),
    "tail + resizes": dict(types=["Add", "Multiply", "Interpolate"], patterns=[".*head_.*"]),
    "tail + d3 + resizes (shipped)": dict(types=["Add", "Multiply", "Interpolate"],
                                          patterns=[".*head_.*", r".*\.d3\..*"]),
}


def scores(compiled, pairs) -> np.ndarray:
    out = []
    for x in pairs:
        f = compiled({"a": x["a"], "b": x["b"]})[0]
        a, b, f = (to_grey255(np.clip(v[0].transpose(1, 2, 0), 0, 1)) for v in (x["a"], x["b"], f))
        out.append([qabf(a, b, f), mutual_information(a, f) + mutual_information(b, f), vif(a, f) + vif(b, f)])
    return np.mean(out, 0)


def latency_ms(core, model, hint: str) -> float:
    model = model.clone()
    model.reshape({"a": list(SHAPE), "b": list(SHAPE)})
    request = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY",
                                                "INFERENCE_PRECISION_HINT": hint}).create_infer_request()
    x = np.random.default_rng(0).random(SHAPE, dtype=np.float32)
    for _ in range(3):
        request.infer({"a": x, "b": x})
    times = []
    for _ in range(25):
        t = time.perf_counter()
        request.infer({"a": x, "b": x})
        times.append(1000 * (time.perf_counter() - t))
    return round(float(np.median(times)), 2)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    args = p.parse_args()
    import nncf
    import openvino as ov
    from defusion_rt.engines.openvino import to_openvino
    model = create_model("defusion_fast", pretrained=True, task="ir-vis")
    inputs = calibration(model, holdout=True)
    val, calib = inputs[::5], [x for i, x in enumerate(inputs) if i % 5]
    core, float_model = ov.Core(), to_openvino(model)
    ref = scores(core.compile_model(float_model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}), val)
    rows = {"float (fp32)": dict(Qabf=ref[0], MI=ref[1], VIF=ref[2], latency_ms=latency_ms(core, float_model, "f32"))}
    for name, scope in SCOPES.items():
        q = nncf.quantize(float_model, nncf.Dataset(calib), preset=nncf.QuantizationPreset.MIXED,
                          subset_size=len(calib), fast_bias_correction=False,
                          ignored_scope=nncf.IgnoredScope(validate=False, **scope))
        s = scores(core.compile_model(q, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}), val)
        rows[name] = dict(zip(("Qabf", "MI", "VIF"), s), latency_ms=latency_ms(core, q, "f32"))
        print(name, rows[name], flush=True)
    for r in rows.values():
        for k in ("Qabf", "MI", "VIF"):
            r[k] = round(float(r[k]), 4)
            r[f"{k}_change"] = round(r[k] - round(float(ref[("Qabf", "MI", "VIF").index(k)]), 4), 4)
    result = dict(created=time.strftime("%Y-%m-%dT%H:%M:%S"), command=" ".join(sys.argv), machine=machine(),
                  calibration_pairs=len(calib), validation_pairs=len(val), input_shape=list(SHAPE), rows=rows)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
