"""The demo server's client of the gateway: the app key never leaves this process."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

FINAL_STATUSES = frozenset({"succeeded", "failed", "rejected"})
EVENT_KINDS = (
    "notebook.saved",
    "command.progressed",
    "server.ready",
    "server.spawn_failed",
    "server.stopped",
    "server.cull_scheduled",
)
_LONG_POLL_SECONDS = 25


class GatewayError(Exception):
    """The gateway answered an error; ``status`` and ``body`` are passed on to the browser."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"gateway answered {status}")
        self.status = status
        self.body = body


class DemoGateway:
    """Calls the gateway as the demo app (``Authorization: Bearer <key>``)."""

    def __init__(
        self, http: aiohttp.ClientSession, base_url: str, app_key: str, command_timeout: float
    ) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._auth = {"Authorization": f"Bearer {app_key}"}
        self._command_timeout = command_timeout

    async def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET a JSON resource; raises GatewayError on an error status."""
        async with self._http.get(self._base + path, params=params, headers=self._auth) as resp:
            return await _json_or_error(resp)

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        """POST JSON; raises GatewayError on an error status."""
        async with self._http.post(self._base + path, json=body, headers=self._auth) as resp:
            return await _json_or_error(resp)

    async def run_command(self, command: dict[str, Any]) -> dict[str, Any]:
        """Send ``command`` and long-poll until it is final (or the timeout); the command view."""
        accepted = await self.post("/v1/commands", command)
        view: dict[str, Any] = accepted
        async with asyncio.timeout(self._command_timeout):
            while view["status"] not in FINAL_STATUSES:
                view = await self.get(
                    f"/v1/commands/{accepted['id']}", {"wait": str(_LONG_POLL_SECONDS)}
                )
        return view

    async def open_events(self, user: str) -> aiohttp.ClientResponse:
        """The gateway's SSE stream of the ``EVENT_KINDS`` the page shows live for ``user``:
        saves, the progress of commands, the server ready, failed to start, stopped, or
        about to be culled. The caller releases the response."""
        resp = await self._http.get(
            self._base + "/v1/events",
            params={"user": user, "types": ",".join(EVENT_KINDS)},
            headers=self._auth,
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        )
        if resp.status != 200:
            try:
                await _json_or_error(resp)
            finally:
                resp.release()
        return resp


async def _json_or_error(resp: aiohttp.ClientResponse) -> Any:
    try:
        body = await resp.json(content_type=None)
    except ValueError:
        body = {"error": {"code": "bad_gateway", "message": "the gateway answered non-JSON"}}
    if resp.status >= 400:
        raise GatewayError(resp.status, body)
    return body
