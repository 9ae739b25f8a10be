"""The hub service's HTTP API: ``POST /notify`` (public), health, readiness, metrics.

``POST /notify`` takes a :class:`ContentsNotification` from a single-user server's
save extension. The caller's token is resolved by the Hub; a notification about a
file of anyone but the token's own user is refused (403) and nothing is published.
Accepted notifications are published with confirms onto the commands exchange under
the user's routing key, so they share the user's partition and order with commands;
if the broker does not confirm, the answer is 503 and the extension tries again.
"""

from __future__ import annotations

import time

import structlog
from aio_pika.abc import AbstractRobustConnection
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from pydantic import ValidationError

from hub_service.token_check import HubUnavailable, InvalidToken, TokenVerifier
from runtime.bus.probe import BrokerProbe
from runtime.bus.publisher import ConfirmedPublisher, PublishFailed
from runtime.http_errors import ApiError
from runtime.strict_json import NotStrictJson, loads_strict
from schemas import topology as t
from schemas.notifications import ContentsNotification, ContentsNotificationMessage

log = structlog.get_logger(__name__)

AMQP = web.AppKey("amqp", AbstractRobustConnection)
PUBLISHER = web.AppKey("publisher", ConfirmedPublisher)
VERIFIER = web.AppKey("verifier", TokenVerifier)
BROKER_PROBE = web.AppKey("broker_probe", BrokerProbe)
HUB_NAME = web.AppKey("hub_name", str)  # this Hub's name where there are several

# Not in runtime.metrics: only this process counts notifications.
NOTIFICATIONS = Counter(
    "orch_contents_notifications_total",
    "Save/rename/delete notifications received by the hub service",
    ["outcome"],
)


def _token(request: web.Request) -> str:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() not in ("token", "bearer") or not value.strip():
        NOTIFICATIONS.labels("unauthenticated").inc()
        raise ApiError(
            401,
            "unauthorized",
            "send the server's Hub token as 'Authorization: token …'",
            headers={"WWW-Authenticate": "token"},
        )
    return value.strip()


async def notify(request: web.Request) -> web.Response:
    """Verify, validate and publish one contents notification (202 once confirmed)."""
    started = time.monotonic()
    token = _token(request)
    try:
        owner = await request.app[VERIFIER].owner(token)
    except InvalidToken as exc:
        NOTIFICATIONS.labels("unauthenticated").inc()
        raise ApiError(401, "unauthorized", str(exc)) from None
    except HubUnavailable as exc:
        NOTIFICATIONS.labels("hub_unavailable").inc()
        log.warning("token not verified: the Hub did not answer", error=str(exc))
        raise ApiError(
            503, "unavailable", "the Hub did not answer; try again", headers={"Retry-After": "1"}
        ) from None
    try:
        notification = ContentsNotification.model_validate(loads_strict(await request.read()))
    except ValidationError as exc:
        NOTIFICATIONS.labels("invalid").inc()
        details = [
            {"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors(include_input=False)
        ]
        raise ApiError(400, "bad_request", "invalid notification", details=details) from None
    except (ValueError, RecursionError) as exc:  # NotStrictJson is a ValueError
        NOTIFICATIONS.labels("invalid").inc()
        problem = str(exc) if isinstance(exc, NotStrictJson) else "body is not valid JSON"
        raise ApiError(400, "bad_request", f"invalid notification: {problem}") from None
    structlog.contextvars.bind_contextvars(
        user=notification.user, notification_id=str(notification.id)
    )
    if owner.kind != "user" or owner.name != notification.user:
        NOTIFICATIONS.labels("forbidden").inc()
        log.warning("notification about another user's file refused", caller=owner.name)
        raise ApiError(403, "forbidden", "a server may only report changes to its own user's files")
    message = ContentsNotificationMessage(notification=notification, hub=request.app.get(HUB_NAME))
    try:
        await request.app[PUBLISHER].publish(
            t.COMMANDS_EXCHANGE,
            notification.user,
            message.model_dump_json().encode(),
            headers={
                t.HEADER_KIND: t.KIND_NOTIFICATION,
                t.HEADER_CORRELATION_ID: str(notification.id),
            },
            message_id=str(notification.id),
            correlation_id=str(notification.id),
            type_=t.KIND_NOTIFICATION,
        )
    except PublishFailed as exc:
        NOTIFICATIONS.labels("unconfirmed").inc()
        log.warning("notification not confirmed by the broker", error=str(exc))
        raise ApiError(503, "unavailable", str(exc), headers={"Retry-After": "1"}) from None
    NOTIFICATIONS.labels("published").inc()
    log.info(
        "notification published",
        action=notification.action.value,
        path=notification.path,
        coalesced=notification.coalesced,
        seconds=round(time.monotonic() - started, 4),
    )
    return web.json_response({"status": "accepted", "id": str(notification.id)}, status=202)


async def healthz(_request: web.Request) -> web.Response:
    """The process is alive."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready to publish: the broker answers a round trip within 2 s."""
    broker = await request.app[BROKER_PROBE].problem() or "ok"
    ready = broker == "ok"
    return web.json_response(
        {"status": "ready" if ready else "not ready", "checks": {"broker": broker}},
        status=200 if ready else 503,
    )


async def metrics(_request: web.Request) -> web.Response:
    """Prometheus metrics of this process."""
    response = web.Response(body=generate_latest())
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return response


def add_routes(app: web.Application, prefix: str) -> None:
    """``/notify`` at the root and under the Hub's service prefix (the public proxy
    forwards that prefix); health, readiness and metrics only at the root, which only
    the loopback port serves: the public proxy routes nothing but the prefix here."""
    prefixes = {"/", prefix if prefix.endswith("/") else prefix + "/"}
    for base in sorted(prefixes):
        app.router.add_post(f"{base}notify", notify)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
