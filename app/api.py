"""The FastAPI application: OpenAI-compatible routes, auth, errors, and instrumentation wiring."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from opentelemetry.trace import Link, SpanKind
from starlette.routing import Route

from app import __version__
from app.asgi import ASGIApp, RouteFirst
from app.chat import ChatService
from app.chat_endpoint import CHAT_PATH, UNAUTHENTICATED, ChatEndpoint, internal_error, invalid_api_key
from app.config import GatewayConfig
from app.errors import ApiError
from app.identifiers import request_id_for
from app.providers.base import Provider
from app.providers.openai_compatible import OpenAICompatibleProvider
from app.providers.simulated import SimulatedProvider
from app.request_body import json_object, read_body
from app.request_log import ATTRS_KEY, close_logger, gateway_logger
from app.routing import Router
from app.schemas import FeedbackRequest, validated
from app.telemetry import genai as g
from app.telemetry.http_client import HttpClientTelemetry
from app.telemetry.http_server import ServerTelemetry
from app.telemetry.metrics import GatewayMetrics
from app.telemetry.setup import Telemetry, setup_telemetry
from app.tenants import Authenticator


def build_providers(config: GatewayConfig, telemetry: Telemetry) -> dict[str, Provider]:
    http = (
        HttpClientTelemetry(telemetry.tracer_provider, telemetry.meter_provider)
        if telemetry.enabled
        else None
    )
    providers: dict[str, Provider] = {}
    for pid, pconf in config.providers.items():
        if pconf.type == "simulated":
            providers[pid] = SimulatedProvider(pconf)
        else:
            providers[pid] = OpenAICompatibleProvider(pconf, http_telemetry=http)
    return providers


def create_app(
    config: GatewayConfig, telemetry: Telemetry | None = None, *, log_to_stderr: bool = True
) -> ASGIApp:
    """The gateway as one ASGI app: chat completions on the pure ASGI endpoint, every other route on
    FastAPI, both inside the HTTP server telemetry when telemetry is on."""
    telemetry = telemetry or setup_telemetry()
    metrics = GatewayMetrics(telemetry.meter_provider, telemetry.latest_experimental)
    logger = gateway_logger(telemetry.logger_provider, telemetry.enabled, stderr=log_to_stderr)
    providers = build_providers(config, telemetry)
    router = Router(config, providers)
    auth = Authenticator(config)
    chat = ChatService(router, telemetry, metrics, logger)
    endpoint = ChatEndpoint(
        chat,
        auth,
        metrics,
        max_request_bytes=config.max_request_bytes,
        user_hash_salt=config.user_hash_salt,
    )
    tracer = chat.tracer
    if auth.open:
        logger.warning("no API keys configured: the gateway is open; every request is tenant 'default'")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            for provider in providers.values():
                await provider.aclose()
            telemetry.force_flush()
            close_logger(logger)

    app = FastAPI(
        title="llm-otel-pipeline gateway",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # FastAPI's own (native) OpenTelemetry support stays off: the server spans and HTTP metrics come
        # from opentelemetry-instrumentation-fastapi, which already makes it stand down, but only after a
        # per-request check of the providers and the middleware stack.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.telemetry = telemetry
    app.state.chat = chat

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        # Errors raised before a GenAI span exists (auth, validation) are counted here.
        if not exc.already_counted:
            metrics.errors.add(
                1,
                {
                    g.ERROR_TYPE: exc.error_type,
                    "http.response.status_code": exc.status,
                    g.TENANT: getattr(request.state, "tenant", UNAUTHENTICATED),
                },
            )
        return exc.response({"x-request-id": getattr(request.state, "request_id", "")})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Still OpenAI-shaped for clients; Starlette logs the traceback.
        metrics.errors.add(1, {g.ERROR_TYPE: type(exc).__qualname__, "http.response.status_code": 500})
        return internal_error().response({"x-request-id": getattr(request.state, "request_id", "")})

    def authenticate(request: Request) -> str:
        # The request id goes onto spans, logs and the stderr log (app/identifiers.py).
        request.state.request_id = request_id_for(request.headers.get("x-request-id"))
        tenant = auth.tenant_for(request.headers.get("authorization"))
        if tenant is None:
            raise invalid_api_key()
        request.state.tenant = tenant
        return tenant

    # The chat route is a pure ASGI app; mounted here too, for requests that reach it through FastAPI
    # (RouteFirst sends `POST /v1/chat/completions` to it directly).
    app.router.routes.append(Route(CHAT_PATH, endpoint, methods=["POST"]))

    @app.get("/v1/models")
    async def list_models(request: Request) -> JSONResponse:
        authenticate(request)
        created = int(time.time())
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": model, "object": "model", "created": created, "owned_by": owner}
                    for model, owner in router.listed_models()
                ],
            }
        )

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        checks = {}
        ok = True
        for pid, provider in providers.items():
            ready, detail = await provider.ready()
            checks[pid] = {"ready": ready, "detail": detail, "simulated": provider.simulated}
            ok = ok and ready
        return JSONResponse(
            {"status": "ready" if ok else "not_ready", "providers": checks}, status_code=200 if ok else 503
        )

    @app.post("/v1/feedback")
    async def feedback(request: Request) -> JSONResponse:
        tenant = authenticate(request)
        raw = await read_body(request.receive, request.headers.get("content-length"), 100_000)
        fb = validated(FeedbackRequest, json_object(raw))
        recorded = chat.responses.get(fb.response_id)
        if recorded is None or recorded.tenant != tenant:
            raise ApiError(
                404,
                f"No recent response with id {fb.response_id!r}.",
                param="response_id",
                code="response_not_found",
                error_type="response_not_found",
            )
        attrs = {
            g.PROVIDER_NAME: recorded.provider_name,
            g.RESPONSE_MODEL: chat.model_guard(recorded.model),
            g.TENANT: tenant,
        }
        # The feedback span links to the model call it rates, so a low score leads to the trace.
        with tracer.start_as_current_span(
            "feedback",
            kind=SpanKind.INTERNAL,
            links=[Link(recorded.span_context)],
            attributes={
                "gen_ai.evaluation.name": "user_feedback",
                "gen_ai.evaluation.score.value": fb.score,
                g.RESPONSE_ID: fb.response_id,
                **attrs,
            },
        ):
            metrics.feedback.record(fb.score, attrs)
            log_attrs: dict[str, Any] = {
                "event.name": "gen_ai.evaluation.result",
                "gen_ai.evaluation.name": "user_feedback",
                "gen_ai.evaluation.score.value": fb.score,
                g.RESPONSE_ID: fb.response_id,
                g.TENANT: tenant,
                g.REQUEST_ID: request.state.request_id,
            }
            if fb.comment and telemetry.capture_content:
                log_attrs["llm_gateway.feedback.comment"] = fb.comment
            logger.info("feedback %.2f for %s", fb.score, fb.response_id, extra={ATTRS_KEY: log_attrs})
        return JSONResponse(
            {"object": "feedback", "response_id": fb.response_id, "score": fb.score, "recorded": True}
        )

    routed: ASGIApp = RouteFirst(app, CHAT_PATH, endpoint)
    if telemetry.enabled:
        # Server spans and HTTP server metrics (app/telemetry/http_server.py says why not the FastAPI
        # instrumentation), around both the chat endpoint and FastAPI; health checks are left out.
        routed = ServerTelemetry(
            routed,
            tracer_provider=telemetry.tracer_provider,
            meter_provider=telemetry.meter_provider,
            routes=[r.path for r in app.routes if hasattr(r, "path")],
            excluded_paths=["/healthz", "/readyz"],
        )
    return routed


def silence_injected_disconnects() -> None:
    """Injected mid-stream disconnects are intentional: keep their tracebacks out of uvicorn's error log."""
    from app.providers.base import SimulatedDisconnect

    class _Filter(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            exc = record.exc_info[1] if record.exc_info else None
            while exc is not None:
                if isinstance(exc, SimulatedDisconnect):
                    return False
                exc = (
                    exc.__cause__
                    or exc.__context__
                    or (exc.exceptions[0] if isinstance(exc, BaseExceptionGroup) and exc.exceptions else None)
                )
            return True

    logging.getLogger("uvicorn.error").addFilter(_Filter())
