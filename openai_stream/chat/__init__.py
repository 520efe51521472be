"""The Chat Completions API: ``POST /chat/completions``.

Modules: ``_accumulator`` (sans-I/O: chunk dicts in, events out, the
completion assembled), ``_completion`` (the completion objects), ``_stream``
(:class:`ChatCompletionStream`), ``_resource`` (``client.chat.completions``).

``_accumulator`` and ``_completion`` import no ``requests``, ``threading``,
``socket`` or ``pyee``; only ``_stream`` and ``_resource`` touch the engine and
the transport.
"""
