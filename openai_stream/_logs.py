"""``OPENAI_LOG``: the package's log records on stderr without configuring ``logging``, as openai-python does.

``OPENAI_LOG=debug`` (or ``info``, in any case) when ``openai_stream`` is
imported gives the ``openai_stream`` logger that level and a handler of its
own that writes to stderr: request ids, statuses, retries and their waits,
resent requests. Records then go to that handler only (not also to the
root logger's, which would print them twice); leave ``OPENAI_LOG`` unset to
route them through your own logging configuration. Any other value is
ignored, as openai-python ignores it. The records never hold the API key:
messages name the host and path, never the query or headers.
"""

from __future__ import annotations

import logging
import os
from typing import Optional

__all__ = ["LOGGER_NAME", "setup_from_environment"]

LOGGER_NAME = "openai_stream"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO}
_FORMAT = "[%(asctime)s - %(name)s:%(lineno)d - %(levelname)s] %(message)s"


class _EnvironmentHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler ``OPENAI_LOG`` adds (one per process, however often the setup runs)."""


def setup_from_environment(value: Optional[str] = None) -> Optional[int]:
    """Turn on logging to stderr when ``OPENAI_LOG`` (or ``value``) asks; return the level set, or None."""
    if value is None:
        value = os.environ.get("OPENAI_LOG")
    level = _LEVELS.get((value or "").strip().lower())
    if level is None:
        return None
    logger = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(handler, _EnvironmentHandler) for handler in logger.handlers):
        handler = _EnvironmentHandler()  # sys.stderr
        handler.setFormatter(logging.Formatter(_FORMAT, "%Y-%m-%d %H:%M:%S"))
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return level
