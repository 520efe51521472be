"""The ``Response`` object of the Responses API: attribute access over the JSON, nothing dropped.

``response.output[0].content[0].text`` reads the same names as the API's JSON,
streamed or not; :meth:`~openai_stream.APIObject.to_dict` gives the JSON back
in the shape of the non-streamed answer. :attr:`Response.output_text` joins
the text of every ``output_text`` part, as openai-python's property does.
"""

from __future__ import annotations

from typing import Any, List, Optional

from ..chat._completion import APIObject

__all__ = [
    "Response",
    "ResponseOutputItem",
    "ResponseContent",
    "ResponseUsage",
]


class ResponseContent(APIObject):
    """One part of an output item: ``output_text``, ``refusal``, ``reasoning_text`` or ``summary_text``."""

    type: str
    text: Optional[str]
    refusal: Optional[str]
    annotations: Optional[List[APIObject]]
    logprobs: Optional[List[APIObject]]


class ResponseOutputItem(APIObject):
    """One item of ``output``: a ``message``, ``reasoning``, ``function_call``, a hosted tool call, ...

    The fields of every item type are attributes; those an item does not have read as ``None``.
    A ``function_call`` item has ``parsed_arguments`` as openai-python's
    ``ParsedResponseFunctionToolCall``: the model instance for a tool given by
    ``pydantic_function_tool(Model)``, the decoded JSON for a plain tool
    declared ``"strict": true``, else ``None`` (``None`` too when the arguments
    do not fit: ``tool_call.done``'s ``parsed_arguments`` raises that). Like
    ``parsed``, it is in ``to_dict()`` and left out when the item is sent back.
    """

    id: Optional[str]
    type: str
    status: Optional[str]
    role: Optional[str]
    content: Optional[List[ResponseContent]]
    summary: Optional[List[ResponseContent]]
    encrypted_content: Optional[str]
    call_id: Optional[str]
    name: Optional[str]
    arguments: Optional[str]
    input: Optional[str]
    parsed_arguments: Any
    # ``dict`` keeps decoded JSON plain (a copy) instead of an APIObject view.
    _nested = {"content": ResponseContent, "summary": ResponseContent, "parsed_arguments": dict}


class ResponseUsage(APIObject):
    """Token counts: ``input_tokens``, ``output_tokens``, ``total_tokens`` and their details.

    ``prompt_tokens`` and ``completion_tokens`` read the same counts under
    their chat names, so code written for chat usage works unchanged.
    """

    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_tokens_details: Optional[APIObject]
    output_tokens_details: Optional[APIObject]

    @property
    def prompt_tokens(self) -> Optional[int]:
        """``input_tokens``, under its chat name."""
        value: Optional[int] = self._data.get("input_tokens")
        return value

    @property
    def completion_tokens(self) -> Optional[int]:
        """``output_tokens``, under its chat name."""
        value: Optional[int] = self._data.get("output_tokens")
        return value


class Response(APIObject):
    """A whole response, streamed or not, shaped like the API's non-streamed answer.

    ``status`` is ``completed``, ``incomplete`` (see ``incomplete_details``),
    ``failed`` (see ``error``) or, for a stream cut short, what the server last
    said (usually ``in_progress``). ``parsed`` is the output text decoded as
    JSON when the request's ``text.format`` asked for JSON (``None`` when it is
    not valid JSON), else ``None``.
    """

    id: str
    object: str
    created_at: Optional[float]
    status: Optional[str]
    model: Optional[str]
    output: List[ResponseOutputItem]
    usage: Optional[ResponseUsage]
    error: Optional[APIObject]
    incomplete_details: Optional[APIObject]
    instructions: Any
    previous_response_id: Optional[str]
    parsed: Any
    # ``dict`` keeps ``parsed`` plain JSON (a copy) instead of an APIObject view.
    _nested = {"output": ResponseOutputItem, "usage": ResponseUsage, "parsed": dict}

    @property
    def output_text(self) -> str:
        """The text of every ``output_text`` part of every message, joined in order."""
        return output_text(self._data.get("output"))


def output_text(output: Any) -> str:
    """The ``output_text`` parts of the message items of an ``output`` list, joined."""
    texts: List[str] = []
    for item in output or ():
        if not isinstance(item, dict) or item.get("type") != "message":
            continue
        for part in item.get("content") or ():
            if isinstance(part, dict) and part.get("type") == "output_text":
                text = part.get("text")
                if isinstance(text, str):
                    texts.append(text)
    return "".join(texts)
