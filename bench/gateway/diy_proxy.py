"""The do-it-yourself peer: FastAPI + the official ``openai`` client + the official OpenTelemetry
instrumentations (opentelemetry-instrumentation-openai-v2, -fastapi), as a tutorial would write it.

Runs in its own venv (bench/gateway/peers.py): ``python diy_proxy.py PORT UPSTREAM_BASE_URL``.
``OTEL_SDK_DISABLED=true`` runs it without instrumentation; otherwise it exports traces, metrics and logs
over OTLP/gRPC to ``OTEL_EXPORTER_OTLP_ENDPOINT``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from openai import AsyncOpenAI

PORT, UPSTREAM = int(sys.argv[1]), sys.argv[2]
ENABLED = os.environ.get("OTEL_SDK_DISABLED", "false").lower() != "true"

if ENABLED:
    from opentelemetry import _logs, metrics, trace
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(
        MeterProvider(metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())])
    )
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
    _logs.set_logger_provider(logger_provider)
    OpenAIInstrumentor().instrument()

client = AsyncOpenAI(base_url=UPSTREAM, api_key="sk-mock", max_retries=2)
app = FastAPI()


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/v1/chat/completions")
async def chat(request: Request) -> Response:
    body: dict[str, Any] = await request.json()
    if body.get("stream"):
        upstream = await client.chat.completions.create(**body)

        async def relay() -> Any:
            async for chunk in upstream:
                yield b"data: " + chunk.model_dump_json(exclude_unset=True).encode() + b"\n\n"
            yield b"data: [DONE]\n\n"

        return StreamingResponse(relay(), media_type="text/event-stream")
    result = await client.chat.completions.create(**body)
    return JSONResponse(json.loads(result.model_dump_json(exclude_unset=True)))


if ENABLED:
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning", access_log=False)
