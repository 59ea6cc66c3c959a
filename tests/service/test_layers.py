"""The service's two halves stay apart: the runtime (model slot, batcher, live intake, state) imports nothing of
the HTTP side, lazy imports included, so it can be driven without FastAPI (a bench, a night job, a test)."""

from __future__ import annotations

from tests.test_import_graph import _imports, _modules


def test_the_runtime_imports_nothing_of_the_http_side():
    mods = _modules()
    runtime = {name: path for name, path in mods.items() if name.startswith("service.runtime")}
    assert "service.runtime.state" in runtime and "service.http.app" in mods, "the modules were not found"
    reaches = {name: sorted(t for t in _imports(name, path, mods) if t.startswith("service.http")) for name, path in runtime.items()}
    assert {name: found for name, found in reaches.items() if found} == {}
