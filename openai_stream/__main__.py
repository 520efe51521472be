"""``python -m openai_stream``: the ``openai-stream`` command line (see :mod:`openai_stream.cli`)."""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from .cli import main as _cli_main

__all__ = ["main"]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    return _cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
