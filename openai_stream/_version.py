__version__ = "0.1.0"

__distribution__ = "openai-stream-events"
"""The name to ``pip install`` (the import name is ``openai_stream``)."""
