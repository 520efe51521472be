"""Descriptions from docstrings: the summary text and one line per parameter.

Three common styles are understood, so existing functions work unchanged:

Google::

    Args:
        city: The city to look up.
        unit (str): ``"c"`` or ``"f"``; continuation lines are joined.

Sphinx / reST::

    :param city: The city to look up.
    :param str unit: ``"c"`` or ``"f"``.

NumPy::

    Parameters
    ----------
    city : str
        The city to look up.

The description is the text before the first section or field, as written.
Parameter sections are ``Args``/``Arguments``/``Parameters``/``Params``/
``Keyword Args``/``Other Parameters`` and, for dataclasses and TypedDicts,
``Attributes``; other sections (``Returns``, ``Raises``, ...) are ignored.
"""

from __future__ import annotations

import inspect
import re
from typing import Dict, List, NamedTuple, Optional, Tuple

__all__ = ["Docstring", "parse_docstring"]

_PARAM_SECTIONS = frozenset(
    {
        "args",
        "arguments",
        "parameters",
        "params",
        "keyword args",
        "keyword arguments",
        "other parameters",
        "attributes",
    }
)
_SECTIONS = "|".join(sorted(_PARAM_SECTIONS)) + (
    "|returns?|yields?|raises|exceptions|examples?|notes?|warnings?|see also|references|todo|methods"
)
_GOOGLE_HEADER = re.compile(rf"^({_SECTIONS})\s*:\s*$", re.IGNORECASE)
_NUMPY_HEADER = re.compile(rf"^({_SECTIONS})\s*$", re.IGNORECASE)
_UNDERLINE = re.compile(r"^\s*-{3,}\s*$")
_SPHINX_FIELD = re.compile(r"^:(\w+)([^:]*):\s*(.*)$")
_SPHINX_PARAM_FIELDS = frozenset(
    {"param", "parameter", "arg", "argument", "key", "keyword", "ivar", "var"}
)
_GOOGLE_ENTRY = re.compile(r"^\*{0,2}([A-Za-z_]\w*)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_ENTRY = re.compile(r"^\*{0,2}([A-Za-z_][\w, *]*?)\s*(?::.*)?$")


class Docstring(NamedTuple):
    """A parsed docstring: the ``description`` and a description per parameter name."""

    description: str
    params: Dict[str, str]


def parse_docstring(doc: Optional[str]) -> Docstring:
    """Split a docstring into its description and its parameter descriptions."""
    if not doc or not doc.strip():
        return Docstring("", {})
    lines = inspect.cleandoc(doc).splitlines()
    params: Dict[str, str] = {}
    description_end = len(lines)
    i = 0
    while i < len(lines):
        kind = _section_at(lines, i)
        if kind is None:
            i += 1
            continue
        description_end = min(description_end, i)
        style, name = kind
        if style == "sphinx":
            i = _read_sphinx(lines, i, params)
        elif style == "google":
            i = _read_google(lines, i + 1, params if name in _PARAM_SECTIONS else {})
        else:
            i = _read_numpy(lines, i + 2, params if name in _PARAM_SECTIONS else {})
    return Docstring("\n".join(lines[:description_end]).strip(), params)


def _section_at(lines: List[str], i: int) -> Optional[Tuple[str, str]]:
    line = lines[i]
    if not line or line[0].isspace():
        return None
    match = _SPHINX_FIELD.match(line)
    if match:
        return "sphinx", match.group(1).lower()
    match = _GOOGLE_HEADER.match(line)
    if match:
        return "google", match.group(1).lower()
    match = _NUMPY_HEADER.match(line)
    if match and i + 1 < len(lines) and _UNDERLINE.match(lines[i + 1]):
        return "numpy", match.group(1).lower()
    return None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _read_google(lines: List[str], i: int, params: Dict[str, str]) -> int:
    """Entries indented under the header; deeper lines continue the entry above."""
    base: Optional[int] = None
    current: Optional[str] = None
    while i < len(lines):
        line = lines[i]
        if line.strip() and not line[0].isspace():
            break
        if line.strip():
            indent = _indent(line)
            if base is None:
                base = indent
            match = _GOOGLE_ENTRY.match(line.strip()) if indent <= base else None
            if match:
                current = match.group(1)
                params[current] = match.group(2).strip()
            elif current is not None:
                params[current] = _join(params[current], line.strip())
        i += 1
    return i


def _read_numpy(lines: List[str], i: int, params: Dict[str, str]) -> int:
    """``name : type`` lines at the margin, their description indented below."""
    names: List[str] = []
    while i < len(lines) and _section_at(lines, i) is None:
        line = lines[i]
        if line.strip():
            if not line[0].isspace():
                match = _NUMPY_ENTRY.match(line)
                names = (
                    [n.strip().lstrip("*") for n in match.group(1).split(",") if n.strip()]
                    if match
                    else []
                )
                for name in names:
                    params[name] = ""
            else:
                for name in names:
                    params[name] = _join(params[name], line.strip())
        i += 1
    return i


def _read_sphinx(lines: List[str], i: int, params: Dict[str, str]) -> int:
    """One ``:field [type] name: text`` with its indented continuation lines."""
    match = _SPHINX_FIELD.match(lines[i])
    assert match is not None
    field, target, text = match.group(1).lower(), match.group(2).split(), match.group(3).strip()
    i += 1
    while i < len(lines) and lines[i].strip() and _section_at(lines, i) is None:
        text = _join(text, lines[i].strip())
        i += 1
    if field in _SPHINX_PARAM_FIELDS and target:
        params[target[-1].lstrip("*")] = text
    return i


def _join(text: str, more: str) -> str:
    return f"{text} {more}" if text else more
