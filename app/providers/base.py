"""The provider contract shared by the simulated and openai-compatible providers."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(slots=True)  # not frozen: built per request, and a frozen __init__ costs 2-3x
class ChatCall:
    """One model call: the client's validated request body, with the model resolved by routing."""

    body: dict[str, Any]
    upstream_model: str
    stream: bool
    fault: str | None = None  # X-Simulated-Fault header value; only the simulated provider reads it
    on_retry: Callable[[str], None] = field(default=lambda reason: None)


# (chunk, its JSON text as received or None); a batch is never empty.
StreamBatch = list[tuple[dict[str, Any], bytes | None]]


class LastBatch(StreamBatch):
    """A stream's last batch, when the provider knows it is (``[DONE]`` came in the same read): the gateway
    then sends its events and the end of the response in one write."""


class ProviderError(Exception):
    """The upstream (or simulated upstream) failed; mapped to an OpenAI-style error response."""

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        code: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type  # the low-cardinality error.type attribute value
        self.message = message
        self.code = code
        self.retry_after_s = retry_after_s


class UpstreamTimeout(ProviderError):
    def __init__(self, message: str = "the upstream model did not answer in time") -> None:
        super().__init__(504, "timeout", message, code="timeout")


class StreamBroken(ProviderError):
    """The upstream connection broke after the response had started."""

    def __init__(self, message: str = "the upstream connection broke mid-response") -> None:
        super().__init__(502, "upstream_disconnect", message, code="upstream_disconnect")


class SimulatedDisconnect(StreamBroken):
    """Injected by the simulated provider: the gateway drops the client connection, like a dying upstream."""

    def __init__(self) -> None:
        ProviderError.__init__(
            self,
            502,
            "simulated_disconnect",
            "simulated mid-stream disconnect (injected fault)",
            code="upstream_disconnect",
        )


class Provider(Protocol):
    id: str
    simulated: bool
    server_address: str | None
    server_port: int | None

    def provider_name_for(self, model: str) -> str: ...

    async def complete(self, call: ChatCall) -> dict[str, Any]: ...

    async def complete_raw(self, call: ChatCall) -> tuple[dict[str, Any], bytes | None]:
        """The completion and, when it came over the wire, its body as received (relayed unchanged)."""
        ...

    def stream(self, call: ChatCall) -> AsyncGenerator[dict[str, Any], None]: ...

    def stream_batches(self, call: ChatCall) -> AsyncGenerator[StreamBatch, None]:
        """The stream as the chunks that arrived together, each with its raw JSON when it came over the
        wire: relayed in one write per batch, raw bytes passed through when unchanged."""
        ...

    async def ready(self) -> tuple[bool, str]: ...

    async def aclose(self) -> None: ...
