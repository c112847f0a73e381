"""What this CPU can do: its vector-ISA flags, its class, and the engine measured fastest for that class.

Classes, slowest first: avx2 (most laptops and cloud VMs), avx512, avx512_bf16, amx. oneDNN's ONEDNN_MAX_CPU_ISA
caps the ISA that torch and OpenVINO use (how the project measures the AVX2 class on an AVX-512 machine), so a
cap counts here as the CPU itself.
"""
from __future__ import annotations

import os
import sys

ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16",
             "amx_int8", "asimd", "sve")
CLASSES = ("other", "avx2", "avx512", "avx512_bf16", "amx")

# ONEDNN_MAX_CPU_ISA values -> the class they leave (oneDNN's names; DNNL_MAX_CPU_ISA on older builds).
CAPS = {"sse41": "other", "avx": "other", "avx2": "avx2", "avx2_vnni": "avx2", "avx2_vnni_2": "avx2",
        "avx512_core": "avx512", "avx512_core_vnni": "avx512", "avx512_core_bf16": "avx512_bf16",
        "avx512_core_fp16": "avx512_bf16", "avx10_1_512": "avx512_bf16", "avx512_core_amx": "amx",
        "avx512_core_amx_fp16": "amx", "avx10_1_512_amx": "amx", "all": "amx"}

# The real-time network at 640x480, batch 1: (engine, precision) fastest within the quality bounds, per class,
# from benchmarks/results/amd-epyc-2c*_defusion_fast*.json (README, "CPU classes"):
# - avx512_bf16: export bf16 41.7 FPS, OpenVINO int8 37.1 (int8 keeps more quality); amx follows (not measured).
# - avx512 (ISA capped to AVX512_CORE_VNNI): OpenVINO int8 30.5, ONNX Runtime fp32 27.3, export fp32 23.3.
# - avx2: OpenVINO int8, from a real AVX2-only EPYC (23.5 FPS against 15.4 for the best torch engine;
#   benchmarks/results/avx2_probe_2026-11-30.md); the AVX2 emulation here puts int8 and export fp32 level.
# Without openvino, the torch choice.
FASTEST = {"amx": ("export", "bf16"), "avx512_bf16": ("export", "bf16"), "avx512": ("openvino", "int8"),
           "avx2": ("openvino", "int8"), "other": ("eager", "fp32")}
TORCH_FASTEST = {"amx": ("export", "bf16"), "avx512_bf16": ("export", "bf16"), "avx512": ("export", "fp32"),
                 "avx2": ("export", "fp32"), "other": ("eager", "fp32")}


def isa_flags() -> list[str]:
    """The vector-ISA flags of /proc/cpuinfo that decide CPU speed (every CPU figure names its class by them)."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith(("flags", "Features")):
                have = set(line.split(":", 1)[1].split())
                return [f for f in ISA_FLAGS if f in have]
    except OSError:
        pass
    return []


def isa_cap() -> str | None:
    """The class an ONEDNN_MAX_CPU_ISA cap leaves, or None when nothing is capped."""
    value = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").lower()
    return CAPS.get(value) if value else None


def classify(flags: list[str]) -> str:
    """The class a list of ISA flags makes, whatever the environment caps (for saved results too)."""
    have = set(flags)
    return ("amx" if "amx_bf16" in have else "avx512_bf16" if "avx512_bf16" in have else
            "avx512" if "avx512f" in have else "avx2" if {"avx2", "fma"} <= have else "other")


def cpu_class(flags: list[str] | None = None) -> str:
    """The class of this CPU (or of `flags`), lowered to an ISA cap where one is set."""
    native = classify(isa_flags() if flags is None else flags)
    cap = isa_cap()
    return min(native, cap, key=CLASSES.index) if cap else native


def class_label(machine: dict) -> str:
    """How a saved result names its CPU class: 'AVX2', 'AVX-512-BF16', '... (emulated: ISA capped)'."""
    names = {"other": "no AVX2", "avx2": "AVX2", "avx512": "AVX-512", "avx512_bf16": "AVX-512-BF16",
             "amx": "AMX"}
    if "isa" in machine:
        cls = machine.get("cpu_class") or classify(machine["isa"])
    elif machine.get("cpu_bf16"):  # results saved before the flags were recorded
        cls = "avx512_bf16"
    else:
        return "ISA not recorded"
    emulated = machine.get("isa_cap") and classify(machine["isa"]) != cls
    return names[cls] + (", emulated: ISA capped" if emulated else "")


def native_bf16(flags: list[str] | None = None) -> bool:
    return cpu_class(flags) in ("avx512_bf16", "amx")


def fastest(flags: list[str] | None = None, openvino: bool | None = None) -> tuple[str, str]:
    """(engine, precision) measured fastest for this CPU's class; the torch choice where openvino is missing."""
    if openvino is None:
        from importlib.util import find_spec
        openvino = find_spec("openvino") is not None
    return (FASTEST if openvino else TORCH_FASTEST)[cpu_class(flags)]


_warned: set = set()


def warn_if_emulated(precision: str, flags: list[str] | None = None) -> None:
    """bf16 on a CPU without bf16 instructions is emulated: slower than fp32 (2.5 vs 15 FPS on an AVX2 EPYC)."""
    if precision == "bf16" and not native_bf16(flags) and "bf16" not in _warned:
        _warned.add("bf16")
        print(f"warning: this CPU ({cpu_class(flags)}) has no bf16 instructions: bf16 is emulated and slower than "
              f"fp32 here; use --precision auto or fp32", file=sys.stderr)
