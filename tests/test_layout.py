"""The package's shape: one module per pipeline stage, and no import cycle between its parts."""
import ast
from pathlib import Path

from conftest import ROOT

PKG = ROOT / "defusion_rt"


def _part(module: str) -> str:
    """defusion_rt.capture.stage -> capture; defusion_rt.cli -> cli."""
    return module.split(".")[1] if module.count(".") >= 1 else module


def _imports(path: Path) -> set[str]:
    """Modules of this package that `path` imports, anywhere in it (function-level imports count too)."""
    package = ".".join(path.relative_to(ROOT).parent.parts)  # what a relative import is relative to
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(max(0, node.level - 1)):
                base = base.rpartition(".")[0]
            name = f"{base}.{node.module}" if node.level and node.module else base if node.level else node.module
            found.add(name)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m and m.startswith("defusion_rt.")}


def part_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PKG.rglob("*.py"):
        me = _part(".".join(path.relative_to(ROOT).with_suffix("").parts))
        graph.setdefault(me, set()).update(_part(m) for m in _imports(path) if _part(m) != me)
    return graph


def test_no_import_cycle_between_the_package_parts():
    graph, state, cycles = part_graph(), {}, []

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"
    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles
    assert "capture" in graph["fusion"] and "fusion" not in graph["capture"]  # the graph is real: stages point down


def test_each_pipeline_stage_lives_in_its_own_package():
    for stage, cls in [("capture", "CaptureStage"), ("register", "RegisterStage"), ("fusion", "FusionStage"),
                       ("render", "RenderStage")]:
        assert f"class {cls}" in (PKG / stage / "stage.py").read_text()
    runner = (PKG / "pipeline" / "runner.py").read_text()
    assert "def compose(" in runner and all(c in runner for c in ("CaptureStage(", "RegisterStage(",
                                                                  "FusionStage(", "RenderStage("))
