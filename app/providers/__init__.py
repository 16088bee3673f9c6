"""Model providers: each turns a chat request into OpenAI wire-format dicts (completion or chunks)."""

from app.providers.base import (
    ChatCall,
    Provider,
    ProviderError,
    SimulatedDisconnect,
    StreamBroken,
    UpstreamTimeout,
)

__all__ = ["ChatCall", "Provider", "ProviderError", "SimulatedDisconnect", "StreamBroken", "UpstreamTimeout"]
