"""Response objects: attribute access over the JSON the API sent, nothing dropped.

``completion.choices[0].message.tool_calls[0].function.arguments`` reads the
same names as the API's JSON. Fields the classes do not name stay reachable as
attributes and in :meth:`APIObject.to_dict`, so provider extras round-trip.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Tuple

__all__ = [
    "APIObject",
    "ChatCompletion",
    "Choice",
    "ChatCompletionMessage",
    "ToolCall",
    "Function",
    "Usage",
    "ChoiceLogprobs",
]


def _plain(value: Any) -> Any:
    """A deep copy of JSON data (dicts, lists and scalars), however deeply nested.

    Iterative, not recursive: ``json.loads`` accepts nesting deeper than
    Python's recursion limit allows a recursive copy, and a completion must
    never fail to copy what was received.
    """
    if not isinstance(value, (dict, list)):
        return value
    root: Any = {} if isinstance(value, dict) else []
    pending = [(value, root)]
    while pending:
        source, target = pending.pop()
        items = source.items() if isinstance(source, dict) else enumerate(source)
        for key, item in items:
            if isinstance(item, dict):
                copied: Any = {}
                pending.append((item, copied))
            elif isinstance(item, list):
                copied = []
                pending.append((item, copied))
            elif item is None or isinstance(item, (str, int, float)):
                copied = item
            else:  # a pydantic instance as ``parsed`` (response_format=Model): its JSON form
                dump = getattr(item, "model_dump", None)
                copied = dump(mode="json") if callable(dump) else item
            if isinstance(target, dict):
                target[key] = copied
            else:
                target.append(copied)
    return root


class APIObject:
    """A read-only view of one JSON object of the API.

    Declared fields that the server did not send read as ``None``; any other
    key the server sent is an attribute too. ``obj["key"]`` and ``obj.get``
    work as on the dict.
    """

    __slots__ = ("_data",)
    _nested: ClassVar[Dict[str, type]] = {}

    def __init__(self, data: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_data", data)

    def __getattr__(self, name: str) -> Any:
        data = object.__getattribute__(self, "_data")
        try:
            value = data[name]
        except KeyError:
            if name in _declared(type(self)):
                return None
            raise AttributeError(
                f"{type(self).__name__} has no field {name!r}; fields: {sorted(data)}"
            ) from None
        return _wrap(value, type(self)._nested.get(name, APIObject))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only; use to_dict() for a copy to edit")

    def __getitem__(self, key: str) -> Any:
        return _wrap(self._data[key], type(self)._nested.get(key, APIObject))

    def get(self, key: str, default: Any = None) -> Any:
        """The field ``key``, or ``default`` when the server did not send it."""
        if key not in self._data:
            return default
        return self[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __eq__(self, other: object) -> bool:
        if isinstance(other, APIObject):
            return bool(self._data == other._data)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> Tuple[type, Tuple[Mapping[str, Any]]]:
        return (type(self), (self._data,))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._data!r})"

    def __dir__(self) -> List[str]:
        return sorted(set(super().__dir__()) | set(self._data) | _declared(type(self)))

    def to_dict(self) -> Dict[str, Any]:
        """A plain, JSON-ready copy of every field, including unknown ones."""
        result: Dict[str, Any] = _plain(self._data)
        return result

    def model_dump(
        self,
        *,
        mode: str = "python",
        exclude_none: bool = False,
        exclude_unset: bool = False,
        by_alias: bool = False,
    ) -> Dict[str, Any]:
        """:meth:`to_dict` under the name openai-python's (pydantic) objects give it.

        The data holds exactly the fields the server sent, so ``exclude_unset``
        changes nothing and ``mode`` is always JSON-ready; ``exclude_none``
        leaves out every ``null`` field, at any depth.
        """
        data = self.to_dict()
        result: Dict[str, Any] = _without_none(data) if exclude_none else data
        return result

    def model_dump_json(
        self,
        *,
        indent: Optional[int] = None,
        exclude_none: bool = False,
        exclude_unset: bool = False,
        by_alias: bool = False,
    ) -> str:
        """The object as JSON text, as openai-python's ``model_dump_json()`` gives it (UTF-8, compact)."""
        data = self.model_dump(exclude_none=exclude_none)
        if indent is None:
            return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        return json.dumps(data, ensure_ascii=False, indent=indent)


def sendable(value: APIObject) -> Dict[str, Any]:
    """``value.to_dict()`` without what this SDK adds to what the server sent, for a request.

    A message loses ``parsed`` and its function calls' ``parsed_arguments``;
    a tool call, a function or a Responses ``function_call`` item its
    ``parsed_arguments`` (openai-python leaves them out too:
    ``__api_exclude__``).
    """
    data = value.to_dict()
    if isinstance(value, ChatCompletionMessage):
        data.pop("parsed", None)
        calls = data.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            if isinstance(call, dict) and isinstance(call.get("function"), dict):
                call["function"].pop("parsed_arguments", None)
    elif isinstance(value, ToolCall):
        if isinstance(data.get("function"), dict):
            data["function"].pop("parsed_arguments", None)
    elif isinstance(value, Function) or data.get("type") == "function_call":  # a responses item too
        data.pop("parsed_arguments", None)
    return data


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


_DECLARED: Dict[type, frozenset[str]] = {}


def _declared(cls: type) -> frozenset[str]:
    names = _DECLARED.get(cls)
    if names is None:
        collected: set[str] = set()
        for klass in cls.__mro__:
            collected.update(getattr(klass, "__annotations__", {}))
        collected.discard("_nested")
        names = _DECLARED[cls] = frozenset(collected)
    return names


def _wrap(value: Any, cls: type) -> Any:
    if isinstance(value, dict):
        return cls(value)
    if isinstance(value, list):
        return [_wrap(v, cls) for v in value]
    return value


class Function(APIObject):
    """The function a tool call invokes: ``name`` and JSON ``arguments``.

    ``parsed_arguments`` (as openai-python's ``ParsedFunction``) is, when the
    request declared tools: the model instance for a tool given by
    ``pydantic_function_tool(Model)``, the decoded JSON for a plain tool
    declared ``"strict": true``, else ``None``. It is ``None`` too while the
    call is unfinished and when the arguments do not fit (openai-python raises
    there; reading ``tool_call.done``'s ``parsed_arguments`` raises here).
    Like ``parsed``, it is in :meth:`to_dict` and left out when the message is
    sent back.
    """

    name: Optional[str]
    arguments: str
    parsed_arguments: Any
    # ``dict`` keeps decoded JSON plain (a copy) instead of an APIObject view.
    _nested = {"parsed_arguments": dict}


class ToolCall(APIObject):
    """One tool call of an assistant message."""

    id: Optional[str]
    type: Optional[str]
    function: Function
    _nested = {"function": Function}


class ChatCompletionMessage(APIObject):
    """The assistant message of a choice.

    ``reasoning_content`` or ``reasoning`` holds the model's reasoning, under
    the field name the provider used. ``parsed`` is the content decoded as
    JSON when the request's ``response_format`` asked for JSON (a plain value,
    ``None`` when the content is not valid JSON), else ``None``.
    """

    role: str
    content: Optional[str]
    refusal: Optional[str]
    tool_calls: Optional[List[ToolCall]]
    reasoning_content: Optional[str]
    reasoning: Optional[str]
    annotations: Optional[List[APIObject]]
    function_call: Optional[Function]
    parsed: Any
    # ``dict`` keeps ``parsed`` plain JSON (a copy) instead of an APIObject view.
    _nested = {"tool_calls": ToolCall, "function_call": Function, "parsed": dict}


class ChoiceLogprobs(APIObject):
    """Token log probabilities of a choice's ``content`` and ``refusal``."""

    content: Optional[List[APIObject]]
    refusal: Optional[List[APIObject]]


class Choice(APIObject):
    """One choice of a completion: ``index``, ``message``, ``finish_reason``, ``logprobs``."""

    index: int
    message: ChatCompletionMessage
    finish_reason: Optional[str]
    logprobs: Optional[ChoiceLogprobs]
    _nested = {"message": ChatCompletionMessage, "logprobs": ChoiceLogprobs}


class Usage(APIObject):
    """Token counts: ``prompt_tokens``, ``completion_tokens``, ``total_tokens`` and details."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: Optional[APIObject]
    completion_tokens_details: Optional[APIObject]


class ChatCompletion(APIObject):
    """A whole chat completion, streamed or not, shaped like the API's non-streamed answer."""

    id: str
    object: str
    created: int
    model: str
    system_fingerprint: Optional[str]
    service_tier: Optional[str]
    choices: List[Choice]
    usage: Optional[Usage]
    _nested = {"choices": Choice, "usage": Usage}
