"""One registry of rules and zone kinds: the rule modules declare them, everything else reads their flags."""

from __future__ import annotations

import ast
import re

from pipeline.config import RulesConfig, ZoneKind
from pipeline.detect.cascade import needs_cues
from pipeline.domain import VIOLATION_TYPES
from pipeline.rules import RULES, outside_zone_ids, zone_kind, zone_kinds

from ..conftest import REPO

# Where zone kinds may be named: the registry and the rule modules that declare them. Benchmark tooling writes its
# configs as YAML text, which names kinds as any config does.
ALLOWED = ("pipeline/rules/", "pipeline/bench/")


def test_the_rule_modules_declare_every_zone_kind_and_rules_section():
    assert list(zone_kinds()) == ["no_vending", "parking_bay", "no_parking", "garbage_watch", "ignore"]
    assert ZoneKind.__args__ == tuple(zone_kinds())  # what a zone's `kind:` accepts
    assert list(RulesConfig.model_fields) == [t for t in VIOLATION_TYPES if t in RULES]
    assert {t: [k.name for k in RULES[t].zone_kinds] for t in RULES} == {
        "street_vending": ["no_vending"],
        "non_motor_parking": ["parking_bay", "no_parking"],
        "garbage": ["garbage_watch"],
        "materials_piled": ["no_vending"],
    }


def test_the_flags_the_other_stages_read():
    assert {n for n, k in zone_kinds().items() if k.cues} == {"no_vending", "parking_bay", "no_parking"}
    assert {n for n, k in zone_kinds().items() if k.static} == {"no_vending"}
    assert {n for n, k in zone_kinds().items() if k.mask} == {"ignore"}
    assert outside_zone_ids() == {"outside_bays"} and zone_kind("parking_bay").outside == "outside_bays"
    assert needs_cues(["garbage_watch", "no_vending"]) and not needs_cues(["garbage_watch", "ignore"])
    assert len({k.colour for k in zone_kinds().values()}) == len(zone_kinds())  # each kind has its own outline


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                out.add(id(first.value))
    return out


def test_no_module_outside_the_registry_and_the_rules_names_a_zone_kind():
    """Code reads a zone kind's flags (`zone_kind(z.kind).cues`) instead of comparing with its name. A string that
    is a kind's name, or that names one of the kinds spelt with an underscore (unmistakable in prose), is
    hard-coding; docstrings may mention kinds."""
    names = list(zone_kinds())
    spelt = re.compile(r"\b(" + "|".join(re.escape(n) for n in names if "_" in n) + r")\b")
    found, scanned = [], 0
    for top in ("pipeline", "service"):
        for path in sorted((REPO / top).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel.startswith(ALLOWED):
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            scanned += 1
            docs = _docstrings(tree)
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                    if node.value in names or spelt.search(node.value):
                        found.append(f"{rel}:{node.lineno}: {node.value!r}")
    assert scanned > 100 and found == []
