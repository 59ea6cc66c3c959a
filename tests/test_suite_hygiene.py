"""The suite's own rules, checked on its source.

An assert inside a `for` loop checks nothing when the loop runs zero times, and the test passes. So a loop with
an assert in it must run over something that cannot be empty (a non-empty literal, or a name bound only to
one), or the function must assert something about what it loops over first: an earlier assert that mentions a
name of the loop's iterable (`assert cases` before `for c in cases`; `assert len(a) == len(b) == 5` before
`for x, y in zip(a, b)`). The rule is deliberately simple: it reads names, not meaning.

And the README's test command is what `.ci/run` runs, word for word.
"""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

from tests.browser import INSTALL

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
BUILTINS = frozenset(dir(builtins))
SEQUENCE_CALLS = frozenset({"enumerate", "zip", "sorted", "reversed", "list", "tuple", "set"})
SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


def nonempty(node: ast.expr, known: set[str]) -> bool:
    """Whether `node` is certainly a non-empty iterable, from its source alone; `known` are names bound to one."""
    match node:
        case ast.Tuple(elts=elts) | ast.List(elts=elts) | ast.Set(elts=elts):
            return bool(elts)
        case ast.Dict(keys=keys):
            return bool(keys)
        case ast.Constant(value=value):
            return isinstance(value, (str, bytes)) and bool(value)
        case ast.Name(id=name):
            return name in known
        case ast.ListComp(generators=gens) | ast.SetComp(generators=gens) | ast.GeneratorExp(generators=gens) | ast.DictComp(generators=gens):
            return all(not g.ifs and nonempty(g.iter, known) for g in gens)
        case ast.Subscript(value=value, slice=ast.Slice(lower=None, upper=ast.Constant(value=int() as upper), step=None)):
            return upper > 0 and nonempty(value, known)
        case ast.Call(func=ast.Attribute(attr="items" | "keys" | "values", value=value), args=[]):
            return nonempty(value, known)
        case ast.Call(func=ast.Name(id="range"), args=args) if args:
            try:
                return len(range(*(ast.literal_eval(a) for a in args))) > 0
            except (ValueError, TypeError):
                return False
        case ast.Call(func=ast.Name(id=fn), args=args) if fn in SEQUENCE_CALLS and args:
            return all(nonempty(a, known) for a in args)
    return False


def own_nodes(scope: ast.AST) -> list[ast.AST]:
    """The nodes of a function's body, without those of functions, lambdas and classes defined inside it."""
    out = []
    for child in ast.iter_child_nodes(scope):
        if not isinstance(child, SCOPES):
            out.append(child)
            out += own_nodes(child)
    return out


def names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} - BUILTINS


def bound_to_nonempty(nodes: list[ast.AST], known: set[str]) -> set[str]:
    """Names that every binding in `nodes` binds to a non-empty literal (`name = [...]`); any other binding of a
    name (a loop variable, unpacking, `+=`, `with ... as`) leaves it unknown."""
    literal: dict[int, str] = {}  # id of the Name node -> its name, for each `name = <non-empty literal>`
    for n in nodes:
        if isinstance(n, (ast.Assign, ast.AnnAssign)) and n.value is not None and nonempty(n.value, known):
            literal |= {id(t): t.id for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)}
    other = {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) and id(n) not in literal}
    return set(literal.values()) - other


def loops_that_can_hide_asserts(source: str) -> list[tuple[int, str, str]]:
    """(line, function, loop header) of each `for` loop with an assert in it that may run zero times."""
    tree = ast.parse(source)
    module_known = bound_to_nonempty(own_nodes(tree), set())
    found = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        body = own_nodes(fn)
        params = {a.arg for a in ast.walk(fn.args) if isinstance(a, ast.arg)}
        known = (module_known - params) | bound_to_nonempty(body, module_known)
        asserts = [n for n in body if isinstance(n, ast.Assert)]
        for loop in (n for n in body if isinstance(n, ast.For)):
            if not any(isinstance(n, ast.Assert) for n in own_nodes(loop)) or nonempty(loop.iter, known):
                continue
            wanted = names(loop.iter)
            if any(wanted & names(a) for a in asserts if (a.lineno, a.col_offset) < (loop.lineno, loop.col_offset)):
                continue
            found.append((loop.lineno, fn.name, f"for {ast.unparse(loop.target)} in {ast.unparse(loop.iter)}"))
    return found


def test_no_assert_hides_in_a_loop_that_can_be_empty():
    hidden = [f"{path.relative_to(REPO)}:{line}: {fn}: {loop}" for path in sorted(TESTS.rglob("*.py")) for line, fn, loop in loops_that_can_hide_asserts(path.read_text())]
    assert hidden == [], "assert that the loop's iterable is not empty before the loop:\n" + "\n".join(hidden)


def test_the_hygiene_rule_itself():
    bad = '''
def test_a(store):
    for c in store.list():
        assert c.ok

def helper(xs):
    for x in xs:
        assert x
'''
    good = '''
XS = (1, 2)

def test_b(store):
    cases = store.list()
    assert len(cases) == 3
    for c in cases:
        assert c.ok
    for x in XS:
        assert x
    for i in range(3):
        assert i >= 0
    pairs = [(1, 2), (3, 4)]
    for a, b in pairs:
        assert a < b
    for c in cases:
        print(c)  # no assert: nothing to hide
'''
    assert [(line, fn) for line, fn, _ in loops_that_can_hide_asserts(bad)] == [(3, "test_a"), (7, "helper")]
    assert loops_that_can_hide_asserts(good) == []


def _readme_test_command() -> str:
    lines = (REPO / "README.md").read_text().splitlines()
    [command] = [line for line in lines if line.endswith(".venv/bin/python -m pytest")]
    return command


def test_ci_runs_the_readme_test_command_verbatim_and_it_installs_the_browser_first():
    command = _readme_test_command()
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert ci[-1] == command
    assert command.startswith(INSTALL + " ")  # the browser first; the RTSP server's packages may follow on the same apt-get line


def test_the_tests_mirror_the_packages():
    """Each folder of tests/ is named for the package it tests (pipeline/<stage>/ or service/), so a newcomer finds
    a stage's tests where its code is; only `support/` (shared helpers) is not a package of its own."""
    packages = {p.name for p in (REPO / "pipeline").iterdir() if (p / "__init__.py").is_file()} | {"service"}
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert folders, "tests/ has no test packages"
    assert folders - packages <= {"support"}, f"test folders with no package of that name: {sorted(folders - packages - {'support'})}"
