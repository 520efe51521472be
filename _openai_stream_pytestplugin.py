"""openai_stream's pytest plugin: the ``replay_server`` fixture.

Installing ``openai-stream-events`` registers this module with pytest through
the ``pytest11`` entry point named ``openai_stream`` (``setup.cfg``), so a test
takes the fixture as an argument with no ``pytest_plugins`` line.
``-p no:openai_stream`` turns it off; where plugin autoloading is off
(``PYTEST_DISABLE_PLUGIN_AUTOLOAD``), ``-p openai_stream`` turns it on.

It is a top-level module, not part of the package, so that pytest loading it
imports nothing of ``openai_stream`` (hypothesis does the same with its
plugin). pytest loads every installed plugin at startup: importing the package
here would add its import time to every pytest run in an environment that has
it installed, and, before pytest 8.4 (which applies ``pythonpath`` first),
would decide too early which copy of the package the tests import (the
installed one, not a checkout's). The package is imported when a test first
asks for the fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from openai_stream.testing import ReplayServer


@pytest.fixture(name="replay_server")
def replay_server() -> Iterator[ReplayServer]:
    """A started :class:`openai_stream.testing.ReplayServer` with an empty queue, closed after the test."""
    from openai_stream.testing import ReplayServer

    with ReplayServer() as server:
        yield server
