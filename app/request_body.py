"""A request's JSON body: read within a size limit straight from ASGI ``receive``, parsed as a JSON object."""

from __future__ import annotations

from typing import Any

from app import jsonio
from app.asgi import Receive
from app.errors import ApiError

CLIENT_CLOSED_REQUEST = 499  # nginx's convention for "the client went away"


def too_large(limit: int) -> ApiError:
    # Connection: close: the rest of the body is never read, so the connection cannot carry another request.
    return ApiError(
        413,
        f"request body is larger than {limit} bytes",
        error_type="request_too_large",
        headers={"connection": "close"},
    )


async def read_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit``: from ``Content-Length``
    (``declared``) before a byte of it is read, and for a chunked body as soon as the bytes read pass it."""
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "invalid Content-Length header", error_type="invalid_request")
        if int(declared) > limit:
            raise too_large(limit)
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body"):
        body: bytes = message.get("body", b"")  # the whole body in one message: the usual case
        if len(body) > limit:
            raise too_large(limit)
        return body
    buffer = bytearray()
    while True:
        if message["type"] != "http.request":  # http.disconnect: nobody is left to answer
            raise ApiError(
                CLIENT_CLOSED_REQUEST,
                "the client disconnected before sending its whole request",
                error_type="client_disconnect",
            )
        buffer += message.get("body", b"")
        if len(buffer) > limit:
            raise too_large(limit)
        if not message.get("more_body"):
            return bytes(buffer)
        message = await receive()


def json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 saying why it is not one."""
    try:
        data = jsonio.loads_request(raw)
    except jsonio.NotPortableJSON as exc:
        raise ApiError(400, str(exc), error_type="invalid_json") from None
    except ValueError as exc:
        raise ApiError(
            400, f"We could not parse the JSON body of your request: {exc}", error_type="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object", error_type="invalid_json")
    return data
