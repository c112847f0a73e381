"""From every saved result under benchmarks/results/: a PNG comparing devices and engines, and the README's
performance table (between its `<!-- perf-table -->` markers), so no number in the README is typed by hand."""
from __future__ import annotations

import json
from pathlib import Path

from ..engines.cpu import class_label
from ..plot import bar_plot

START, END = "<!-- perf-table:start -->", "<!-- perf-table:end -->"


def load_results(folder: Path) -> list[dict]:
    """The benchmark matrices saved in `folder` (other JSON there, such as live-latency runs or the split-attention
    and int8 comparisons, is left out: only `bench` records name their memory format)."""
    found = [json.loads(p.read_text()) | {"_file": p.name} for p in sorted(Path(folder).glob("*.json"))
             if not p.name.startswith(".")]  # .partial_*.json: a run still measuring
    return [r for r in found if r.get("records") and all("memory_format" in x for x in r["records"])]


def _label(res: dict, r: dict) -> str:
    m = res["machine"]
    dev = m["gpu"]["name"] if res["device"] == "cuda" and "gpu" in m else f"CPU {m['cpu_cores']}c {class_label(m)}"
    return f"{dev} {res.get('model', 'defusion')} {r['engine']}{' NCHW' if r.get('baseline') else ''} {r['precision']}"


def plot(results: list[dict], path: Path, width: int = 640, height: int = 480) -> Path:
    bars = {}
    for res in results:
        for r in res["records"]:
            if r.get("fps") and (r["width"], r["height"]) == (width, height) and r.get("batch") == 1:
                bars[_label(res, r)] = r["fps"]
    bars = dict(sorted(bars.items(), key=lambda kv: -kv[1]))
    return bar_plot(bars, path, f"Model-only FPS at {width}x{height}, batch 1 (benchmarks/results)", "FPS")


def _ratio(r: dict) -> str:
    """Blank where the run was cut before its fp32 NCHW reference was measured."""
    return f"{r['speedup_vs_fp32_eager']:.2f}" if "speedup_vs_fp32_eager" in r else ""


def markdown_table(results: list[dict]) -> str:
    lines = ["| device | model | engine | precision | size | batch | FPS | median ms | x fp32 eager | rel. error | "
             "result file |",
             "|---|---|---|---|---|---:|---:|---:|---:|---:|---|"]
    for res in results:
        m = res["machine"]
        dev = (m["gpu"]["name"] if res["device"] == "cuda" and "gpu" in m else
               f"{m['cpu']} ({m['cpu_cores']} cores, {class_label(m)})")
        dev += f" | {res.get('model', 'defusion')}"
        for r in res["records"]:
            if "fps" not in r:
                continue
            lines.append(f"| {dev} | {r['engine']}{' (NCHW)' if r.get('baseline') else ''} | {r['precision']} | "
                         f"{r['width']}x{r['height']} | {r['batch']} | {r['fps']:.2f} | {r['latency_ms_median']:.1f} | "
                         f"{_ratio(r)} | {r['rel_err_vs_fp32']:.1e} | "
                         f"`{res['_file']}` |")
        for e in ([res["e2e"]] if "e2e" in res else []) + res.get("e2e_classical", []):
            lines.append(f"| {dev} | end to end: decode, register, {e['engine']}, encode | {e['precision']} | "
                         f"{e['width']}x{e['height']} | 1 | {e['fps']:.2f} | {e['latency_ms']['total']['mean']:.1f} | "
                         f" | | `{res['_file']}` |")
        if "stream_overlap" in res:
            o = res["stream_overlap"]
            lines.append(f"| {dev} | CUDA-stream overlap (3 in flight vs 1) | | 640x480 | 1 | {o['depth3_fps']:.2f} "
                         f"vs {o['depth1_fps']:.2f} | | {o['gain']:.2f} | | `{res['_file']}` |")
    return "\n".join(lines)


def update_readme(readme: Path, results: list[dict]) -> bool:
    text = readme.read_text()
    if START not in text or END not in text:
        return False
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{markdown_table(results)}\n{END}{tail}")
    return True
