"""The Responses API: ``POST /responses``.

Modules: ``_accumulator`` (sans-I/O: event payloads in, events out, the
response assembled), ``_events`` (the server's events as typed objects and the
responses-specific high-level events), ``_response`` (the :class:`Response`
object).

All three import no ``requests``, ``socket`` or ``pyee``; the stream and the
``client.responses`` resource, which touch the engine and the transport, live
in their own modules.
"""
