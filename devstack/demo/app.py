"""The demo app's server: its page, and a small JSON API the page calls.

Every ``/api`` call is made to the gateway with the demo's own app key, which the
browser never sees; the event stream is proxied for the same reason.
"""

from __future__ import annotations

import asyncio
import html
import json
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from devstack.demo.gateway_client import DemoGateway, GatewayError
from devstack.demo.settings import DemoSettings

log = structlog.get_logger(__name__)
STATIC_DIR = Path(__file__).resolve().parent / "static"
SETTINGS = web.AppKey("demo_settings", DemoSettings)
GATEWAY = web.AppKey("demo_gateway", DemoGateway)
routes = web.RouteTableDef()
ApiHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def gateway_errors(request: web.Request, handler: ApiHandler) -> web.StreamResponse:
    """Pass gateway errors on to the page as JSON with the gateway's status."""
    try:
        return await handler(request)
    except GatewayError as exc:
        return web.json_response(exc.body, status=exc.status)
    except TimeoutError:
        return web.json_response(
            {"error": {"code": "timeout", "message": "the command did not finish in time"}},
            status=504,
        )


@routes.get("/")
async def index(request: web.Request) -> web.Response:
    """The demo page, told where the gateway serves the bridge module."""
    settings = request.app[SETTINGS]
    page = (STATIC_DIR / "index.html").read_text()
    page = page.replace("{{GATEWAY_PUBLIC_URL}}", html.escape(_public_gateway(settings)))
    page = page.replace("{{USERS}}", html.escape(json.dumps(settings.users)))
    return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-store"})


@routes.get("/healthz")
async def healthz(_request: web.Request) -> web.Response:
    """Liveness."""
    return web.json_response({"status": "ok"})


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="send JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="send a JSON object")
    return body


@routes.get("/api/users/{user}/notebooks")
async def notebooks(request: web.Request) -> web.Response:
    """The user's notebooks (gateway read API)."""
    user = request.match_info["user"]
    return web.json_response(await request.app[GATEWAY].get(f"/v1/users/{user}/notebooks"))


@routes.get("/api/users/{user}/versions")
async def versions(request: web.Request) -> web.Response:
    """Versions of one notebook, newest first."""
    user = request.match_info["user"]
    params = {"path": request.query.get("path", "")}
    return web.json_response(await request.app[GATEWAY].get(f"/v1/users/{user}/versions", params))


@routes.get("/api/versions/{version_id}/diff")
async def diff(request: web.Request) -> web.Response:
    """What a version changed against the one before (gateway diff API)."""
    version_id = request.match_info["version_id"]
    return web.json_response(await request.app[GATEWAY].get(f"/v1/versions/{version_id}/diff"))


async def _command(request: web.Request, kind: str, *fields: str) -> web.Response:
    body = await _body(request)
    command = {"type": kind, "user": request.match_info["user"]}
    command.update({f: body[f] for f in fields if body.get(f) is not None})
    view = await request.app[GATEWAY].run_command(command)
    return web.json_response(view, status=200 if view["status"] == "succeeded" else 502)


@routes.post("/api/users/{user}/open")
async def open_notebook(request: web.Request) -> web.Response:
    """``open``: ensure the server and the file; the result carries a one-time launch URL."""
    return await _command(request, "open", "path")


@routes.post("/api/users/{user}/save")
async def save_notebook(request: web.Request) -> web.Response:
    """``save``: store what Jupyter has written as a new version (unless unchanged)."""
    return await _command(request, "save", "path")


@routes.post("/api/users/{user}/restore")
async def restore_notebook(request: web.Request) -> web.Response:
    """``restore``: write an older version back into the user's server."""
    return await _command(request, "restore", "path", "version_id")


@routes.get("/api/users/{user}/events")
async def events(request: web.Request) -> web.StreamResponse:
    """The gateway's live event stream for the user (saves, the progress of its commands,
    its server's lifecycle), passed through as is."""
    upstream = await request.app[GATEWAY].open_events(request.match_info["user"])
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    try:
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
    except (ConnectionResetError, aiohttp.ClientError):
        pass
    finally:
        upstream.release()
    return response


def _public_gateway(settings: DemoSettings) -> str:
    return (settings.gateway_public_url or settings.gateway_url).rstrip("/")


def create_demo_app(settings: DemoSettings) -> web.Application:
    """The demo app for ``settings`` (its gateway client lives as long as the app)."""
    app = web.Application(middlewares=[gateway_errors])
    app[SETTINGS] = settings

    async def gateway_ctx(app: web.Application) -> AsyncIterator[None]:
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=60)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            app[GATEWAY] = DemoGateway(
                http,
                settings.gateway_url,
                settings.app_key.get_secret_value(),
                settings.command_timeout_seconds,
            )
            yield

    app.cleanup_ctx.append(gateway_ctx)
    app.router.add_routes(routes)
    app.router.add_static("/static/", STATIC_DIR)
    return app


def _server_tls(settings: DemoSettings) -> ssl.SSLContext | None:
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(settings.tls_cert_file), str(settings.tls_key_file))
    return context


async def serve_demo(settings: DemoSettings, stop: asyncio.Event) -> None:
    """Serve the demo app until ``stop`` is set."""
    runner = web.AppRunner(create_demo_app(settings), access_log=None)
    await runner.setup()
    site: web.BaseSite
    tls = _server_tls(settings)
    if settings.socket_fd is not None:
        site = web.SockSite(runner, socket.socket(fileno=settings.socket_fd), ssl_context=tls)
    else:
        site = web.TCPSite(runner, settings.host, settings.port, ssl_context=tls)
    await site.start()
    log.info("demo app listening", url=site.name)
    await stop.wait()
    await runner.cleanup()
