"""Fork safety: a count of the forks this process came out of.

After ``os.fork()`` (gunicorn ``--preload``, ``multiprocessing`` with the fork
start method) the child holds copies of the parent's pooled sockets and of
every running stream. A socket used by both processes mixes their answers, so
the child must never use one it inherited, and a stream the parent was running
cannot go on in the child (its thread did not come along).

:func:`generation` changes in every child right after the fork. Whoever holds
per-process state records the generation it was made in and compares: the
transport drops its inherited connection pools on the child's first request;
the stream engine can refuse to wait for, or read, a stream started in the
parent. The hook only increments a number: it takes no lock, since a lock
another parent thread held at the fork stays held forever in the child.
"""

from __future__ import annotations

import os

__all__ = ["generation"]

_generation = 0


def generation() -> int:
    """A number that is different in a forked child than in its parent (0 in a process never forked)."""
    return _generation


def _forked() -> None:
    global _generation
    _generation += 1  # runs in the child alone, before any of its threads exist


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_forked)
