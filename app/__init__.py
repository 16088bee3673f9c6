"""llm-otel-pipeline gateway: an OpenAI-compatible LLM proxy that emits only OTLP (GenAI semconv v1.41)."""

__version__ = "0.1.0"
