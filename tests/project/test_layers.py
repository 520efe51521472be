"""The import rules of the layers, read from the modules' own import statements.

Data flows one way: transport (bytes) -> accumulators (payloads in, events out)
-> engine (handlers, iteration, threads). The sans-I/O modules (the
accumulators, their events and result objects, the body reader, the SSE
decoder, the errors) must not reach a socket, a thread or pyee, not even
through another module of the package they import: each rule is checked on
the transitive closure of the package's own imports (the top-level
``openai_stream/__init__.py``, the public face, excluded), with imports inside
functions counted too.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterable, List, Set, Tuple

import pytest
from conftest import PACKAGE

SANS_IO = [
    "openai_stream.errors",
    "openai_stream._headers",
    "openai_stream.transport._sse",
    "openai_stream.transport._body",
    "openai_stream.engine._events",
    "openai_stream.engine._parsing",
    "openai_stream.chat._accumulator",
    "openai_stream.chat._completion",
    "openai_stream.responses._accumulator",
    "openai_stream.responses._events",
    "openai_stream.responses._response",
]
IO_AND_THREADS = {
    "requests", "urllib3", "threading", "socket", "ssl", "http", "pyee", "concurrent", "selectors",
}

# module prefix -> package prefixes it must never import (directly or through others)
LAYER_RULES: List[Tuple[str, Tuple[str, ...]]] = [
    ("openai_stream.transport", ("openai_stream.engine", "openai_stream.chat", "openai_stream.responses",
                                 "openai_stream.tools", "openai_stream.client")),
    ("openai_stream.engine", ("openai_stream.chat", "openai_stream.responses", "openai_stream.tools",
                              "openai_stream.client")),
    ("openai_stream.chat._accumulator", ("openai_stream.engine._stream", "openai_stream.transport._http",
                                         "openai_stream.tools")),
    ("openai_stream.responses._accumulator", ("openai_stream.engine._stream",
                                              "openai_stream.transport._http", "openai_stream.tools")),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> Dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}


def imports_of(name: str, path: Path) -> Set[str]:
    """Every module ``path`` imports, absolute, with ``from x import y`` giving x and x.y.

    Imports under ``if TYPE_CHECKING:`` never run and are left out.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skipped = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
        for inner in ast.walk(node)
    }
    found: Set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            found.add(origin)
            found.update(f"{origin}.{alias.name}" for alias in node.names)
    return found


def closure(start: str, graph: Dict[str, Set[str]], known: Iterable[str]) -> Set[str]:
    """Every module reached from ``start``, the packages run on the way included."""
    known_set = set(known)
    seen: Set[str] = set()
    stack = [start]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        for target in graph.get(current, ()):
            chain = target.split(".")
            for i in range(1, len(chain) + 1):  # importing a.b.c runs a/__init__, a/b/__init__
                prefix = ".".join(chain[:i])
                if prefix in known_set and prefix != "openai_stream" and prefix not in seen:
                    stack.append(prefix)
    return seen


@pytest.fixture(scope="module")
def graph() -> Dict[str, Set[str]]:
    return {name: imports_of(name, path) for name, path in modules().items()}


def external(graph: Dict[str, Set[str]], names: Iterable[str]) -> Set[str]:
    return {target.split(".")[0] for name in names for target in graph[name]} - {"openai_stream"}


@pytest.mark.parametrize("module", SANS_IO)
def test_sans_io_modules_reach_no_socket_thread_or_emitter(module: str, graph: Dict[str, Set[str]]) -> None:
    assert module in graph, f"{module} moved: update the layer rules"
    reached = closure(module, graph, graph)
    forbidden = external(graph, reached) & IO_AND_THREADS
    assert not forbidden, f"{module} reaches {sorted(forbidden)} through {sorted(reached)}"


@pytest.mark.parametrize(("layer", "banned"), LAYER_RULES, ids=[rule[0] for rule in LAYER_RULES])
def test_data_flows_one_way(layer: str, banned: Tuple[str, ...], graph: Dict[str, Set[str]]) -> None:
    members = [name for name in graph if name == layer or name.startswith(layer + ".")]
    assert members, f"no module under {layer}"
    for name in members:
        reached = closure(name, graph, graph)
        wrong = sorted(m for m in reached if m.startswith(banned))
        assert not wrong, f"{name} imports {wrong}, against the layering"


def test_the_rules_can_fail(graph: Dict[str, Set[str]]) -> None:
    # The checker itself: the engine's stream does reach threading and pyee.
    reached = closure("openai_stream.engine._stream", graph, graph)
    assert {"threading", "pyee"} <= external(graph, reached)
    assert "openai_stream.transport._http" in reached


def test_every_subpackage_docstring_names_its_layer_and_rules() -> None:
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert "import" in doc and len(doc) > 80, f"{init} must say its layer and what it may import"
