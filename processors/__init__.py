"""The llm-otel-pipeline sidecar: OTLP/gRPC in, token cost enrichment + PII redaction, fail-closed forward."""
