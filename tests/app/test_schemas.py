"""The chat request check: its fast path accepts only what ``ChatCompletionRequest`` accepts, reads the same
values from it, and leaves every other body (errors and coercions) to pydantic."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import ApiError
from app.schemas import ChatCompletionRequest, ValidationError, _plainly_valid, chat_request, first_error

# Values of every JSON type, with the edges of the fields' ranges.
_EDGES = [-2, -1, 0, 1, 2, 128, 129, -2.5, -2.0, 0.5, 1.0, 1.5, 2.0, 2.01, 7, 1e300]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(_EDGES),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "x", "true", "1", "0.5", "user", "robot", "gpt-4o-mini", "a@b.example"]),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "text", "type"]), inner)
    ),
    max_leaves=6,
)
GOOD_ROLES = st.sampled_from(["system", "developer", "user", "assistant", "tool", "function"])
ROLES = st.sampled_from(["system", "developer", "user", "assistant", "tool", "function", "robot", "User"])


def _maybe(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts with any subset of ``fields``."""
    return st.fixed_dictionaries({}, optional=fields)


NUMBER = st.one_of(st.sampled_from(_EDGES), st.integers(-3, 200), st.floats(-3, 3))
TEXT = st.text(max_size=4)
PARTS = st.lists(st.dictionaries(st.sampled_from(["type", "text"]), TEXT), max_size=2)
TOOL_CALLS = st.lists(st.dictionaries(TEXT, JSON), max_size=2)
# Plausible messages and bodies: each field of its type, numbers around their bounds.
MESSAGE = st.fixed_dictionaries(
    {"role": GOOD_ROLES},
    optional={
        "content": st.one_of(TEXT, PARTS, st.none()),
        "name": TEXT,
        "tool_calls": TOOL_CALLS,
        "tool_call_id": TEXT,
        "extra": JSON,
    },
)
GOOD_MODELS = st.sampled_from(["gpt-4o-mini", "x", "meta-llama/Llama-3.1-8B"])
BAD_MODELS = st.sampled_from(["", "gpt 4o", "a@b.example", "gpt-4155550172"])


def _near(low: float, high: float, integer: bool = False) -> st.SearchStrategy[Any]:
    """Mostly values within [low, high], its bounds and the values just outside them, else any number."""
    inside = (
        st.integers(int(low), int(high))
        if integer
        else st.floats(low, high) | st.integers(int(low), int(high))
    )
    step = 1 if integer else 0.001
    return st.one_of(inside, st.sampled_from([low, high, low - step, high + step]), inside, NUMBER)


PLAUSIBLE = st.fixed_dictionaries(
    {"model": GOOD_MODELS, "messages": st.lists(MESSAGE, min_size=1, max_size=3)},
    optional={
        "stream": st.booleans(),
        "stream_options": _maybe({"include_usage": st.booleans(), "o": JSON}),
        "temperature": _near(0, 2),
        "top_p": _near(0, 1),
        "max_tokens": _near(1, 10_000, integer=True),
        "max_completion_tokens": _near(1, 10_000, integer=True),
        "n": _near(1, 128, integer=True),
        "seed": _near(-(2**63), 2**63, integer=True),
        "stop": st.one_of(TEXT, st.lists(TEXT, max_size=2)),
        "user": st.one_of(TEXT, st.none()),
        "frequency_penalty": _near(-2, 2),
        "presence_penalty": _near(-2, 2),
        "response_format": JSON,
    },
)
FIELDS = [
    "model", "messages", "stream", "stream_options", "temperature", "top_p", "max_tokens",
    "max_completion_tokens", "n", "seed", "stop", "user", "frequency_penalty", "presence_penalty",
]  # fmt: skip
MESSAGE_FIELDS = ["role", "content", "name", "tool_calls", "tool_call_id"]


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A plausible body with up to two fields, and perhaps one message field, replaced by any value."""
    body: dict[str, Any] = draw(PLAUSIBLE)
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
        body[draw(st.permutations(FIELDS))[0]] = draw(st.one_of(JSON, BAD_MODELS, ROLES))
    messages = body.get("messages")
    if type(messages) is list and messages and draw(st.integers(0, 3)) == 0:
        i = draw(st.integers(0, len(messages) - 1))
        if type(messages[i]) is dict:
            field = draw(st.permutations(MESSAGE_FIELDS))[0]
            messages[i] = {**messages[i], field: draw(st.one_of(JSON, ROLES))}
        else:
            messages[i] = draw(JSON)
    return body


BODY = bodies()


def pydantic_view(body: dict[str, Any]) -> tuple[bool, bool, str | None]:
    parsed = ChatCompletionRequest.model_validate(body)
    options = parsed.stream_options
    return parsed.stream, bool(options and options.include_usage), parsed.user


@settings(max_examples=1000, deadline=None)
@given(body=BODY)
def test_the_fast_path_accepts_only_what_pydantic_accepts_with_the_same_values(body: dict[str, Any]) -> None:
    view = _plainly_valid(body)
    if view is None:
        return
    assert pydantic_view(body) == (view.stream, view.include_usage, view.user)


@settings(max_examples=400, deadline=None)
@given(body=BODY)
def test_chat_request_is_pydantics_verdict(body: dict[str, Any]) -> None:
    try:
        expected: tuple[bool, bool, str | None] | tuple[str, str] = pydantic_view(body)
    except ValidationError as exc:
        expected = first_error(exc)
    try:
        view = chat_request(body)
        got: tuple[bool, bool, str | None] | tuple[str, str] = (view.stream, view.include_usage, view.user)
    except ApiError as err:
        assert err.status == 400 and err.param is not None
        got = (err.param, err.message)
    assert got == expected


USUAL: list[dict[str, Any]] = [
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.2,
        "top_p": 1,
        "max_tokens": 32,
        "n": 1,
        "seed": 7,
        "stop": ["\n"],
        "user": "u-1",
        "presence_penalty": -0.5,
        "response_format": {"type": "json_object"},
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
    },
]


@pytest.mark.parametrize("body", USUAL)
def test_the_usual_requests_take_the_fast_path(body: dict[str, Any]) -> None:
    view = _plainly_valid(body)
    assert view is not None
    assert (view.stream, view.include_usage, view.user) == pydantic_view(body)


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"stream": "true"}, None),  # coerced by pydantic: accepted, but not by the fast path
        ({"temperature": 7}, "temperature"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"model": "john.doe@example.com"}, "model"),
        ({"n": 2.0}, None),
    ],
)
def test_anything_else_is_left_to_pydantic(change: dict[str, Any], param: str | None) -> None:
    body = {**USUAL[0], **change}
    assert _plainly_valid(body) is None
    if param is None:
        assert chat_request(body) is not None
    else:
        with pytest.raises(ApiError) as info:
            chat_request(body)
        assert info.value.param == param


EDGE_VALUES: list[Any] = [
    None,
    True,
    False,
    "1",
    [],
    {},
    0,
    1,
    2,
    127,
    128,
    129,
    -1,
    -2,
    -3,
    0.0,
    1.0,
    2.0,
    0.5,
]
EDGE_VALUES += [-2.001, -1.999, -0.001, 0.999, 1.001, 1.999, 2.001, 10_000, 2**63, -(2**63)]


@pytest.mark.parametrize(
    "field",
    [
        "stream", "temperature", "top_p", "max_tokens", "max_completion_tokens", "n", "seed",
        "frequency_penalty", "presence_penalty", "user", "stop",
    ],
)  # fmt: skip
def test_every_field_at_its_edges_gets_pydantics_verdict(field: str) -> None:
    for value in EDGE_VALUES:
        body = {**USUAL[0], field: value}
        view = _plainly_valid(body)
        if view is not None:
            assert pydantic_view(body) == (view.stream, view.include_usage, view.user), (field, value)
    for value in PLAIN_VALID[field]:  # and its plain valid values do take the fast path
        assert _plainly_valid({**USUAL[0], field: value}) is not None, (field, value)


PLAIN_VALID: dict[str, list[Any]] = {
    "stream": [True, False],
    "temperature": [None, 0, 2, 0.0, 2.0, 1.999],
    "top_p": [None, 0, 1, 0.999],
    "max_tokens": [None, 1, 10_000],
    "max_completion_tokens": [None, 1, 10_000],
    "n": [None, 1, 128],
    "seed": [None, 0, -1, 2**63, -(2**63)],
    "frequency_penalty": [None, -2, 2, -1.999],
    "presence_penalty": [None, -2, 2, 1.999],
    "user": [None, "", "u-1"],
    "stop": [None, "x", [], ["a", "b"]],
}
