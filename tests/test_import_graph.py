"""The import graph of the project has no circles, lazy imports (inside functions) included: a module that needs
something from a module that needs it back is one module in two files, or a sign that a name lives in the wrong
place (`sampling.detect_in_batches`, `night.units.PATROL`, `db.urls` each ended one)."""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import REPO


def _modules() -> dict[str, Path]:
    mods = {}
    for top in ("pipeline", "service"):
        for p in (REPO / top).rglob("*.py"):
            parts = p.relative_to(REPO).with_suffix("").parts
            mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for t in names:
            while t not in mods and "." in t:
                t = t.rsplit(".", 1)[0]
            if t in mods and t != name:
                out.add(t)
    return out


def test_no_import_circles():
    mods = _modules()
    graph = {name: _imports(name, path, mods) for name, path in mods.items()}
    assert len(graph) > 100 and graph["pipeline.night.worker"], "the graph was not read"
    circles, state = [], {}

    def visit(v: str, path: list[str]) -> None:
        state[v] = "open"
        for w in sorted(graph[v]):
            if state.get(w) == "open":
                circles.append(path[path.index(w):] + [w])
            elif w not in state:
                visit(w, path + [w])
        state[v] = "done"

    for v in sorted(graph):
        if v not in state:
            visit(v, [v])
    assert circles == []


def test_only_the_command_line_imports_the_service():
    """`pipeline/` is the library and `service/` is built on it; the command line (`pipeline/cli.py`) is the one
    composition root that may reach `service/` (lazily), so the library never needs the web app."""
    mods = _modules()
    reaching = sorted(
        name for name, path in mods.items()
        if name.startswith("pipeline") and name != "pipeline.cli" and any(t == "service" or t.startswith("service.") for t in _imports(name, path, mods))
    )
    assert reaching == []


def test_the_top_of_pipeline_stays_small():
    """Stages live in packages (`source/`, `detect/`, `night/`, `samples/`, ...): at most 10 loose modules at the top."""
    loose = sorted(p.stem for p in (REPO / "pipeline").glob("*.py") if p.stem != "__init__")
    assert loose and len(loose) <= 10, loose
