"""Benchmarks: openai_stream side by side with the plain loop and the ``openai`` package.

Run ``python -m benchmarks.run`` (``--quick`` for small sizes, ``--json PATH``
to save the table). Everything is measured against a loopback SSE server that
this package starts itself.
"""
