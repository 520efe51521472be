"""Request parameters: the known parameters of each endpoint, and the JSON body built from them.

Each endpoint has one table of the parameters its request body takes, from
the API reference (the keyword arguments of openai-python's
``chat.completions.create`` and ``responses.create``, which are generated
from it). A keyword that is in neither the table nor the method's own
options is refused with :class:`TypeError` before anything is sent, naming
the closest known name: a misspelled ``max_token=5`` would otherwise reach
the server, which ignores it or fails far from the typo. Parameters that
only some providers know (``top_k``, ``min_p``, ``repetition_penalty``...)
go in ``extra_body``, as with openai-python.

:func:`request_body` turns the parameters into the JSON body at once, so a
value that cannot be sent fails in the caller's line, naming where it is
(``messages[2].content``), not when the stream starts. The SDK's own objects
(a completion's message, a tool call, a :class:`~openai_stream.Tool`) and
pydantic models are encoded as the JSON they stand for.
"""

from __future__ import annotations

import difflib
import enum
import math
import re
from collections import abc
from typing import Any, Collection, Dict, FrozenSet, Mapping, Optional

__all__ = [
    "CHAT_COMPLETIONS_PARAMS",
    "RESPONSES_PARAMS",
    "REQUEST_OPTIONS",
    "check_params",
    "request_body",
    "to_json",
]

CHAT_COMPLETIONS_PARAMS: FrozenSet[str] = frozenset(
    {
        "audio",
        "frequency_penalty",
        "function_call",
        "functions",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "messages",
        "metadata",
        "modalities",
        "model",
        "moderation",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "prompt_cache_options",
        "prompt_cache_retention",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
    }
)
"""The request body of ``POST /chat/completions``."""

RESPONSES_PARAMS: FrozenSet[str] = frozenset(
    {
        "access_programs",
        "background",
        "background_options",
        "context_management",
        "conversation",
        "image",
        "include",
        "input",
        "instructions",
        "max_output_tokens",
        "max_tool_calls",
        "metadata",
        "model",
        "moderation",
        "parallel_tool_calls",
        "previous_response_id",
        "prompt",
        "prompt_cache_key",
        "prompt_cache_options",
        "prompt_cache_retention",
        "reasoning",
        "safety_identifier",
        "service_tier",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "text",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "truncation",
        "user",
    }
)
"""The request body of ``POST /responses``."""

REQUEST_OPTIONS: FrozenSet[str] = frozenset(
    {"extra_headers", "extra_query", "extra_body", "timeout", "max_retries"}
)
"""What every request method takes besides its body's parameters (as openai-python's do)."""


def check_params(params: Collection[str], known: Collection[str], *, method: str) -> None:
    """Raise :class:`TypeError` for the first of ``params`` that is not in ``known``.

    ``known`` holds the endpoint's parameters and the method's own options;
    ``method`` names the call in the message (``chat.completions.stream``).
    """
    for name in params:
        if name in known:
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
        guess = f"; did you mean {close[0]!r}?" if close else ""
        raise TypeError(
            f"{method}() got an unexpected keyword argument {name!r}{guess} A parameter that only "
            f"some providers know goes in extra_body={{{name!r}: ...}}, which is merged into the "
            "request body as given."
        )


def request_body(params: Mapping[str, Any], extra_body: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The JSON body: ``params`` encoded (see :func:`to_json`), then ``extra_body`` over them.

    Raises :class:`TypeError` naming the path of the first value that cannot
    be sent as JSON.
    """
    body: Dict[str, Any] = {key: to_json(value, key) for key, value in params.items()}
    if extra_body is not None:
        if not isinstance(extra_body, Mapping):
            raise TypeError(f"extra_body must be a dict of body fields, not {type(extra_body).__name__}")
        for key, value in extra_body.items():
            if not isinstance(key, str):
                raise TypeError(f"extra_body has a key that is not a string: {key!r:.80}")
            body[key] = to_json(value, f"extra_body{_key_path(key)}")
    return body


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _key_path(key: str) -> str:
    return f".{key}" if _IDENTIFIER.match(key) else f"[{key!r}]"


def to_json(value: Any, path: str) -> Any:
    """``value`` as plain JSON data (dicts, lists, strings, numbers, booleans, None).

    Dicts and lists are copied; tuples become lists. A completion, message or
    tool call of this SDK becomes its ``to_dict()`` (without the ``parsed``
    and ``parsed_arguments`` this SDK adds), a :class:`~openai_stream.Tool` its
    definition, a pydantic model its ``model_dump(mode="json")`` (the fields
    that were set, as openai-python sends them), an ``Enum`` member its value.
    Anything else, and ``NaN`` or infinities, raise :class:`TypeError` naming
    ``path``.
    """
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        if not math.isfinite(value):
            raise TypeError(f"{path} is {value!r}, which JSON cannot carry; send a finite number")
        return value
    if isinstance(value, abc.Mapping):  # collections.abc: typing's alias is slower to check
        result: Dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                if not isinstance(key, (int, float, bool)) and key is not None:
                    raise TypeError(
                        f"{path} has a key of type {type(key).__name__} ({key!r:.60}); JSON object keys "
                        "are strings"
                    )
                key = _scalar_key(key)
            result[key] = to_json(item, f"{path}{_key_path(key)}")
        return result
    if isinstance(value, (list, tuple)):
        return [to_json(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, (str, int, float)):  # subclasses: str and int enums, IntFlag...
        return to_json(_base(value), path)
    return to_json(_own_json(value, path), path)


def _base(value: Any) -> Any:
    """A ``str``/``int``/``float`` subclass instance (a ``str`` enum member...) as the plain type."""
    if isinstance(value, enum.Enum):
        return value.value
    for plain in (bool, int, float, str):
        if isinstance(value, plain):
            return plain(value)
    return value


def _scalar_key(key: Any) -> str:
    """A non-string key as ``json.dumps`` writes it."""
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    return str(key) if isinstance(key, int) else repr(float(key))


def _own_json(value: Any, path: str) -> Any:
    """The JSON an object of this SDK, a pydantic model or an Enum member stands for."""
    from .chat._completion import APIObject, sendable
    from .tools._tool import Tool

    if isinstance(value, APIObject):
        return sendable(value)  # without this SDK's parsed and parsed_arguments
    if isinstance(value, Tool):
        return value.definition
    if isinstance(value, enum.Enum):
        return value.value
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        try:
            return dump(mode="json", exclude_unset=True, by_alias=True)
        except TypeError:  # not pydantic's signature
            pass
    raise TypeError(
        f"{path} is a {type(value).__module__}.{type(value).__qualname__}, which cannot be sent as JSON; "
        "give a string, number, boolean, None, list or dict (a completion's message and tool calls, "
        "and pydantic models, are encoded for you)"
    )
