"""Tools: Python functions the model can call, and the runner that calls them.

Modules: ``_tool`` (the ``@tool`` decorator and :class:`Tool`), ``_schema``
(JSON schemas from type hints, and argument conversion), ``_docstrings``
(parameter descriptions from Google, Sphinx and NumPy docstrings),
``_runner`` (:class:`ToolRunner`: stream a round, run the tools, send the
results back).

Builds on the chat resource and its streams; nothing below imports it.
"""
