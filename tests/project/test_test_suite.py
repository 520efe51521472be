"""The test suite itself: where its modules live, and plain ``pytest`` runs it on this checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PACKAGE, REPO, TESTS


def test_plain_pytest_tests_this_checkout(tmp_path: Path) -> None:
    """The ``pytest`` script imports the package from the checkout, not from another install.

    ``python -m pytest`` puts the current directory on ``sys.path``; the script does not, so
    without the ``pythonpath`` setting it would test whatever ``openai_stream`` is installed
    (another worktree's editable install, or a released version).
    """
    script = Path(sys.executable).with_name("pytest")
    if not script.exists():
        pytest.skip(f"no pytest script beside {sys.executable}")
    probe = tmp_path / "test_probe.py"
    probe.write_text(
        "import openai_stream\ndef test_probe():\n    print('IMPORTED', openai_stream.__file__)\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [
            str(script),
            "-q",
            "-s",
            "-p",
            "no:cacheprovider",
            "-c",
            str(REPO / "setup.cfg"),
            "--rootdir",
            str(REPO),
            str(probe),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith("IMPORTED")]
    assert Path(line.split(" ", 1)[1]).resolve() == REPO / "openai_stream" / "__init__.py"


# One folder per layer of the package, then the tools at the top and the project as a whole.
FOLDERS = {
    "transport", "engine", "chat", "responses", "tools", "client", "observability", "tooling", "project"
}


def test_every_test_module_sits_in_a_layer_folder_under_a_name_of_its_own() -> None:
    modules = sorted(TESTS.rglob("test_*.py"))
    assert len(modules) >= 40
    misplaced = [
        str(p.relative_to(TESTS)) for p in modules if p.parent.parent != TESTS or p.parent.name not in FOLDERS
    ]
    assert misplaced == []
    # pytest and mypy import each as a top-level module (no __init__.py), so two of one name would clash.
    names = [p.name for p in modules]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
    assert sorted(str(p.relative_to(TESTS)) for p in TESTS.rglob("__init__.py")) == []


def test_every_subpackage_has_its_test_folder() -> None:
    subpackages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert {"transport", "engine", "chat", "responses", "tools"} <= subpackages
    assert subpackages <= FOLDERS
