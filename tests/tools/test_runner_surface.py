"""The tool runner composes streams through their public surface, read from the runner's source.

A round's stream is only used through what any caller may use
(``stream.snapshot()``, ``stream.recording``, ``stream.parent``, iteration,
``until_done()``, ``close()``): the runner's AST holds no attribute access
``X._name`` where ``X`` is a stream, that is, a name with ``stream`` in it or
the runner's running round ``self._stream``.
"""

from __future__ import annotations

import ast
from typing import List

from conftest import PACKAGE

RUNNER = PACKAGE / "tools" / "_runner.py"


def is_stream(node: ast.expr) -> bool:
    """A stream variable (``stream``, ``round_stream``...) or the runner's ``self._stream``."""
    if isinstance(node, ast.Name):
        return "stream" in node.id.lower()
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "_stream"
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    )


def private_stream_accesses(source: str) -> List[str]:
    """Each ``X._name`` (dunders aside) where ``X`` is a stream, with its line."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
            continue
        if node.attr.startswith("__") and node.attr.endswith("__"):
            continue
        if is_stream(node.value):
            found.append((node.lineno, node.col_offset, ast.unparse(node)))
    return [f"line {line}: {text}" for line, _, text in sorted(found)]


def test_the_runner_uses_no_private_attribute_of_a_stream() -> None:
    found = private_stream_accesses(RUNNER.read_text(encoding="utf-8"))
    assert not found, f"the runner reaches into its streams: {found}"


def test_the_check_finds_what_it_forbids() -> None:
    source = (
        "def round(self, stream):\n"
        "    stream._parent = self\n"
        "    first = self._stream._recorder.started\n"
        "    text = stream._snapshot()\n"
        "    other_stream = stream\n"
        "    other_stream._result\n"
        "    stream.snapshot(), stream.recording, self._stream.metrics, stream.__class__, self._rounds\n"
    )
    assert [entry.split(": ", 1)[1] for entry in private_stream_accesses(source)] == [
        "stream._parent",
        "self._stream._recorder",
        "stream._snapshot",
        "other_stream._result",
    ]
