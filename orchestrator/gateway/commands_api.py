"""``POST /v1/commands`` (accept a command) and ``GET /v1/commands/{id}`` (its status)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from typing import Any

import structlog
from aiohttp import web
from pydantic import ValidationError

from orchestrator.bus.publisher import PublishFailed
from orchestrator.db.commands import IdempotencyConflict
from orchestrator.db.models import CommandRecord, CommandStatus
from orchestrator.gateway.command_waiters import WAITERS
from orchestrator.gateway.context import (
    COMMANDS,
    PUBLISHER,
    SETTINGS,
    correlation_id,
    current_app,
)
from orchestrator.gateway.errors import ApiError
from schemas.commands import COMMAND_ADAPTER, Command, CommandMessage
from schemas.topology import (
    COMMANDS_EXCHANGE,
    HEADER_COMMAND_ID,
    HEADER_CORRELATION_ID,
    HEADER_KIND,
    KIND_COMMAND,
)

log = structlog.get_logger(__name__)
routes = web.RouteTableDef()
IDEMPOTENCY_HEADER = "Idempotency-Key"
RETRY_AFTER_SECONDS = "5"


def _validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = [str(p) for p in err["loc"] if not str(p).startswith(("function-", "tagged-union"))]
        # drop the discriminator tag pydantic inserts as the first location element
        if loc and loc[0] in {
            "ensure-user",
            "start-server",
            "stop-server",
            "create",
            "restore",
            "save",
            "open",
        }:
            loc = loc[1:]
        message = err["msg"].removeprefix("Value error, ")
        details.append({"field": ".".join(loc) or "body", "problem": message})
    return details


async def _read_command(request: web.Request) -> tuple[Command, dict[str, Any]]:
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the command as application/json")
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "body must be a JSON object")
    try:
        command = COMMAND_ADAPTER.validate_python(body)
    except ValidationError as exc:
        details = _validation_details(exc)
        summary = "; ".join(f"{d['field']}: {d['problem']}" for d in details)
        raise ApiError(422, "invalid_command", summary, details=details) from None
    return command, body


def _check_allowed(request: web.Request, command: Command) -> None:
    app = current_app(request)
    if app.allowed_types is not None and command.type.value not in app.allowed_types:
        raise ApiError(
            403, "forbidden", f"app '{app.name}' may not send '{command.type.value}' commands"
        )
    if app.user_prefix and not command.user.startswith(app.user_prefix):
        raise ApiError(
            403,
            "forbidden",
            f"app '{app.name}' may only act for users starting with '{app.user_prefix}'",
        )


def command_view(request: web.Request, record: CommandRecord) -> dict[str, Any]:
    """The public JSON shape of a command."""
    return {
        "id": str(record.id),
        "type": record.type,
        "user": record.user,
        "status": record.status,
        "attempts": record.attempts,
        "result": record.result,
        "error": record.error,
        "correlation_id": record.correlation_id,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
        "finished_at": record.finished_at.isoformat() if record.finished_at else None,
        "status_url": str(request.app[SETTINGS].public_url).rstrip("/")
        + f"/v1/commands/{record.id}",
    }


async def _publish(request: web.Request, record: CommandRecord, command: Command) -> None:
    message = CommandMessage(
        id=record.id,
        app=record.app,
        correlation_id=record.correlation_id,
        accepted_at=record.created_at,
        command=command,
    )
    await request.app[PUBLISHER].publish(
        COMMANDS_EXCHANGE,
        command.user,
        message.model_dump_json().encode(),
        headers={
            HEADER_KIND: KIND_COMMAND,
            HEADER_COMMAND_ID: str(record.id),
            HEADER_CORRELATION_ID: record.correlation_id,
        },
        message_id=str(record.id),
        correlation_id=record.correlation_id,
        type_=command.type.value,
    )


@routes.post("/v1/commands")
async def accept_command(request: web.Request) -> web.Response:
    """Validate, record and publish a command; 202 only once the broker confirmed it."""
    command, _ = await _read_command(request)
    _check_allowed(request, command)
    app = current_app(request)
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and not (0 < len(key) <= 255 and key.isprintable()):
        raise ApiError(400, "bad_request", "Idempotency-Key must be 1-255 printable characters")
    payload = command.model_dump(mode="json")
    record = CommandRecord(
        app=app.name,
        type=command.type.value,
        user=command.user,
        payload=payload,
        idempotency_key=key,
        request_hash=hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest(),
        correlation_id=correlation_id(request),
    )
    try:
        accepted = await request.app[COMMANDS].record(record)
    except IdempotencyConflict as exc:
        raise ApiError(409, "idempotency_conflict", str(exc)) from None
    record = accepted.record
    structlog.contextvars.bind_contextvars(command_id=str(record.id))
    if not accepted.created:
        log.info("command replayed", type=record.type)
        return web.json_response(
            command_view(request, record), status=202, headers={"Idempotent-Replayed": "true"}
        )
    try:
        await _publish(request, record, command)
    except PublishFailed as exc:
        await request.app[COMMANDS].set_status(record.id, CommandStatus.REJECTED)
        log.warning("command not accepted: bus unavailable", reason=str(exc))
        raise ApiError(
            503,
            "bus_unavailable",
            "the message bus did not confirm the command; it was not accepted, retry later",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        ) from None
    log.info("command accepted", type=record.type, user=record.user)
    return web.json_response(
        command_view(request, record),
        status=202,
        headers={"Location": f"/v1/commands/{record.id}"},
    )


def _parse_wait(request: web.Request) -> float:
    raw = request.query.get("wait")
    if raw is None:
        return 0.0
    try:
        wait = float(raw)
    except ValueError:
        raise ApiError(400, "bad_request", "wait must be a number of seconds") from None
    if not 0 <= wait <= request.app[SETTINGS].max_wait_seconds:
        raise ApiError(
            400,
            "bad_request",
            f"wait must be between 0 and {request.app[SETTINGS].max_wait_seconds} seconds",
        )
    return wait


@routes.get("/v1/commands/{command_id}")
async def command_status(request: web.Request) -> web.Response:
    """A command of the calling app; with ``?wait=S`` returns as soon as it ends."""
    try:
        command_id = uuid.UUID(request.match_info["command_id"])
    except ValueError:
        raise ApiError(404, "not_found", "no such command (ids are UUIDs)") from None
    wait = _parse_wait(request)
    app = current_app(request)
    store = request.app[COMMANDS]
    record = await store.get(command_id, app=app.name)
    if record is None:
        raise ApiError(404, "not_found", f"no command {command_id} for app '{app.name}'")
    if wait > 0 and not CommandStatus(record.status).is_final:
        waiters = request.app[WAITERS]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while not CommandStatus(record.status).is_final and loop.time() < deadline:
            # Woken by the command's result event; re-read at least once a second so
            # a missed event (e.g. during a broker restart) only costs latency.
            await waiters.wait(command_id, min(1.0, deadline - loop.time()))
            record = await store.get(command_id, app=app.name) or record
    return web.json_response(command_view(request, record))
