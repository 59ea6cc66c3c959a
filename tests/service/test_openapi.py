"""Every JSON route declares its response model and its error bodies, so the OpenAPI schema is exact."""

from __future__ import annotations

import re

import pytest


def refs(schema: dict) -> list[str]:
    """The models a response schema names: one $ref, or each of an anyOf (/ready answers one of two)."""
    return [schema["$ref"]] if "$ref" in schema else [s["$ref"] for s in schema.get("anyOf", []) if "$ref" in s]


@pytest.mark.slow
def test_every_route_has_a_response_model_and_documents_its_errors(client):
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert spec["paths"]
    for path, ops in spec["paths"].items():
        assert ops, path
        for method, op in ops.items():
            where = f"{method.upper()} {path}"
            ok = next(op["responses"][c] for c in ("200", "201", "303") if c in op["responses"])
            if path.startswith("/review") or "text/html" in ok.get("content", {}):
                continue  # HTML pages (the review page, the overview) and redirects
            assert ok["content"] and op["responses"], where
            for media, body in ok["content"].items():
                schema = body.get("schema", {})
                assert refs(schema) or schema.get("format") == "binary" or (media == "text/plain" and schema.get("type") == "string"), (where, media, schema)
            for ref in refs(ok["content"].get("application/json", {}).get("schema") or {}):
                assert ref.split("/")[-1] in schemas
            for code, resp in op["responses"].items():
                if code.startswith(("4", "5")) and code != "422":
                    found = refs(resp["content"]["application/json"]["schema"])
                    assert found and all(r.endswith(("/ErrorOut", "/Readiness", "/ReadyBrief")) for r in found), (where, code)
    keyed = spec["paths"]["/cases"]["get"]["security"]
    assert {"APIKeyHeader": []} in keyed
    assert "security" not in spec["paths"]["/health"]["get"]


def test_docs_and_redoc_load_their_assets_from_the_service_not_a_cdn(client):
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css|png))"', html)
        assert assets and all(a.startswith("/") for a in assets), (page, assets)
        assert "cdn" not in html.lower() and "fonts.googleapis" not in html
        for asset in assets:
            r = client.get(asset)
            assert r.status_code == 200 and len(r.content) > 1000, asset
