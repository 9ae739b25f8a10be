"""Every HTTP error is JSON: ``{"error": {"code": ..., "message": ..., "details": ...}}``."""

from __future__ import annotations

import json
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

log = structlog.get_logger(__name__)


class ApiError(web.HTTPException):
    """An HTTP error with a stable code and a message naming what was wrong."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status_code = status
        body = {"error": {"code": code, "message": message}}
        if details is not None:
            body["error"]["details"] = details
        super().__init__(
            text=json.dumps(body, default=str),
            content_type="application/json",
            headers=headers,
        )
        self.code = code
        self.message = message


_REASON_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_parameter",
    429: "too_many_requests",
    503: "unavailable",
}
_KEPT_HEADERS = ("allow", "retry-after", "www-authenticate")


def as_json_error(exc: web.HTTPException) -> ApiError:
    """The JSON form of one of aiohttp's own HTTP errors (unknown route, wrong method...)."""
    message = exc.text if exc.text and exc.content_type == "text/plain" else exc.reason
    if exc.status == 413:
        message = "request body is too large"
    elif exc.status == 405:
        message = "method not allowed on this path"
    elif exc.status == 404:
        message = "no such resource"
    return ApiError(
        exc.status,
        _REASON_CODES.get(exc.status, "http_error"),
        message or "error",
        headers={k: v for k, v in exc.headers.items() if k.lower() in _KEPT_HEADERS},
    )


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error into JSON; unexpected exceptions become a 500 without internals."""
    try:
        return await handler(request)
    except ApiError:
        raise
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        raise as_json_error(exc) from None
    except Exception:
        log.exception("unhandled error", path=request.path, method=request.method)
        raise ApiError(500, "internal_error", "internal error; see the gateway log") from None
