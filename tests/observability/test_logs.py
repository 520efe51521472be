"""``OPENAI_LOG=info|debug`` prints the package's log records on stderr, the API key never among them.

Each case runs a fresh interpreter (the variable is read at import) against a
loopback ReplayServer started here: one retried 503, one streamed answer, and
one 401 whose body echoes the key.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from typing import Iterator, Optional

import pytest
from conftest import ROOT

from openai_stream import _logs
from openai_stream.testing import ReplayServer, ScriptedResponse

KEY = "sk-logtest-0123456789abcdefSECRET"
CHUNK = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]}
SCRIPT = textwrap.dedent(
    """
    import sys
    import openai_stream
    import openai_stream.transport._http as http
    http._sleep = lambda seconds: None  # the retry's wait is logged, not slept
    client = openai_stream.Client(api_key=sys.argv[2], base_url=sys.argv[1], max_retries=1)
    client.chat.completions.stream(model="m", messages=[{"role": "user", "content": "x"}]).until_done()
    try:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    except openai_stream.AuthenticationError:
        pass
    print("done")
    """
)


@pytest.fixture()
def server() -> Iterator[ReplayServer]:
    echo = {"error": {"message": f"Incorrect API key provided: {KEY}", "type": "invalid_request_error",
                      "code": "invalid_api_key"}}
    responses = [
        ScriptedResponse.json({"error": {"message": "busy", "type": "server_error"}}, status=503),
        ScriptedResponse.from_chunks([CHUNK], headers={"x-request-id": "req_123"}),
        ScriptedResponse.json(echo, status=401),
    ]
    with ReplayServer(responses) as running:
        yield running


def run(server: ReplayServer, value: Optional[str]) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_LOG", "OPENAI_API_KEY")}
    env["PYTHONPATH"] = str(ROOT)
    if value is not None:
        env["OPENAI_LOG"] = value
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, server.base_url, KEY],
        env=env, capture_output=True, text=True, timeout=60, cwd=str(ROOT),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "done\n"
    return result.stderr


def test_debug_prints_every_record_without_the_key(server: ReplayServer) -> None:
    err = run(server, "debug")
    lines = err.splitlines()
    assert lines and all(line.startswith("[") and " - openai_stream" in line for line in lines), err
    assert any(" - DEBUG] POST http://127.0.0.1:" in line and "-> 200 (request id req_123)" in line
               for line in lines), err
    assert any(" - INFO] HTTP 503" in line and "retrying" in line for line in lines), err
    assert any("-> 401" in line for line in lines), err
    assert KEY not in err and KEY[:12] not in err


def test_info_prints_the_retries_only(server: ReplayServer) -> None:
    err = run(server, "INFO")
    assert " - INFO] HTTP 503" in err and "retrying" in err
    assert "DEBUG" not in err and KEY not in err


@pytest.mark.parametrize("value", [None, "", "verbose"])
def test_nothing_is_printed_otherwise(server: ReplayServer, value: Optional[str]) -> None:
    assert run(server, value) == ""


def test_setting_up_twice_adds_one_handler() -> None:
    logger = logging.getLogger("openai_stream")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    try:
        assert _logs.setup_from_environment("debug") == logging.DEBUG
        assert _logs.setup_from_environment("Info") == logging.INFO
        assert _logs.setup_from_environment("nonsense") is None
        mine = [h for h in logger.handlers if isinstance(h, _logs._EnvironmentHandler)]
        assert len(mine) == 1 and logger.level == logging.INFO and logger.propagate is False
    finally:
        logger.handlers[:] = saved[0]
        logger.setLevel(saved[1])
        logger.propagate = saved[2]
