"""The ``replay_server`` fixture reaches users' tests through a ``pytest11`` entry point.

The end-to-end test runs pytest in a subprocess on a test file written outside
the checkout, against the package as installed in this environment, with no
``pytest_plugins`` line and no conftest: the fixture must come from the entry
point alone.
"""

from __future__ import annotations

import configparser
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest
from conftest import REPO

from openai_stream._version import __distribution__

PLUGIN = "_openai_stream_pytestplugin"

USER_TEST = '''
import openai_stream
from openai_stream.testing import ReplayServer, ScriptedResponse

CHUNK = {
    "id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
    "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
}


def test_a_handler_sees_the_scripted_stream(replay_server):
    assert isinstance(replay_server, ReplayServer)
    replay_server.add(ScriptedResponse.from_chunks([CHUNK]))
    client = openai_stream.Client(base_url=replay_server.base_url, api_key="test", max_retries=0)
    seen = []
    stream = client.chat.completions.stream(model="m", messages=[{"role": "user", "content": "hi"}])
    stream.on("content.delta", lambda event: seen.append(event.delta))
    assert stream.until_done().choices[0].message.content == "hello"
    assert seen == ["hello"]
    assert len(replay_server.requests) == 1
'''


def _pytest_in(tmp_path: Path, *args: str, env: Dict[str, str]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")  # no settings of the checkout's
    (tmp_path / "test_user.py").write_text(USER_TEST, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, "test_user.py"],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=120,
    )


def _clean_env() -> Dict[str, str]:
    """This environment without the settings that change which plugins pytest loads."""
    drop = ("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_PLUGINS", "PYTEST_ADDOPTS")
    return {k: v for k, v in os.environ.items() if k not in drop}


def _installed_entry_points() -> List[importlib.metadata.EntryPoint]:
    try:
        dist = importlib.metadata.distribution(__distribution__)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{__distribution__} is not installed here (pip install -e .): no entry point to test")
    found = [ep for ep in dist.entry_points if ep.group == "pytest11"]
    if not found:
        pytest.skip(
            f"the {__distribution__} installed at {dist.locate_file('')} was installed before setup.cfg "
            "declared its pytest11 entry point; reinstall it (pip install -e .) to test the entry point"
        )
    return found


def test_setup_cfg_declares_the_entry_point_and_ships_the_plugin_module() -> None:
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg", encoding="utf-8")
    lines = [line.strip() for line in parser["options.entry_points"]["pytest11"].splitlines() if line.strip()]
    assert lines == [f"openai_stream = {PLUGIN}"]
    assert parser["options"]["py_modules"].split() == [PLUGIN]
    assert (REPO / f"{PLUGIN}.py").is_file()


def test_pytest_loading_the_plugin_imports_nothing_of_the_package() -> None:
    """pytest < 8.4 loads entry points before applying ``pythonpath``: the package must not load then."""
    code = f"import sys, {PLUGIN}; print(sorted(m for m in sys.modules if m.startswith('openai_stream')))"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_importing_the_package_and_its_testing_module_imports_no_pytest() -> None:
    watched = ("pytest", "_pytest", PLUGIN)
    code = f"import sys, openai_stream.testing; print([m for m in {watched!r} if m in sys.modules])"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_installed_package_gives_a_users_tests_the_fixture(tmp_path: Path) -> None:
    [entry_point] = _installed_entry_points()
    assert (entry_point.name, entry_point.value) == ("openai_stream", PLUGIN)
    env = _clean_env()

    result = _pytest_in(tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout

    # The fixture came from the plugin named by the entry point, and from nothing else.
    result = _pytest_in(tmp_path, "-p", "no:openai_stream", env=env)
    assert result.returncode != 0
    assert "fixture 'replay_server' not found" in result.stdout

    # Where autoloading is off, -p with the entry point's name turns it on.
    result = _pytest_in(tmp_path, env=dict(env, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1"))
    assert "fixture 'replay_server' not found" in result.stdout
    result = _pytest_in(tmp_path, "-p", "openai_stream", env=dict(env, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
