"""What a benchmark ran on: CPU, library versions and, through NVML, the GPU sampled while the runs go."""
from __future__ import annotations

import os
import platform
import threading
import time

import torch

from ..engines.cpu import cpu_class, fastest, isa_cap, isa_flags

# Variables that cap the ISA torch and oneDNN use: set, they make the figures an emulation of a lower class.
ISA_ENV = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict:
    out = dict(python=platform.python_version(), torch=torch.__version__, cuda=torch.version.cuda,
               cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None)
    for mod in ("tensorrt", "torch_tensorrt", "onnxruntime", "openvino", "nncf", "cv2", "numpy"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:
            out[mod] = None
    return out


def machine() -> dict:
    info = dict(host=platform.node(), os=platform.platform(), cpu=cpu_name(), cpu_cores=os.cpu_count(),
                torch_threads=torch.get_num_threads(), versions=versions(), isa=isa_flags(),
                cpu_class=cpu_class(), isa_cap=isa_cap(),
                isa_env={k: os.environ[k] for k in ISA_ENV if k in os.environ}, auto_cpu_engine="/".join(fastest()),
                cpu_bf16=bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()))
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info["gpu"] = dict(name=p.name, memory_gb=round(p.total_memory / 2**30, 1), sm=f"{p.major}.{p.minor}")
    return info


class GpuSampler(threading.Thread):
    """Samples NVML every `period` s: utilisation, memory, power, SM clock, temperature, throttle reasons."""

    def __init__(self, period: float = 0.5):
        super().__init__(daemon=True)
        # _halt, not _stop: threading.Thread has a _stop method, which a fork in another thread calls.
        self.period, self.samples, self._halt = period, [], threading.Event()
        self.static: dict = {}
        try:
            import pynvml
            pynvml.nvmlInit()
            self.nv = pynvml
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            self.static = dict(name=pynvml.nvmlDeviceGetName(self.handle),
                               driver=pynvml.nvmlSystemGetDriverVersion(),
                               memory_total_mb=pynvml.nvmlDeviceGetMemoryInfo(self.handle).total // 2**20)
        except Exception as err:  # no NVIDIA driver here: telemetry says so and the bench goes on
            self.nv = None
            self.static = dict(unavailable=f"{type(err).__name__}: {err}"[:120])

    def run(self) -> None:
        while self.nv and not self._halt.wait(self.period):
            nv, h = self.nv, self.handle
            s = dict(t=time.time())
            for key, fn in (("util_pct", lambda: nv.nvmlDeviceGetUtilizationRates(h).gpu),
                            ("mem_used_mb", lambda: nv.nvmlDeviceGetMemoryInfo(h).used // 2**20),
                            ("power_w", lambda: nv.nvmlDeviceGetPowerUsage(h) / 1000),
                            ("sm_clock_mhz", lambda: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM)),
                            ("temp_c", lambda: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)),
                            ("throttle", lambda: nv.nvmlDeviceGetCurrentClocksThrottleReasons(h))):
                try:
                    s[key] = fn()
                except Exception:  # e.g. utilisation is unsupported under MIG
                    s[key] = None
            self.samples.append(s)

    def stop(self) -> dict:
        self._halt.set()
        summary = dict(self.static)
        for key in ("util_pct", "mem_used_mb", "power_w", "sm_clock_mhz", "temp_c"):
            vals = [s[key] for s in self.samples if s.get(key) is not None]
            if vals:
                summary[key] = dict(mean=round(sum(vals) / len(vals), 1), max=max(vals))
        summary["samples"] = len(self.samples)
        return summary
