"""Tests for llm-otel-pipeline."""
