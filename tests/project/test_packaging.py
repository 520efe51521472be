"""The distribution: its name on the package index, the install hints, and what type checkers see.

The name is checked against ``setup.cfg`` (what ``pip install`` builds), not
against the package's own constant alone. The type-checking test runs mypy on
a file outside the checkout, against the package as installed in this
environment, in a subprocess with no ``PYTHONPATH``.
"""

from __future__ import annotations

import configparser
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
from conftest import ROOT

import openai_stream.local
from openai_stream._version import __distribution__


def setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg", encoding="utf-8")
    return parser


def test_the_distribution_name_is_ours_and_is_the_one_setup_cfg_builds() -> None:
    name = setup_cfg()["metadata"]["name"]
    assert name == __distribution__ == "openai-stream-events"
    # "openai-stream" (and its normalised spellings) belongs to an unrelated project on PyPI.
    assert re.sub(r"[-_.]+", "-", name).lower() != "openai-stream"


def test_the_pydantic_extra_exists_and_the_test_extra_installs_pydantic() -> None:
    extras = setup_cfg()["options.extras_require"]
    assert "pydantic>=2" in extras["pydantic"]
    assert "pydantic>=2" in extras["test"]


def test_the_otel_extra_brings_the_api_and_sdk_and_the_tests_install_them() -> None:
    extras = setup_cfg()["options.extras_require"]
    for name in ("otel", "test"):
        found = {line.split(">=")[0].strip() for line in extras[name].splitlines() if line.strip()}
        assert {"opentelemetry-api", "opentelemetry-sdk"} <= found, name


def _text_files() -> List[Path]:
    files = [ROOT / "README.rst", ROOT / ".ci" / "run", ROOT / "setup.cfg"]
    for folder in ("openai_stream", "examples", "benchmarks"):
        files += sorted((ROOT / folder).rglob("*.py"))
    return files


# The arguments of one `pip install` command (up to the end of the command), and a requirement in them
# that names this project.
_INSTALL = re.compile(r"pip install([^\n&;|`]*)")
_PROJECT = re.compile(r"(?<![\w/.-])['\"]?(openai[-_.]stream[-_.a-z]*)", re.IGNORECASE)


def test_every_install_hint_names_the_distribution() -> None:
    found = []
    for path in _text_files():
        for command in _INSTALL.finditer(path.read_text(encoding="utf-8")):
            for match in _PROJECT.finditer(command.group(1)):
                found.append((path.relative_to(ROOT), match.group(1)))
    assert found, "no install hint found: the pattern is wrong"
    wrong = [(str(path), name) for path, name in found if name != __distribution__]
    assert wrong == []


def test_the_missing_extra_messages_name_the_distribution() -> None:
    assert f"pip install '{__distribution__}[local]'" in openai_stream.local.INSTALL_HINT


def _installed_location() -> str:
    try:
        dist = importlib.metadata.distribution(__distribution__)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(
            f"{__distribution__} is not installed in this environment (run `pip install -e .` "
            "to check what type checkers see of an install)"
        )
    return str(dist.locate_file(""))


def test_a_file_outside_the_checkout_type_checks_against_the_installed_package(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    _installed_location()
    script = tmp_path / "uses_openai_stream.py"
    script.write_text(
        "import openai_stream\n"
        "\n"
        "client = openai_stream.Client(api_key='unused', base_url='http://127.0.0.1:9/v1')\n"
        "url: str = client.base_url\n"
        "wrong: int = client.base_url\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MYPYPATH")}
    result = subprocess.run(
        [
            sys.executable, "-m", "mypy", "--strict", "--no-error-summary",
            "--cache-dir", str(tmp_path / "cache"), "--python-executable", sys.executable,
            script.name,
        ],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300,
    )
    # Exactly the one planted error: mypy found the package and read its types.
    lines = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert len(lines) == 1, result.stdout + result.stderr
    assert "uses_openai_stream.py:5:" in lines[0]
    assert 'expression has type "str", variable has type "int"' in lines[0]
