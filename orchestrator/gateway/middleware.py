"""Request middleware: correlation id and app authentication."""

from __future__ import annotations

import re
import uuid

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from orchestrator.gateway.context import APPS, REQUEST_APP, REQUEST_CORRELATION_ID
from orchestrator.gateway.errors import ApiError

CORRELATION_HEADER = "X-Correlation-ID"
_CORRELATION_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
PUBLIC_PREFIXES = ("/healthz", "/readyz", "/metrics", "/openapi", "/static/", "/docs")


@web.middleware
async def correlation(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Accept a well-formed ``X-Correlation-ID`` or make one; bind it to every log line."""
    given = request.headers.get(CORRELATION_HEADER, "")
    value = given if _CORRELATION_RE.fullmatch(given) else str(uuid.uuid4())
    request[REQUEST_CORRELATION_ID] = value
    structlog.contextvars.bind_contextvars(correlation_id=value)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers[CORRELATION_HEADER] = value
        raise
    finally:
        structlog.contextvars.unbind_contextvars("correlation_id", "app", "command_id")
    response.headers[CORRELATION_HEADER] = value
    return response


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Require ``Authorization: Bearer <app key>`` on the API (401 missing/unknown key)."""
    if request.path.startswith(PUBLIC_PREFIXES) or request.path == "/":
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if not header:
        raise ApiError(
            401,
            "unauthorized",
            "missing Authorization header; send 'Authorization: Bearer <app key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(
            401,
            "unauthorized",
            "Authorization must use the Bearer scheme with an app key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    identity = await request.app[APPS].authenticate(key.strip())
    if identity is None:
        raise ApiError(
            401,
            "unauthorized",
            "unknown or revoked app key",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    request[REQUEST_APP] = identity
    structlog.contextvars.bind_contextvars(app=identity.name)
    return await handler(request)
