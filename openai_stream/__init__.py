"""openai_stream: streaming chat completions from OpenAI-compatible servers.

A blocking ``requests`` loop decodes server-sent events, a sans-I/O
:class:`ChatCompletionAccumulator` turns chunks into typed events, and a pyee
:class:`~pyee.EventEmitter` hands them to your handlers::

    stream = openai_stream.Client().chat.completions.stream(model=..., messages=[...])

    @stream.on("content.delta")
    def show(event):
        print(event.delta, end="", flush=True)

    completion = stream.until_done()
"""

from ._version import __version__
from .accumulator import ChatCompletionAccumulator
from .client import Chat, Client, Completions
from .completion import (
    APIObject,
    ChatCompletion,
    ChatCompletionMessage,
    Choice,
    Function,
    ToolCall,
    Usage,
)
from .errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    APIUserAbortError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    EventTooLargeError,
    InternalServerError,
    InvalidStreamDataError,
    NotFoundError,
    OpenAIError,
    PermissionDeniedError,
    RateLimitError,
    StreamInterruptedError,
    UnprocessableEntityError,
)
from .events import EVENT_TYPES
from .parsing import StructuredOutputError, ToolArgumentsError
from .runner import MaxRoundsExceededError, ToolRunner
from .sse import ServerSentEvent, SSEDecoder
from .stream import ChatCompletionStream
from .tools import Tool, ToolDefinitionError, UnknownToolError, tool
from .transport import Timeout

__all__ = [
    "__version__",
    "Client",
    "Chat",
    "Completions",
    "ChatCompletionStream",
    "ChatCompletionAccumulator",
    "SSEDecoder",
    "ServerSentEvent",
    "Timeout",
    "EVENT_TYPES",
    "APIObject",
    "ChatCompletion",
    "ChatCompletionMessage",
    "Choice",
    "Function",
    "ToolCall",
    "Usage",
    "OpenAIError",
    "APIError",
    "APIStatusError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "UnprocessableEntityError",
    "RateLimitError",
    "InternalServerError",
    "APIConnectionError",
    "APITimeoutError",
    "StreamInterruptedError",
    "APIUserAbortError",
    "EventTooLargeError",
    "InvalidStreamDataError",
    "tool",
    "Tool",
    "ToolRunner",
    "ToolDefinitionError",
    "ToolArgumentsError",
    "UnknownToolError",
    "MaxRoundsExceededError",
    "StructuredOutputError",
]
