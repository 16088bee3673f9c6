"""Request bodies, validated so that a 400 can name the bad field; unknown fields pass through."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from app.errors import ApiError
from app.identifiers import model_name_problem

__all__ = ["ChatCompletionRequest", "FeedbackRequest", "ValidationError", "first_error", "validated"]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
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
