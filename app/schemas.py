"""Request bodies, validated so that a 400 can name the bad field; unknown fields pass through."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from app.errors import ApiError
from app.identifiers import model_name_problem

__all__ = [
    "ChatCompletionRequest",
    "ChatRequestView",
    "FeedbackRequest",
    "ValidationError",
    "chat_request",
    "first_error",
    "validated",
]

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Role
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int | None = Field(default=None, ge=1, le=128)
    seed: int | None = None
    stop: str | list[str] | None = None
    user: str | None = None
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)

    @field_validator("model")
    @classmethod
    def _model_shaped(cls, value: str) -> str:
        # The model name becomes span/log attributes and metric labels: refuse what is not a model id
        # (e-mails, phone numbers, spaces, control characters, keys...) instead of emitting it.
        problem = model_name_problem(value)
        if problem is not None:
            raise PydanticCustomError("model_name", problem)
        return value

    @model_validator(mode="after")
    def _stream_options_need_stream(self) -> ChatCompletionRequest:
        # As OpenAI: stream_options without stream=true is a client error.
        if self.stream_options is not None and not self.stream:
            raise PydanticCustomError("stream_options", "stream_options is only allowed when stream is true")
        return self


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    response_id: str = Field(min_length=1, max_length=200)
    score: float = Field(ge=0, le=1)
    comment: str | None = Field(default=None, max_length=2000)


def first_error(exc: ValidationError) -> tuple[str, str]:
    """(field path like ``messages.0.role``, message) of the first validation error."""
    err = exc.errors()[0]
    path = ".".join(str(p) for p in err.get("loc", ()))
    if not path:  # model-level validators name the field in the error type
        path = err["type"] if err["type"] in ChatCompletionRequest.model_fields else "<body>"
    return path, f"{path}: {err.get('msg', 'invalid value')}"


_Model = TypeVar("_Model", bound=BaseModel)


def validated(model: type[_Model], body: dict[str, Any]) -> _Model:
    """The body as ``model``, or the OpenAI-style 400 naming the first invalid field."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        param, message = first_error(exc)
        raise ApiError(
            400, message, param=param, code="invalid_value", error_type="invalid_request"
        ) from None


@dataclass(slots=True)
class ChatRequestView:
    """What the chat endpoint reads of a valid request (the body itself is forwarded)."""

    stream: bool
    include_usage: bool
    user: str | None


_ROLES = frozenset(get_args(Role))
_OPTIONAL_FLOATS = (  # ChatCompletionRequest's optional float fields and their bounds (ge, le)
    ("temperature", 0, 2),
    ("top_p", 0, 1),
    ("frequency_penalty", -2, 2),
    ("presence_penalty", -2, 2),
)
_OPTIONAL_INTS = (
    ("max_tokens", 1, None),
    ("max_completion_tokens", 1, None),
    ("n", 1, 128),
    ("seed", None, None),
)


def chat_request(body: dict[str, Any]) -> ChatRequestView:
    """``ChatCompletionRequest``'s verdict on ``body``: its view, or the 400 naming the first invalid field.

    The usual request, each field of its exact JSON type and in range, is checked here (several times
    cheaper than pydantic); anything else (an error, or a value pydantic accepts by coercion, such as
    ``"true"`` for ``true``) goes to pydantic, so messages and coercions are pydantic's. tests/app/
    test_schemas.py checks that this never accepts what pydantic refuses.
    """
    view = _plainly_valid(body)
    if view is not None:
        return view
    parsed = validated(ChatCompletionRequest, body)
    options = parsed.stream_options
    return ChatRequestView(parsed.stream, bool(options and options.include_usage), parsed.user)


def _is_str_or_none(value: Any) -> bool:
    return value is None or type(value) is str


def _is_dict_list(value: Any) -> bool:
    return type(value) is list and all(type(item) is dict for item in value)


def _plainly_valid(body: dict[str, Any]) -> ChatRequestView | None:
    model = body.get("model")
    if type(model) is not str or not model or model_name_problem(model) is not None:
        return None
    messages = body.get("messages")
    if type(messages) is not list or not messages:
        return None
    for message in messages:
        if type(message) is not dict:
            return None
        role = message.get("role")
        if type(role) is not str or role not in _ROLES:
            return None
        content = message.get("content")
        if not (_is_str_or_none(content) or _is_dict_list(content)):
            return None
        if not (_is_str_or_none(message.get("name")) and _is_str_or_none(message.get("tool_call_id"))):
            return None
        tool_calls = message.get("tool_calls")
        if tool_calls is not None and not _is_dict_list(tool_calls):
            return None
    stream = body.get("stream", False)
    if type(stream) is not bool:
        return None
    include_usage = False
    options = body.get("stream_options")
    if options is not None:
        if type(options) is not dict or not stream:
            return None
        include_usage = options.get("include_usage", False)
        if type(include_usage) is not bool:
            return None
    for name, low, high in _OPTIONAL_FLOATS:
        number = body.get(name)
        if number is not None and (type(number) not in (int, float) or not low <= number <= high):
            return None
    for name, least, most in _OPTIONAL_INTS:
        integer = body.get(name)
        if integer is not None and (
            type(integer) is not int
            or (least is not None and integer < least)
            or (most is not None and integer > most)
        ):
            return None
    stop = body.get("stop")
    if not (_is_str_or_none(stop) or (type(stop) is list and all(type(s) is str for s in stop))):
        return None
    user = body.get("user")
    if not _is_str_or_none(user):
        return None
    return ChatRequestView(stream, include_usage, user)
