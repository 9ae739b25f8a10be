"""``POST /v1/commands`` (accept a command) and ``GET /v1/commands/{id}`` (its status)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from typing import Any

import orjson
import structlog
from aiohttp import web

from orchestrator.gateway.command_waiters import WAITERS, wait_for
from orchestrator.gateway.context import (
    COMMANDS,
    PUBLISHER,
    SETTINGS,
    correlation_id,
    current_app,
)
from orchestrator.gateway.permissions import authorize
from orchestrator.gateway.validation import (
    check_idempotency_key,
    invalid_parameter,
    parse_command,
    parse_wait,
)
from runtime.bus.command_messages import recorded_command_message
from runtime.bus.publisher import PublishFailed
from runtime.db.command_records import NewCommand
from runtime.db.commands import Accepted, IdempotencyConflict
from runtime.db.models import CommandRecord, CommandStatus
from runtime.http_errors import ApiError
from runtime.metrics import COMMANDS_ACCEPTED, COMMANDS_REJECTED, labelled
from schemas.commands import Command

log = structlog.get_logger(__name__)
routes = web.RouteTableDef()
IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
RETRY_AFTER_SECONDS = 5
# A long-poll re-reads the status this often even without a result event, so that an
# event lost (e.g. while the broker restarted) costs latency, not a stuck request.
RECHECK_SECONDS = 5.0


async def _read_body(request: web.Request) -> bytes:
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the command as application/json")
    limit = request.app[SETTINGS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(limit) from None


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "body_too_large", f"request body is larger than {limit} bytes")


def command_view(request: web.Request, record: CommandRecord | NewCommand) -> dict[str, Any]:
    """The public JSON shape of a command (``CommandView`` in the OpenAPI document)."""
    command_id = str(record.id)
    return {
        "id": command_id,
        "type": record.type,
        "user": record.user,
        "status": record.status,
        "attempts": record.attempts,
        "result": record.result,
        "error": record.error,
        "progress": record.progress,
        "correlation_id": record.correlation_id,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
        "finished_at": record.finished_at.isoformat() if record.finished_at else None,
        "status_url": str(request.app[SETTINGS].public_url).rstrip("/")
        + f"/v1/commands/{command_id}",
    }


async def _publish(
    request: web.Request, record: CommandRecord | NewCommand, command: Command
) -> None:
    await request.app[PUBLISHER].publish_message(recorded_command_message(record, command))


def _command_response(
    request: web.Request,
    record: CommandRecord | NewCommand,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """The command as JSON (orjson: this is on every command's path)."""
    return web.Response(
        body=orjson.dumps(command_view(request, record)),
        status=status,
        headers=headers,
        content_type="application/json",
    )


def _request_hash(payload: dict[str, Any]) -> str:
    """What an Idempotency-Key replay must match: the normalised command."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _bus_unavailable(reason: str) -> ApiError:
    log.warning("command not accepted: bus unavailable", reason=reason)
    return ApiError(
        503,
        "bus_unavailable",
        "the message bus did not confirm the command; it was not accepted, retry later",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _replay_while_disconnected(request: web.Request, new: NewCommand) -> Accepted:
    """With the broker connection down, only a replay can be answered 202 (reading, not
    writing): anything else is refused before a write, since during an outage every
    refusal would otherwise cost the database an insert and an update for nothing."""
    if new.idempotency_key is not None:
        store = request.app[COMMANDS]
        earlier = await store.replay_of(new.app, new.idempotency_key, new.request_hash)
        if earlier is not None:
            return Accepted(earlier, created=False)
    raise _bus_unavailable("not connected")


async def _accept(request: web.Request) -> web.Response:
    key = check_idempotency_key(request.headers.get(IDEMPOTENCY_HEADER))
    command = parse_command(await _read_body(request))
    authorize(current_app(request), command.type, command.user)
    payload = command.model_dump(mode="json")
    new = NewCommand(
        app=current_app(request).name,
        type=command.type.value,
        user=command.user,
        payload=payload,
        idempotency_key=key,
        request_hash=_request_hash(payload) if key is not None else None,
        correlation_id=correlation_id(request),
    )
    try:
        if request.app[PUBLISHER].connected:
            accepted = await request.app[COMMANDS].record(new)
        else:
            accepted = await _replay_while_disconnected(request, new)
    except IdempotencyConflict as exc:
        raise ApiError(409, "idempotency_conflict", str(exc)) from None
    record = accepted.record
    command_id = str(record.id)
    structlog.contextvars.bind_contextvars(command_id=command_id)
    location = {"Location": f"/v1/commands/{command_id}"}
    if not accepted.created:
        log.info("command replayed", type=record.type)
        return _command_response(
            request, record, status=202, headers={**location, REPLAYED_HEADER: "true"}
        )
    try:
        await _publish(request, record, command)
    except PublishFailed as exc:
        await request.app[COMMANDS].reject(record.id)
        raise _bus_unavailable(str(exc)) from None
    labelled(COMMANDS_ACCEPTED, record.type).inc()
    log.info("command accepted", type=record.type, user=record.user)
    return _command_response(request, record, status=202, headers=location)


@routes.post("/v1/commands")
async def accept_command(request: web.Request) -> web.Response:
    """Validate, record and publish a command; 202 only once the broker confirmed it.

    Refusals are counted in ``orch_commands_rejected_total`` by error code.
    """
    try:
        return await _accept(request)
    except ApiError as exc:
        labelled(COMMANDS_REJECTED, exc.code).inc()
        raise


@routes.get("/v1/commands/{command_id}")
async def command_status(request: web.Request) -> web.Response:
    """A command of the calling app; with ``?wait=S`` returns as soon as it ends.

    Another app's command is answered 404, exactly like a command that does not exist;
    an id that is not a UUID is 422 ``invalid_parameter`` naming ``command_id``.
    """
    try:
        command_id = uuid.UUID(request.match_info["command_id"])
    except ValueError:
        raise invalid_parameter("command_id", "must be a UUID") from None
    wait = parse_wait(request.query.get("wait"), request.app[SETTINGS].max_wait_seconds)
    app = current_app(request).name
    store = request.app[COMMANDS]
    with request.app[WAITERS].watch(command_id) as finished:
        record = await store.get(command_id, app=app)
        if record is None:
            raise ApiError(404, "not_found", f"no command {command_id} for app '{app}'")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while not CommandStatus(record.status).is_final and loop.time() < deadline:
            await wait_for(finished, min(RECHECK_SECONDS, deadline - loop.time()))
            record = await store.get(command_id, app=app) or record
    return _command_response(request, record)
