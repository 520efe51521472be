"""Layer 1, the transport: HTTP, retries, timeouts, cancellation, and reading a body into events.

Modules: ``_http`` (the ``requests`` session, retries and error mapping),
``_cancel`` (cutting a blocked read or connect short from another thread),
``_sse`` (the sans-I/O server-sent-events decoder), ``_trace`` (what a call's requests record
for its metrics and hooks).

May import: ``requests``, ``urllib3``, the standard library, :mod:`openai_stream.errors`,
:mod:`openai_stream.hooks` (the client hooks it calls).
Must not import: the accumulators (``chat``, ``responses``), the engine, ``pyee``.
The SSE decoder imports no ``requests``, ``threading`` or ``pyee``.
"""
