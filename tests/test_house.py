"""The house rules of the code base (docs/architecture.md, CONTRIBUTING.md), checked on the source.

Data flows one way and imports follow it:

    times <- codec (with its drivers) <- protocol <- gateway
                                                <- cloud: domain <- store <- ingest <- decode
                                                          <- services <- api <- web <- app
    sim may import gateway (it plays the radio a gateway hears); nothing in gateway or cloud imports sim,
    cloud never imports gateway; demo, commands and cli sit on top.

Also: no import circles between modules, no source file over 600 lines, no function over 80 lines, and
migrations are frozen history (they import no live code but the schema's base).
Every import counts, also one inside a function or under TYPE_CHECKING: each is a dependency.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# (module prefix, layer): a module may import modules of its own prefix or of a lower layer only.
LAYERS = [
    ("omshub.times", 0),
    ("omshub.codec", 1),
    ("omshub.protocol", 2),
    ("omshub.gateway", 3),
    ("omshub.cloud.domain", 3),
    ("omshub.cloud.settings", 3),
    ("omshub.cloud.store", 4),
    ("omshub.cloud.ingest", 5),
    ("omshub.cloud.decode", 6),
    ("omshub.cloud.services", 7),
    ("omshub.cloud.api", 8),
    ("omshub.cloud.web", 9),
    ("omshub.cloud.app", 10),
    ("omshub.cloud", 10),
    ("omshub.sim", 11),
    ("omshub.demo", 12),
    ("omshub.demo_billing", 12),
    ("omshub.commands", 13),
    ("omshub.cli", 14),
    ("omshub.__main__", 15),
    ("omshub", 0),  # the package face: only the version
]
# pairs of packages that must never meet, whatever their layers (prefix of importer, prefix of imported)
FORBIDDEN = [
    ("omshub.gateway", "omshub.sim"),
    ("omshub.gateway", "omshub.cloud"),
    ("omshub.cloud", "omshub.gateway"),
    ("omshub.cloud", "omshub.sim"),
    ("omshub.codec", "omshub.protocol"),
]
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80
# Functions allowed to be longer, each with the reason. Keep this list short.
LONG_FUNCTIONS: dict[str, str] = {
    # a migration is frozen history: the initial schema is one list of CREATE statements, and a
    # migration that has run must not be edited
    "omshub.cloud.store.migrations.versions.0001_initial_schema.upgrade": "frozen migration",
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The omshub modules ``name`` imports (a `from package import module` counts as the module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in MODULES else base)
    return {m for m in out if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(name: str) -> tuple[int, str]:
    for prefix, layer in LAYERS:
        if name == prefix or name.startswith(prefix + "."):
            return layer, prefix
    raise AssertionError(f"{name}: no layer; add its package to LAYERS in tests/test_house.py")


def test_imports_never_run_up_a_layer():
    wrong = []
    for name, targets in sorted(GRAPH.items()):
        layer, prefix = _layer(name)
        for target in sorted(targets):
            t_layer, t_prefix = _layer(target)
            if t_prefix != prefix and t_layer > layer:
                wrong.append(f"{name} -> {target}")
            for low, high in FORBIDDEN:
                if name.startswith(low + ".") and (target == high or target.startswith(high + ".")):
                    wrong.append(f"{name} -> {target} (never {low} -> {high})")
    assert not wrong, "imports against the data flow:\n" + "\n".join(wrong)


def test_no_import_circles():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for name in sorted(GRAPH):
        if name not in index:
            visit(name)
    assert not circles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in circles)


def test_migrations_import_no_live_code():
    allowed = {"omshub.cloud.store.models"}  # env.py needs the schema's metadata for autogenerate
    wrong = [
        f"{name} -> {target}"
        for name, targets in GRAPH.items()
        if ".migrations" in name
        for target in targets
        if ".migrations" not in target and target not in allowed
    ]
    assert not wrong, "a migration is history: copy what it needs into it\n" + "\n".join(wrong)


def test_no_source_file_over_600_lines():
    long = {
        str(path.relative_to(SRC)): n
        for path in SRC.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_FILE_LINES
    }
    assert not long, f"files over {MAX_FILE_LINES} lines: {long}"


def test_no_function_over_80_lines():
    long = {}
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                where = f"{name}.{node.name}"
                if n > MAX_FUNCTION_LINES and where not in LONG_FUNCTIONS:
                    long[where] = n
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


@pytest.mark.parametrize(
    "needle", ["brief §", "oms-protocol.md", "billing-domain.md", "manufacturers.md", "../shared/docs"]
)
def test_comments_cite_only_the_projects_own_docs(needle):
    citing = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if needle in p.read_text(encoding="utf-8")]
    assert not citing, f"cite docs/ of this repository instead: {citing}"


def test_comments_cite_docs_not_issue_numbers():
    """An issue number means nothing to a reader of the code a year later; the docs say the why."""
    pattern = re.compile(r"\bissues? \d+\b", re.IGNORECASE)
    citing = [
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if ".migrations" not in ".".join(p.parts) and pattern.search(p.read_text(encoding="utf-8"))
    ]
    assert not citing, f"cite docs/ instead of issue numbers: {citing}"
