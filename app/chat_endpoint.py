"""``POST /v1/chat/completions`` as a pure ASGI endpoint: authenticate, read and validate the body, call the
model (app/chat.py), answer. Every failure is an OpenAI-shaped error response, as the FastAPI routes give.

Served in front of FastAPI (app/asgi.py says why); what the framework did for this route is done here: the
request id and tenant, the ``ApiError`` → response mapping with its error count, and the 500 for a bug.
"""

from __future__ import annotations

from app.asgi import Receive, Scope, Send, send_json
from app.chat import ChatService, ChatStream
from app.errors import ApiError
from app.identifiers import request_id_for
from app.request_body import json_object, read_body
from app.schemas import chat_request
from app.telemetry import genai as g
from app.telemetry.metrics import GatewayMetrics
from app.tenants import Authenticator, hash_user

CHAT_PATH = "/v1/chat/completions"
FAULT_HEADER = b"x-simulated-fault"  # makes the simulated provider inject a fault
UNAUTHENTICATED = "_unauthenticated"  # the tenant label of errors before a tenant is known


def invalid_api_key() -> ApiError:
    return ApiError(
        401,
        "Incorrect API key provided. You can find your API key in your gateway configuration.",
        code="invalid_api_key",
        error_type="invalid_api_key",
    )


def internal_error() -> ApiError:
    return ApiError(500, "The gateway hit an internal error.", code="internal_error")


class ChatEndpoint:
    def __init__(
        self,
        chat: ChatService,
        auth: Authenticator,
        metrics: GatewayMetrics,
        *,
        max_request_bytes: int,
        user_hash_salt: str,
    ) -> None:
        self._chat = chat
        self._auth = auth
        self._metrics = metrics
        self._limit = max_request_bytes
        self._salt = user_hash_salt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The few request headers read here; the first of repeated ones, as Starlette's Headers.get.
        content_length = authorization = client_id = fault = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                content_length = content_length or value.decode("latin-1")
            elif name == b"authorization":
                authorization = authorization or value.decode("latin-1")
            elif name == b"x-request-id":
                client_id = client_id or value.decode("latin-1")
            elif name == FAULT_HEADER:
                fault = fault or value.decode("latin-1")
        request_id = request_id_for(client_id)
        id_header = [(b"x-request-id", request_id.encode("latin-1"))]
        tenant: str | None = None
        try:
            tenant = self._auth.tenant_for(authorization)
            if tenant is None:
                raise invalid_api_key()
            body = json_object(await read_body(receive, content_length, self._limit))
            request = chat_request(body)
            user_hash = hash_user(request.user, self._salt) if request.user else None
            body.pop("user", None)  # the raw end-user id goes nowhere: not upstream, not to telemetry
            result = await self._chat.handle(
                body,
                stream=request.stream,
                include_usage=request.include_usage,
                tenant=tenant,
                request_id=request_id,
                user_hash=user_hash,
                fault=fault,
            )
        except ApiError as exc:
            # Errors raised before a GenAI span exists (auth, validation, routing) are counted here;
            # model-call errors were counted with their span.
            if not exc.already_counted:
                self._metrics.errors.add(
                    1,
                    {
                        g.ERROR_TYPE: exc.error_type,
                        "http.response.status_code": exc.status,
                        g.TENANT: tenant or UNAUTHENTICATED,
                    },
                )
            await exc.send(send, {"x-request-id": request_id})
            return
        except Exception as exc:
            # Still OpenAI-shaped for the client; the server logs the traceback (as for the FastAPI routes).
            self._metrics.errors.add(
                1, {g.ERROR_TYPE: type(exc).__qualname__, "http.response.status_code": 500}
            )
            await internal_error().send(send, {"x-request-id": request_id})
            raise
        if isinstance(result, ChatStream):
            # Failures after the head is sent end the stream (an error event or a dropped connection);
            # the model call counted them.
            await result.relay(send, receive, id_header)
        else:
            await send_json(send, 200, result, [], id_header)
