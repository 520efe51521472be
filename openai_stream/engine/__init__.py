"""Layer 3, the stream engine: the event classes every API emits and the stream that dispatches them.

Modules: ``_events`` (the event classes and the text buffer behind their
snapshots), ``_parsing`` (JSON the model wrote: tool arguments, structured
content, partial JSON).

``_events`` and ``_parsing`` are sans-I/O (the accumulators build events), so
they import no ``requests``, ``threading``, ``socket`` or ``pyee``.
"""
