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

from ._logs import setup_from_environment as _setup_logging
from ._pydantic import pydantic_function_tool
from ._version import __version__
from .azure import AzureClient
from .chat._accumulator import ChatCompletionAccumulator
from .chat._completion import (
    APIObject,
    ChatCompletion,
    ChatCompletionMessage,
    Choice,
    Function,
    ToolCall,
    Usage,
)
from .chat._resource import Chat, Completions
from .chat._stream import ChatCompletionStream
from .client import Client
from .engine._events import (
    EVENT_TYPES,
    ChunkEvent,
    CompletionEvent,
    ContentDeltaEvent,
    ContentDoneEvent,
    DoneEvent,
    ErrorEvent,
    Event,
    ModelToolCallDoneEvent,
    ParsedContentDoneEvent,
    ReasoningDeltaEvent,
    ReasoningDoneEvent,
    RefusalDeltaEvent,
    RefusalDoneEvent,
    ResponseEvent,
    StructuredContentDoneEvent,
    ToolCallDeltaEvent,
    ToolCallDoneEvent,
    UsageEvent,
)
from .engine._metrics import Recording, StreamMetrics
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
    MaxRoundsExceededError,
    NotFoundError,
    OpenAIError,
    PermissionDeniedError,
    RateLimitError,
    StreamInterruptedError,
    StructuredOutputError,
    ToolArgumentsError,
    ToolCallMismatchError,
    ToolDefinitionError,
    UnknownToolError,
    UnprocessableEntityError,
)
from .hooks import HOOK_NAMES
from .responses._accumulator import ResponseAccumulator
from .responses._events import (
    RESPONSE_EVENT_TYPES,
    CustomToolCallDeltaEvent,
    CustomToolCallDoneEvent,
    ResponseCompletionEvent,
    ResponseReasoningDeltaEvent,
    ResponseReasoningDoneEvent,
    ResponseStreamEvent,
)
from .responses._resource import Responses
from .responses._response import Response, ResponseContent, ResponseOutputItem, ResponseUsage
from .responses._stream import ResponseStream
from .tools._runner import (
    RUNNER_EVENT_TYPES,
    MessageEvent,
    ResponseToolRunner,
    RoundEvent,
    ToolResultEvent,
    ToolRunner,
)
from .tools._tool import Tool, tool
from .transport._http import Timeout
from .transport._sse import ServerSentEvent, SSEDecoder

__all__ = [
    "__version__",
    "Client",
    "AzureClient",
    "Chat",
    "Completions",
    "ChatCompletionStream",
    "ChatCompletionAccumulator",
    "SSEDecoder",
    "ServerSentEvent",
    "Timeout",
    "StreamMetrics",
    "Recording",
    "HOOK_NAMES",
    "EVENT_TYPES",
    "Event",
    "ResponseEvent",
    "ChunkEvent",
    "ContentDeltaEvent",
    "ContentDoneEvent",
    "ParsedContentDoneEvent",
    "ModelToolCallDoneEvent",
    "StructuredContentDoneEvent",
    "RefusalDeltaEvent",
    "RefusalDoneEvent",
    "ReasoningDeltaEvent",
    "ReasoningDoneEvent",
    "ToolCallDeltaEvent",
    "ToolCallDoneEvent",
    "UsageEvent",
    "DoneEvent",
    "CompletionEvent",
    "ErrorEvent",
    "ResponseAccumulator",
    "Responses",
    "ResponseStream",
    "ResponseToolRunner",
    "Response",
    "ResponseOutputItem",
    "ResponseContent",
    "ResponseUsage",
    "RESPONSE_EVENT_TYPES",
    "ResponseStreamEvent",
    "ResponseReasoningDeltaEvent",
    "ResponseReasoningDoneEvent",
    "CustomToolCallDeltaEvent",
    "CustomToolCallDoneEvent",
    "ResponseCompletionEvent",
    "RUNNER_EVENT_TYPES",
    "ToolResultEvent",
    "MessageEvent",
    "RoundEvent",
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
    "ToolCallMismatchError",
    "tool",
    "pydantic_function_tool",
    "Tool",
    "ToolRunner",
    "ToolDefinitionError",
    "ToolArgumentsError",
    "UnknownToolError",
    "MaxRoundsExceededError",
    "StructuredOutputError",
]

_setup_logging()  # OPENAI_LOG=debug|info: log records on stderr (see openai_stream._logs)
