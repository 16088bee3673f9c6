"""OpenAI-format error responses."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from app import jsonio
from app.asgi import Send, encode_headers, send_json

_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    504: "timeout_error",
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        error_type: str | None = None,
        headers: dict[str, str] | None = None,
        already_counted: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.error_type = error_type or str(status)  # the error.type telemetry value
        self.headers = headers or {}
        self.already_counted = already_counted  # True when a GenAI span already counted this error

    def body(self) -> dict[str, object]:
        return {
            "error": {
                "message": self.message,
                "type": _TYPES.get(self.status, "server_error" if self.status >= 500 else "api_error"),
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self, extra_headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(
            self.body(), status_code=self.status, headers={**self.headers, **(extra_headers or {})}
        )

    async def send(self, send: Send, extra_headers: dict[str, str]) -> None:
        """:meth:`response`, sent straight over ASGI: the same status, headers and body bytes."""
        headers = encode_headers({**self.headers, **extra_headers})
        await send_json(send, self.status, jsonio.dumps(self.body()), headers)
