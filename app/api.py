"""The FastAPI application: OpenAI-compatible routes, auth, errors, and instrumentation wiring."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from opentelemetry.trace import Link, SpanKind
from pydantic import BaseModel

from app import __version__
from app.chat import ChatService
from app.config import GatewayConfig
from app.errors import ApiError
from app.identifiers import acceptable_request_id
from app.providers.base import Provider
from app.providers.openai_compatible import OpenAICompatibleProvider
from app.providers.simulated import SimulatedProvider
from app.request_log import ATTRS_KEY, close_logger, gateway_logger
from app.routing import Router
from app.schemas import ChatCompletionRequest, FeedbackRequest, ValidationError, first_error
from app.telemetry import genai as g
from app.telemetry.http_client import HttpClientTelemetry
from app.telemetry.http_server import ServerTelemetry
from app.telemetry.metrics import GatewayMetrics
from app.telemetry.setup import Telemetry, setup_telemetry
from app.tenants import Authenticator, hash_user

FAULT_HEADER = "x-simulated-fault"
_Model = TypeVar("_Model", bound=BaseModel)


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


def _too_large(limit: int) -> ApiError:
    # Connection: close: the rest of the body is never read, so the connection cannot carry another request.
    return ApiError(
        413,
        f"request body is larger than {limit} bytes",
        error_type="request_too_large",
        headers={"connection": "close"},
    )


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit``: from ``Content-Length``
    before a byte of it is read, and for a chunked body as soon as the bytes read pass the limit."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "invalid Content-Length header", error_type="invalid_request")
        if int(declared) > limit:
            raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


async def _json_body(request: Request, limit: int) -> dict[str, Any]:
    raw = await _read_body(request, limit)
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ApiError(
            400, f"We could not parse the JSON body of your request: {exc}", error_type="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object", error_type="invalid_json")
    return data


def _validated(model: type[_Model], body: dict[str, Any]) -> _Model:
    """The body as ``model``, or the OpenAI-style 400 naming the first invalid field."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        param, message = first_error(exc)
        raise ApiError(
            400, message, param=param, code="invalid_value", error_type="invalid_request"
        ) from None


def create_app(
    config: GatewayConfig, telemetry: Telemetry | None = None, *, log_to_stderr: bool = True
) -> FastAPI:
    telemetry = telemetry or setup_telemetry()
    metrics = GatewayMetrics(telemetry.meter_provider, telemetry.latest_experimental)
    logger = gateway_logger(telemetry.logger_provider, telemetry.enabled, stderr=log_to_stderr)
    providers = build_providers(config, telemetry)
    router = Router(config, providers)
    auth = Authenticator(config)
    chat = ChatService(router, telemetry, metrics, logger)
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
        # Errors raised before a GenAI span exists (auth, validation, routing) are counted here;
        # model-call errors were counted with their span.
        if not exc.already_counted:
            metrics.errors.add(
                1,
                {
                    g.ERROR_TYPE: exc.error_type,
                    "http.response.status_code": exc.status,
                    g.TENANT: getattr(request.state, "tenant", "_unauthenticated"),
                },
            )
        return exc.response({"x-request-id": getattr(request.state, "request_id", "")})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Still OpenAI-shaped for clients; Starlette logs the traceback.
        metrics.errors.add(1, {g.ERROR_TYPE: type(exc).__qualname__, "http.response.status_code": 500})
        return ApiError(500, "The gateway hit an internal error.", code="internal_error").response(
            {"x-request-id": getattr(request.state, "request_id", "")}
        )

    def authenticate(request: Request) -> str:
        # The request id goes onto spans, logs and the stderr log: a client's own id only when it is
        # id-shaped (no e-mail, phone, key...), else one of ours.
        client_id = request.headers.get("x-request-id")
        request.state.request_id = (
            client_id if client_id and acceptable_request_id(client_id) else f"req_{uuid.uuid4().hex}"
        )
        tenant = auth.tenant_for(request.headers.get("authorization"))
        if tenant is None:
            raise ApiError(
                401,
                "Incorrect API key provided. You can find your API key in your gateway configuration.",
                code="invalid_api_key",
                error_type="invalid_api_key",
            )
        request.state.tenant = tenant
        return tenant

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        tenant = authenticate(request)
        body = await _json_body(request, config.max_request_bytes)
        parsed = _validated(ChatCompletionRequest, body)
        user_hash = hash_user(parsed.user, config.user_hash_salt) if parsed.user else None
        body.pop("user", None)  # the raw end-user id goes nowhere: not upstream, not to telemetry
        include_usage = bool(parsed.stream_options and parsed.stream_options.include_usage)
        response = await chat.handle(
            body,
            stream=parsed.stream,
            include_usage=include_usage,
            tenant=tenant,
            request_id=request.state.request_id,
            user_hash=user_hash,
            fault=request.headers.get(FAULT_HEADER),
        )
        response.headers["x-request-id"] = request.state.request_id
        return response

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
        fb = _validated(FeedbackRequest, await _json_body(request, 100_000))
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

    if telemetry.enabled:
        # Server spans and HTTP server metrics (app/telemetry/http_server.py says why not the FastAPI
        # instrumentation); health checks are left out.
        app.add_middleware(
            ServerTelemetry,
            tracer_provider=telemetry.tracer_provider,
            meter_provider=telemetry.meter_provider,
            routes=[r.path for r in app.routes if hasattr(r, "path")],
            excluded_paths=["/healthz", "/readyz"],
        )
    return app


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
