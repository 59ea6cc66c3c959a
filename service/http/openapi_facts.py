"""What the OpenAPI schema says beyond what the route signatures can: rules that depend on the running service's
settings, or tie two fields together. Each is one the server enforces with a 422, so a client (or a fuzzer) that
follows the schema is never refused for something the schema allowed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from ..settings import ServiceSettings


def _detect_floor(spec: dict, floor: float) -> None:
    """`/detect?conf=` below the detector's floor is refused (those detections are never computed)."""
    for param in spec["paths"]["/detect"]["post"].get("parameters", []):
        if param["name"] == "conf":
            for branch in param["schema"].get("anyOf", [param["schema"]]):
                if branch.get("type") == "number":
                    branch["minimum"] = floor
            param["description"] = param["schema"]["description"] = f"Minimum score, from this service's detector floor ({floor:g}, settings.conf) to 1"


def _names_pattern(names: list[str]) -> str:
    """Comma-separated items, each empty or one of `names` (with spaces around it), as `/detect` reads them."""
    metachars = set("\\^$.|?*+()[]{}-/")
    alternatives = "|".join("".join("\\" + c if c in metachars else c for c in n) for n in sorted(names, key=len, reverse=True))
    item = f"\\s*(?:(?:{alternatives})\\s*)?"
    return f"^{item}(?:,{item})*$"


def _detect_classes(spec: dict, names: list[str] | None) -> None:
    """`/detect?classes=` names the serving model's classes (unknown ones are refused); re-read on every
    request for the schema, so a model swap shows."""
    for param in spec["paths"]["/detect"]["post"].get("parameters", []):
        if param["name"] == "classes":
            for branch in param["schema"].get("anyOf", [param["schema"]]):
                if branch.get("type") == "array":
                    if names:
                        branch["items"]["pattern"] = _names_pattern(names)
                    else:
                        branch["items"].pop("pattern", None)


def _together(spec: dict, path: str, fields: tuple[str, ...]) -> None:
    """Form fields that come together or not at all (`lat` and `lon`)."""
    body = spec["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    name = body["$ref"].rsplit("/", 1)[-1]
    spec["components"]["schemas"][name]["dependentRequired"] = {f: [g for g in fields if g != f] for f in fields}


FORMS = ("multipart/form-data", "application/x-www-form-urlencoded")


def _forms_without_null(spec: dict) -> None:
    """A form field can be left out but never sent as null (a form has no null: "null" would be the text), so
    the optional fields of form bodies lose the `null` branch pydantic gives an `X | None` field."""
    for operations in spec["paths"].values():
        for op in operations.values():
            content = op.get("requestBody", {}).get("content", {}) if isinstance(op, dict) else {}
            for media in FORMS:
                ref = content.get(media, {}).get("schema", {}).get("$ref")
                if ref is None:
                    continue
                for prop in spec["components"]["schemas"][ref.rsplit("/", 1)[-1]].get("properties", {}).values():
                    branches = [b for b in prop.get("anyOf", ()) if b != {"type": "null"}]
                    if "anyOf" in prop and len(branches) < len(prop["anyOf"]):
                        del prop["anyOf"]
                        if len(branches) == 1:
                            prop.update(branches[0])
                        else:
                            prop["anyOf"] = branches
                        if prop.get("default", 0) is None:
                            del prop["default"]


def install(app: FastAPI, settings: ServiceSettings) -> None:
    """Amend the app's schema when it is first built, and the model's class names whenever it is asked for."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = build()
            _detect_floor(spec, settings.conf)
            _together(spec, "/photos", ("lat", "lon"))
            _forms_without_null(spec)
        model = app.state.service.detector.models.current
        _detect_classes(app.openapi_schema, list(model.detector.names) if model is not None else None)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
