"""Every exception openai_stream raises, and how server answers map onto them.

The whole tree::

    OpenAIError                           base of everything raised here
     ├─ APIError                          message, body, code, type, param, completion
     │   ├─ APIStatusError                status_code, headers, request_id
     │   │   ├─ BadRequestError                   400
     │   │   ├─ AuthenticationError               401
     │   │   ├─ PermissionDeniedError             403
     │   │   ├─ NotFoundError                     404
     │   │   ├─ ConflictError                     409
     │   │   ├─ UnprocessableEntityError          422
     │   │   ├─ RateLimitError                    429
     │   │   └─ InternalServerError               >= 500
     │   ├─ APIConnectionError            the server could not be reached, or the connection broke
     │   │   ├─ APITimeoutError           a connect, read or idle timeout passed
     │   │   └─ StreamInterruptedError    the body ended before the stream was complete
     │   ├─ APIUserAbortError             the caller closed the stream
     │   ├─ EventTooLargeError            one event exceeded max_event_bytes
     │   └─ InvalidStreamDataError        a data line that is not JSON, not an object, not UTF-8,
     │       │                            or a tool-call fragment for a call already done
     │       └─ ToolCallMismatchError     run_tools ran a call unlike the final message's
     ├─ ToolArgumentsError (ValueError)   a tool call's arguments are not valid JSON or do not fit
     ├─ StructuredOutputError (ValueError)  response_format content that is not valid JSON
     ├─ ToolDefinitionError (TypeError)   a function that cannot become a tool
     ├─ UnknownToolError (LookupError)    the model called a tool it was not given
     ├─ MaxRoundsExceededError            the tool runner reached max_rounds
     └─ LocalServerError                  the local llama.cpp server failed to start or answer
         └─ LocalExtraMissingError (ImportError)  the local extra is not installed

Every error raised once a response has started carries ``completion``: what
was assembled from everything received before the failure (a chat completion,
or a Responses API ``Response``).
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ._headers import Headers

if TYPE_CHECKING:
    from .chat._completion import ChatCompletion
    from .engine._events import Event

__all__ = [
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
    "ToolArgumentsError",
    "StructuredOutputError",
    "ToolDefinitionError",
    "UnknownToolError",
    "MaxRoundsExceededError",
    "LocalServerError",
    "LocalExtraMissingError",
    "ToolCallMismatchError",
    "error_for_status",
    "error_from_payload",
    "is_error_payload",
]


class OpenAIError(Exception):
    """Base class of every error openai_stream raises.

    Every error pickles and copies with its class, message and fields (for
    process pools). A live HTTP ``response`` is not pickled: it is ``None``
    on the unpickled copy.
    """

    def __reduce__(self) -> Tuple[Any, ...]:
        state = dict(self.__dict__)
        if state.get("response") is not None:
            state["response"] = None  # a live connection does not travel between processes
        return (_rebuild, (type(self), self.args, state))

    def __copy__(self) -> OpenAIError:
        return _rebuild(type(self), self.args, dict(self.__dict__))


def _rebuild(cls: type[OpenAIError], args: Tuple[Any, ...], state: Dict[str, Any]) -> OpenAIError:
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class APIError(OpenAIError):
    """Something went wrong talking to the API.

    ``body`` is what the server said about the error, shaped as openai-python
    has it: the inner ``error`` object of an ``{"error": {...}}`` payload, else
    the decoded payload (or text) itself. ``payload`` is the whole decoded
    payload. ``code``, ``type`` and ``param`` come from it. ``completion``
    holds what was streamed before the failure; it is ``None`` when no byte of
    the body had arrived. ``response`` is the HTTP response (a
    ``requests.Response``) for an error status, ``None`` for an error sent
    inside the stream.
    """

    def __init__(
        self,
        message: str,
        *,
        body: Any = None,
        code: Any = None,
        type: Optional[str] = None,
        param: Optional[str] = None,
        completion: Any = None,
        payload: Any = None,
        response: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.body = body
        self.payload = body if payload is None else payload
        self.code = code
        self.type = type
        self.param = param
        self.completion = completion
        self.response = response

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class APIStatusError(APIError):
    """The server answered with an error status, before or inside the stream.

    ``status_code`` is the HTTP status; for an error sent inside a stream it
    is the status the payload names (``code: 429``, ``status_code``), else
    ``None``. ``headers`` are the response's headers, looked up without regard
    to case (empty inside a stream).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: Optional[int],
        headers: Optional[Mapping[str, str]] = None,
        request_id: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.status_code = status_code
        self.headers: Mapping[str, str] = Headers(headers if headers is not None else {})
        self.request_id = request_id


class BadRequestError(APIStatusError):
    """400: the request was malformed; fix the parameters named in the message."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, wrong or revoked."""


class PermissionDeniedError(APIStatusError):
    """403: the key is valid but may not use this model or resource."""


class NotFoundError(APIStatusError):
    """404: the model, deployment or endpoint does not exist at this base URL."""


class ConflictError(APIStatusError):
    """409: the request conflicts with the resource's state; retry later."""


class UnprocessableEntityError(APIStatusError):
    """422: the request was well-formed but the server could not process it."""


class RateLimitError(APIStatusError):
    """429 or a quota error: slow down, or check the account's quota."""


class InternalServerError(APIStatusError):
    """5xx or an overloaded/server error: the provider failed; retry later."""


class APIConnectionError(APIError):
    """The server could not be reached, or the connection broke."""


class APITimeoutError(APIConnectionError):
    """A connect, read or idle timeout passed."""


class StreamInterruptedError(APIConnectionError):
    """The response body ended before the stream was complete."""


class APIUserAbortError(APIError):
    """The stream was closed by the caller before it finished."""


class EventTooLargeError(APIError):
    """One server-sent event exceeded the configured size limit."""


class InvalidStreamDataError(APIError):
    """A data line of the stream could not be understood (bad JSON, not an object, bad UTF-8).

    When a chunk fails half-way, ``events`` holds the events already derived
    from it (its ``chunk`` event first): what they report is in
    ``completion``, and the stream hands them to handlers before raising.
    """

    events: Sequence[Event] = ()


class ToolArgumentsError(OpenAIError, ValueError):
    """A tool call's arguments are not valid JSON, or do not match the tool's parameters.

    ``name`` and ``call_id`` identify the call, ``arguments`` is the text the
    model sent.
    """

    def __init__(
        self, message: str, *, name: Optional[str], call_id: Optional[str], arguments: str
    ) -> None:
        super().__init__(message)
        self.name = name
        self.call_id = call_id
        self.arguments = arguments


class StructuredOutputError(OpenAIError, ValueError):
    """The content of a ``response_format`` answer is not valid JSON (often: cut off by ``length``),
    or does not fit the pydantic model given as ``response_format``.

    ``content`` is the text; ``errors`` is pydantic's list of validation
    errors (``None`` when no model was given); ``completion`` is the whole
    completion when the error ends a stream (its message's ``parsed`` is ``None``).
    """

    def __init__(
        self,
        message: str,
        *,
        content: str,
        errors: Optional[List[Dict[str, Any]]] = None,
        completion: Any = None,
    ) -> None:
        super().__init__(message)
        self.content = content
        self.errors = errors
        self.completion = completion


class ToolDefinitionError(OpenAIError, TypeError):
    """A function cannot be turned into a tool: the message names the parameter and what to change."""


class UnknownToolError(OpenAIError, LookupError):
    """The model called a tool that was not given to it; ``name`` is what it asked for."""

    def __init__(self, message: str, *, name: Optional[str]) -> None:
        super().__init__(message)
        self.name = name


class MaxRoundsExceededError(OpenAIError):
    """The model still asked for tools when ``max_rounds`` rounds were done.

    ``messages`` holds the conversation so far, last tool results included,
    ready to send again; ``completion`` is the last round's completion.
    """

    def __init__(
        self, message: str, *, messages: List[Dict[str, Any]], completion: ChatCompletion, max_rounds: int
    ) -> None:
        super().__init__(message)
        self.messages = messages
        self.completion = completion
        self.max_rounds = max_rounds


class LocalServerError(OpenAIError):
    """The local llama.cpp server could not be started or did not answer."""


class LocalExtraMissingError(LocalServerError, ImportError):
    """``xllamacpp`` or the model package is not installed; the message gives the commands."""


class ToolCallMismatchError(InvalidStreamDataError):
    """The tool runner ran a call whose name or arguments differ from the final assistant message.

    The stream contradicted itself; nothing was sent back. ``index``, ``name``,
    ``executed_arguments`` and ``final_arguments`` (``None`` when the call is
    missing from the message) say which call and how; ``completion`` is the round's.
    """

    def __init__(
        self,
        message: str,
        *,
        completion: ChatCompletion,
        index: int,
        name: Optional[str],
        executed_arguments: str,
        final_arguments: Optional[str],
    ) -> None:
        super().__init__(message, completion=completion)
        self.index = index
        self.name = name
        self.executed_arguments = executed_arguments
        self.final_arguments = final_arguments


_STATUS_CLASSES = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}

_HINTS = {
    400: "check the request parameters",
    401: "check the API key (OPENAI_API_KEY or Client(api_key=...))",
    403: "check that this key may use this model",
    404: "check the model name and base_url",
    409: "retry the request later",
    422: "check the request parameters",
    429: "slow down or check your quota; retry after the time the server asked for",
}

_STRING_CODES = {
    "rate_limit_exceeded": RateLimitError,
    "insufficient_quota": RateLimitError,
    "requests": RateLimitError,
    "tokens": RateLimitError,
    "rate_limit_error": RateLimitError,
    "invalid_api_key": AuthenticationError,
    "authentication_error": AuthenticationError,
    "permission_error": PermissionDeniedError,
    "not_found_error": NotFoundError,
    "invalid_request_error": BadRequestError,
    "server_error": InternalServerError,
    "overloaded_error": InternalServerError,
    "api_error": InternalServerError,
    # The codes of a Responses API ``response.failed`` error object.
    "invalid_prompt": BadRequestError,
    "vector_store_timeout": InternalServerError,
    "invalid_image": BadRequestError,
    "invalid_image_format": BadRequestError,
    "invalid_base64_image": BadRequestError,
    "invalid_image_url": BadRequestError,
    "image_too_large": BadRequestError,
    "image_too_small": BadRequestError,
    "image_parse_error": BadRequestError,
    "image_content_policy_violation": BadRequestError,
    "invalid_image_mode": BadRequestError,
    "image_file_too_large": BadRequestError,
    "unsupported_image_media_type": BadRequestError,
    "empty_image_file": BadRequestError,
    "failed_to_download_image": BadRequestError,
    "image_file_not_found": BadRequestError,
}

_CLASS_STATUS = {
    BadRequestError: 400,
    AuthenticationError: 401,
    PermissionDeniedError: 403,
    NotFoundError: 404,
    RateLimitError: 429,
    InternalServerError: 500,
}


def _status_class(status: int) -> type[APIStatusError]:
    if status >= 500:
        return InternalServerError
    return _STATUS_CLASSES.get(status, APIStatusError)


def _hint(status: int) -> str:
    if status >= 500:
        return "the provider failed; retry later"
    return _HINTS.get(status, "see the error body")


def _error_fields(body: Any) -> dict[str, Any]:
    """Pull message/code/type/param out of the usual error payload shapes."""
    error: Any = body
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        error = body["error"]
    elif isinstance(body, Mapping) and isinstance(body.get("error"), str):
        error = {"message": body["error"]}
    if not isinstance(error, Mapping):
        return {"message": None, "code": None, "type": None, "param": None}
    message = error.get("message")
    if message is None and error is body and isinstance(body.get("detail"), (str, list)):
        message = _shorten(str(body["detail"]))  # FastAPI-style servers (vLLM, TGI)
    return {
        "message": message if isinstance(message, str) else None,
        "code": error.get("code"),
        "type": error.get("type") if isinstance(error.get("type"), str) else None,
        "param": error.get("param") if isinstance(error.get("param"), str) else None,
    }


def error_for_status(
    status_code: int,
    body: Any,
    *,
    headers: Optional[Mapping[str, str]] = None,
    request_id: Optional[str] = None,
    completion: Any = None,
    response: Any = None,
) -> APIStatusError:
    """Build the typed error for an HTTP error answer (``body``: decoded JSON or text)."""
    fields = _error_fields(body)
    detail = fields["message"]
    if detail is None and isinstance(body, str):
        detail = _shorten(_html_text(body) if _HTML.match(body) else body)
    message = f"HTTP {status_code}: {detail or 'no error message'} ({_hint(status_code)})"
    if request_id:
        message += f" [request id {request_id}]"
    cls = _status_class(status_code)
    return cls(
        message,
        status_code=status_code,
        headers=headers,
        request_id=request_id,
        body=_inner_error(body),
        payload=body,
        code=fields["code"],
        type=fields["type"],
        param=fields["param"],
        completion=completion,
        response=response,
    )


def is_error_payload(data: Any) -> bool:
    """Whether decoded JSON reports an error: ``{"error": ...}``, or vLLM's ``{"object": "error", ...}``."""
    return isinstance(data, dict) and (data.get("error") is not None or data.get("object") == "error")


def error_from_payload(
    payload: Mapping[str, Any],
    *,
    request_id: Optional[str] = None,
    completion: Any = None,
    where: str = "inside the stream",
) -> APIError:
    """Build the typed error for an error payload the server sent with a successful status.

    ``where`` completes the message "the server reported an error {where}: ...".
    A numeric code (or ``status_code``) maps like an HTTP status; string codes
    and types map by name; anything else is a plain :class:`APIError`. The
    error's ``status_code`` is the status the payload names, else ``None``.
    """
    fields = _error_fields(payload)
    inner = payload.get("error")
    error: Mapping[str, Any] = inner if isinstance(inner, Mapping) else payload
    status: Optional[int] = None
    for candidate in (fields["code"], error.get("status_code"), error.get("status")):
        number = _as_status(candidate)
        if number is not None:
            status = number
            break
    cls: Optional[type[APIStatusError]] = None
    if status is not None:
        cls = _status_class(status)
    for name in (fields["code"], fields["type"]):
        if cls in (None, APIStatusError) and isinstance(name, str) and name in _STRING_CODES:
            cls = _STRING_CODES[name]
    message = f"the server reported an error {where}: {fields['message'] or 'no error message'}"
    if cls is None:
        return APIError(
            message,
            body=_inner_error(payload),
            payload=payload,
            code=fields["code"],
            type=fields["type"],
            param=fields["param"],
            completion=completion,
        )
    hint = _hint(status if status is not None else _CLASS_STATUS.get(cls, 0))
    return cls(
        f"{message} ({hint})",
        status_code=status,
        request_id=request_id,
        body=_inner_error(payload),
        payload=payload,
        code=fields["code"],
        type=fields["type"],
        param=fields["param"],
        completion=completion,
    )


def _inner_error(body: Any) -> Any:
    """What openai-python calls the error's body: the inner ``error`` object, else the whole body."""
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        return body["error"]
    return body


def _as_status(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and 100 <= value <= 599:
        return value
    if isinstance(value, str) and value.isdigit() and 100 <= int(value) <= 599:
        return int(value)
    return None


_HTML = re.compile(r"\s*<(!doctype|html|head|body|title|h1|center)\b", re.IGNORECASE)
_TAG = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.IGNORECASE | re.DOTALL)


def _html_text(page: str) -> str:
    """The visible text of an HTML error page (gateways and proxies send these)."""
    return html.unescape(_TAG.sub(" ", page[:65536]))


def _shorten(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."
