"""OpenTelemetry wiring: SDK setup from OTEL_* env, GenAI semconv helpers, and the gateway's instruments."""
