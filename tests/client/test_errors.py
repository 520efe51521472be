"""The error hierarchy and how HTTP answers and in-stream payloads map onto it."""

from __future__ import annotations

from typing import Any, Optional

import pytest

import openai_stream
from openai_stream import errors
from openai_stream.errors import error_for_status, error_from_payload


def test_hierarchy() -> None:
    e = openai_stream
    assert issubclass(e.APIError, e.OpenAIError)
    assert issubclass(e.APIStatusError, e.APIError)
    for cls in (
        e.BadRequestError,
        e.AuthenticationError,
        e.PermissionDeniedError,
        e.NotFoundError,
        e.ConflictError,
        e.UnprocessableEntityError,
        e.RateLimitError,
        e.InternalServerError,
    ):
        assert issubclass(cls, e.APIStatusError)
    assert issubclass(e.APIConnectionError, e.APIError)
    assert issubclass(e.APITimeoutError, e.APIConnectionError)
    assert issubclass(e.StreamInterruptedError, e.APIConnectionError)
    assert not issubclass(e.StreamInterruptedError, e.APITimeoutError)
    for other in (e.APIUserAbortError, e.EventTooLargeError, e.InvalidStreamDataError):
        assert issubclass(other, e.APIError)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, openai_stream.BadRequestError),
        (401, openai_stream.AuthenticationError),
        (403, openai_stream.PermissionDeniedError),
        (404, openai_stream.NotFoundError),
        (409, openai_stream.ConflictError),
        (422, openai_stream.UnprocessableEntityError),
        (429, openai_stream.RateLimitError),
        (500, openai_stream.InternalServerError),
        (502, openai_stream.InternalServerError),
        (503, openai_stream.InternalServerError),
        (529, openai_stream.InternalServerError),
        (418, openai_stream.APIStatusError),
        (408, openai_stream.APIStatusError),
    ],
)
def test_status_mapping(status: int, cls: type[Exception]) -> None:
    body = {"error": {"message": "boom", "type": "t", "code": "c", "param": "p"}}
    err = error_for_status(status, body, headers={"x-request-id": "req_1"}, request_id="req_1")
    assert type(err) is cls
    assert err.status_code == status
    assert err.request_id == "req_1"
    assert err.headers == {"x-request-id": "req_1"}
    assert err.headers.get("X-Request-ID") == "req_1"  # case-insensitive
    assert (err.message, err.code, err.type, err.param) == (str(err), "c", "t", "p")
    assert err.body == body["error"] and err.payload == body
    assert f"HTTP {status}: boom" in err.message and "req_1" in err.message


def test_message_says_what_to_do() -> None:
    assert "API key" in error_for_status(401, {"error": {"message": "bad key"}}).message
    assert "base_url" in error_for_status(404, {"error": {"message": "no model"}}).message
    assert "retry later" in error_for_status(503, "").message
    assert "quota" in error_for_status(429, {}).message


def test_body_shapes() -> None:
    assert "plain" in error_for_status(400, {"error": "plain"}).message
    assert "top level" in error_for_status(400, {"message": "top level"}).message
    assert "Not Found" in error_for_status(404, {"detail": "Not Found"}).message
    assert "field required" in error_for_status(422, {"detail": [{"msg": "field required"}]}).message
    assert "no error message" in error_for_status(500, {"error": {"code": 5}}).message
    assert "no error message" in error_for_status(500, ["odd"]).message
    assert "no error message" in error_for_status(500, "").message


def test_html_body_gives_its_text_not_its_markup() -> None:
    page = (
        "<!DOCTYPE html><html><head><title>502 Bad Gateway</title><style>body{color:red}</style>"
        "</head><body><center><h1>502 Bad Gateway</h1></center><hr><center>cloudflare &amp; co"
        "</center></body></html>"
    )
    err = error_for_status(502, page, request_id="req_9")
    assert isinstance(err, openai_stream.InternalServerError)
    assert "<" not in err.message and "color" not in err.message
    assert "502 Bad Gateway" in err.message and "cloudflare & co" in err.message
    assert err.body == page


def test_long_text_bodies_are_shortened() -> None:
    err = error_for_status(500, "x" * 100_000)
    assert len(err.message) < 400


def test_repr_is_the_type_and_message() -> None:
    err = error_for_status(404, {"error": {"message": "gone"}})
    assert repr(err) == f"NotFoundError({err.message!r})"


def test_completion_defaults_to_none() -> None:
    assert openai_stream.APIError("x").completion is None


# --- errors inside the stream -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "cls", "status"),
    [
        ({"error": {"message": "m", "code": 429}}, openai_stream.RateLimitError, 429),
        ({"error": {"message": "m", "code": "503"}}, openai_stream.InternalServerError, 503),
        ({"error": {"message": "m", "code": 400}}, openai_stream.BadRequestError, 400),
        ({"error": {"message": "m", "code": "rate_limit_exceeded"}}, openai_stream.RateLimitError, None),
        ({"error": {"message": "m", "code": "insufficient_quota"}}, openai_stream.RateLimitError, None),
        ({"error": {"message": "m", "type": "requests"}}, openai_stream.RateLimitError, None),
        ({"error": {"message": "m", "type": "tokens"}}, openai_stream.RateLimitError, None),
        ({"error": {"message": "m", "code": "invalid_api_key"}}, openai_stream.AuthenticationError, None),
        ({"error": {"message": "m", "type": "invalid_request_error"}}, openai_stream.BadRequestError, None),
        ({"error": {"message": "m", "type": "server_error"}}, openai_stream.InternalServerError, None),
        ({"error": {"message": "m", "type": "overloaded_error"}}, openai_stream.InternalServerError, None),
        ({"object": "error", "message": "m", "code": 400}, openai_stream.BadRequestError, 400),  # vLLM
        ({"error": {"message": "m", "status_code": 502}}, openai_stream.InternalServerError, 502),
    ],
)
def test_payload_mapping(payload: dict[str, Any], cls: type[Exception], status: Optional[int]) -> None:
    err = error_from_payload(payload, request_id="req_s")
    assert type(err) is cls
    assert isinstance(err, openai_stream.APIStatusError)
    assert err.status_code == status  # a status the payload names, else None
    assert err.body == payload.get("error", payload) and err.payload == payload
    assert "inside the stream: m" in err.message


@pytest.mark.parametrize(
    "payload",
    [{"error": {"message": "m", "code": "weird"}}, {"error": {"message": "m"}}, {"error": "m"}],
)
def test_unknown_payload_is_a_plain_api_error(payload: dict[str, Any]) -> None:
    err = error_from_payload(payload)
    assert type(err) is openai_stream.APIError
    inner = payload["error"] if isinstance(payload["error"], dict) else payload
    assert err.body == inner and err.payload == payload and "m" in err.message


def test_payload_numeric_code_wins_over_type() -> None:
    err = error_from_payload({"error": {"message": "m", "code": 401, "type": "server_error"}})
    assert type(err) is openai_stream.AuthenticationError


def test_boolean_code_is_not_a_status() -> None:
    assert errors._as_status(True) is None
    assert errors._as_status(99) is None
    assert errors._as_status("600") is None
    assert errors._as_status("404") == 404


# --- pickling and copying (process pools) ---------------------------------------------------


def _every_error() -> list[Exception]:
    data = {"id": "c", "choices": [{"index": 0, "message": {"content": "hi"}}]}
    completion = openai_stream.ChatCompletion(data)
    status = error_for_status(
        429, {"error": {"message": "slow", "code": "rate_limit_exceeded"}}, headers={"Retry-After": "2"},
        request_id="req_1", completion=completion, response=object(),
    )
    return [
        openai_stream.OpenAIError("plain"),
        openai_stream.APIError("api", body={"message": "m"}, code="c", completion=completion),
        status,
        error_from_payload({"error": {"message": "m", "code": 503}}, completion=completion),
        openai_stream.APIConnectionError("no route"),
        openai_stream.APITimeoutError("slow"),
        openai_stream.StreamInterruptedError("cut", completion=completion),
        openai_stream.APIUserAbortError("closed", completion=completion),
        openai_stream.EventTooLargeError("big"),
        openai_stream.InvalidStreamDataError("bad", body="data: x"),
        openai_stream.ToolArgumentsError("args", name="f", call_id="c1", arguments="{"),
        openai_stream.StructuredOutputError("json", content="{"),
        openai_stream.ToolDefinitionError("def"),
        openai_stream.UnknownToolError("tool", name="nope"),
        openai_stream.MaxRoundsExceededError(
            "rounds", messages=[{"role": "user"}], completion=completion, max_rounds=3
        ),
        errors.LocalServerError("local"),
        errors.LocalExtraMissingError("extra"),
    ]


@pytest.mark.parametrize("error", _every_error(), ids=lambda e: type(e).__name__)
def test_every_error_pickles_and_copies_with_class_message_and_fields(error: Exception) -> None:
    import copy
    import pickle

    for clone in (pickle.loads(pickle.dumps(error)), copy.copy(error), copy.deepcopy(error)):
        assert type(clone) is type(error)
        assert str(clone) == str(error) and clone.args == error.args
        for name in ("message", "status_code", "request_id", "code", "body", "payload", "name", "arguments"):
            assert getattr(clone, name, None) == getattr(error, name, None), name
        if getattr(error, "completion", None) is not None:
            assert clone.completion == error.completion  # type: ignore[attr-defined]
        if isinstance(error, openai_stream.APIStatusError):
            assert dict(clone.headers) == dict(error.headers)  # type: ignore[attr-defined]
            assert clone.headers.get("retry-after") == error.headers.get("Retry-After")  # type: ignore[attr-defined]


def test_a_pickled_error_leaves_its_live_response_behind() -> None:
    import copy
    import pickle

    error = error_for_status(500, "oops", response=object())
    assert pickle.loads(pickle.dumps(error)).response is None
    assert copy.copy(error).response is error.response


# --- client settings as properties ------------------------------------------------------------


def test_client_settings_take_effect_when_assigned_after_construction() -> None:
    from openai_stream.testing import ReplayServer, ScriptedResponse

    answer = {"error": {"message": "busy"}}
    with ReplayServer([ScriptedResponse.json(answer, status=503)] * 4) as server:
        client = openai_stream.Client(api_key="k", base_url=server.base_url, max_retries=3)
        client.max_retries = 0  # no retry now: one request, not four
        client.timeout = openai_stream.Timeout(connect=2, read=3)
        assert client.timeout == openai_stream.Timeout(connect=2, read=3)
        with pytest.raises(openai_stream.InternalServerError):
            client.chat.completions.create(model="m", messages=[])
        assert len(server.requests) == 1
        assert client.with_options().max_retries == 0  # a derived client starts from the new value
        client.close()


@pytest.mark.parametrize(
    ("name", "value"),
    [("timeout", 0), ("timeout", -1), ("timeout", float("nan")), ("max_retries", -1), ("max_retries", 1.5),
     ("idle_timeout", 0), ("max_event_bytes", 0)],
)
def test_client_settings_are_checked_when_assigned(name: str, value: Any) -> None:
    client = openai_stream.Client(api_key="k", base_url="http://127.0.0.1:9/v1")
    before = getattr(client, name)
    with pytest.raises(ValueError):
        setattr(client, name, value)
    assert getattr(client, name) == before
    with pytest.raises(ValueError):
        openai_stream.Client(api_key="k", base_url="http://127.0.0.1:9/v1", **{name: value})


def test_base_url_and_max_connections_are_read_only() -> None:
    client = openai_stream.Client(api_key="k", base_url="http://127.0.0.1:9/v1")
    for name in ("base_url", "max_connections"):
        with pytest.raises(AttributeError):
            setattr(client, name, "x")
