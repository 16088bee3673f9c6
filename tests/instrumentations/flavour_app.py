"""Runs INSIDE a flavour's own venv (tests/instrumentations/flavours.py): the real `openai` client,
instrumented by one real GenAI instrumentation package, makes one non-streamed and one streamed chat
completion against the mock upstream and exports its spans over OTLP to the pipeline. Only stdlib, openai
and the flavour's packages are importable here.

    python flavour_app.py FLAVOUR BASE_URL OTLP_GRPC_ENDPOINT OTLP_HTTP_ENDPOINT SERVICE_NAME PROMPT
"""

# mypy: ignore-errors
# (runs in a flavour's venv, with its own openai version: not type-checked against ours)
from __future__ import annotations

import os
import sys


def _sdk(service: str, otlp_grpc: str) -> object:
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_grpc, insecure=True)))
    trace.set_tracer_provider(provider)
    return provider


def main() -> int:
    flavour, base_url, otlp_grpc, otlp_http, service, prompt = sys.argv[1:7]
    provider = None
    if flavour == "otel":
        os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "true"
        provider = _sdk(service, otlp_grpc)
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        OpenAIInstrumentor().instrument()
    elif flavour == "openllmetry":
        os.environ["TRACELOOP_TRACE_CONTENT"] = "true"
        provider = _sdk(service, otlp_grpc)
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OpenLLMetryInstrumentor

        OpenLLMetryInstrumentor().instrument()
    elif flavour == "openinference":
        provider = _sdk(service, otlp_grpc)
        from openinference.instrumentation.openai import OpenAIInstrumentor as OpenInferenceInstrumentor

        OpenInferenceInstrumentor().instrument()
    elif flavour == "openlit":
        import openlit

        openlit.init(
            otlp_endpoint=otlp_http,
            application_name=service,
            service_name=service,
            disable_metrics=True,
            capture_message_content=True,
        )
    elif flavour == "litellm":
        os.environ.update(OTEL_EXPORTER="otlp_grpc", OTEL_ENDPOINT=otlp_grpc, OTEL_SERVICE_NAME=service)
        return _litellm(base_url, prompt)
    else:
        raise SystemExit(f"unknown flavour {flavour!r}")

    import openai

    client = openai.OpenAI(base_url=base_url, api_key="sk-mock-key-not-secret")
    messages = [{"role": "user", "content": prompt}]
    client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
    )
    for _chunk in stream:
        pass
    _flush(provider)
    return 0


def _litellm(base_url: str, prompt: str) -> int:
    import litellm

    litellm.callbacks = ["otel"]
    messages = [{"role": "user", "content": prompt}]
    common = {"model": "openai/gpt-4o-mini", "api_base": base_url, "api_key": "sk-mock-key-not-secret"}
    litellm.completion(messages=messages, **common)
    for _chunk in litellm.completion(
        messages=messages, stream=True, stream_options={"include_usage": True}, **common
    ):
        pass
    import time

    time.sleep(1.0)  # litellm logs success in a background thread
    from opentelemetry import trace

    _flush(trace.get_tracer_provider())
    return 0


def _flush(provider: object) -> None:
    if provider is None:
        from opentelemetry import trace

        provider = trace.get_tracer_provider()
    for method in ("force_flush", "shutdown"):
        fn = getattr(provider, method, None)
        if fn is not None:
            fn()


if __name__ == "__main__":
    sys.exit(main())
