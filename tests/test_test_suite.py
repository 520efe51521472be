"""The test suite itself: plain ``pytest`` runs it on this checkout, as ``python -m pytest`` does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO


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
