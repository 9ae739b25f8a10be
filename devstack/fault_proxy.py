"""A reverse proxy in front of the real Hub that injects faults on demand.

Run as its own process (``python -m devstack.fault_proxy``) so that
tests and benchmarks can block their own event loop without stalling it. Every
request to the proxy port is forwarded (streamed: the Hub's progress event stream
works) to ``--target`` unless a :class:`FaultRule` matches it; rules are replaced at
run time through a control port (``PUT /rules``, ``GET /stats``, ``DELETE /stats``).

Actions: ``status`` answers ``status`` (e.g. 503, or 429 with ``Retry-After``)
without forwarding; ``drop`` closes the connection without an answer; ``delay``
waits ``delay_seconds`` then forwards; ``garble`` forwards and replaces the body
with text that is not JSON (status kept). A rule applies to requests matching its
``method`` and ``path_pattern`` (regex, searched), to a ``fraction`` of them, for at
most ``count`` requests and/or ``seconds`` after it was set.
:class:`FaultProxy` runs the process and drives the control port from sync code.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
from aiohttp import web

from devstack.ports import free_port, start_retrying_ports, wait_for_http
from devstack.process import ManagedProcess, devstack_python_env

Action = Literal["status", "drop", "delay", "garble"]
_HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "Content-Length",
    )
)


@dataclass
class FaultRule:
    """One fault: what to do, to which requests, how often and for how long."""

    action: Action
    status: int = 503
    retry_after: float | None = None
    delay_seconds: float = 0.0
    fraction: float = 1.0
    count: int | None = None
    seconds: float | None = None
    method: str | None = None
    path_pattern: str | None = None


@dataclass
class _ActiveRule:
    rule: FaultRule
    pattern: re.Pattern[str] | None
    expires_at: float | None
    remaining: int | None

    def matches(self, method: str, path: str, now: float) -> bool:
        if self.expires_at is not None and now >= self.expires_at:
            return False
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.rule.method is not None and self.rule.method.upper() != method:
            return False
        return self.pattern is None or self.pattern.search(path) is not None


@dataclass
class _ProxyState:
    target: str
    rules: list[_ActiveRule] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)

    def set_rules(self, rules: list[FaultRule]) -> None:
        now = time.monotonic()
        self.rules = [
            _ActiveRule(
                rule,
                re.compile(rule.path_pattern) if rule.path_pattern else None,
                now + rule.seconds if rule.seconds is not None else None,
                rule.count,
            )
            for rule in rules
        ]

    def pick(self, method: str, path: str) -> FaultRule | None:
        now = time.monotonic()
        for active in self.rules:
            if active.matches(method, path, now) and random.random() < active.rule.fraction:
                if active.remaining is not None:
                    active.remaining -= 1
                self.faults[active.rule.action] += 1
                return active.rule
        return None


STATE: web.AppKey[_ProxyState] = web.AppKey("state")
SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("session")


async def _forward(request: web.Request, garble: bool) -> web.StreamResponse:
    session = request.app[SESSION]
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
    body = await request.read()
    url = request.app[STATE].target + request.path_qs
    async with session.request(
        request.method, url, headers=headers, data=body or None, allow_redirects=False
    ) as upstream:
        out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
        if garble:
            out_headers.pop("Content-Encoding", None)
            out_headers["Content-Type"] = "text/html"
            return web.Response(
                status=upstream.status, text="<html>garbled by fault proxy", headers=out_headers
            )
        response = web.StreamResponse(status=upstream.status, headers=out_headers)
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


async def _proxy(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    state.requests[f"{request.method} {request.path}"] += 1
    rule = state.pick(request.method, request.path)
    if rule is None:
        return await _forward(request, garble=False)
    if rule.action == "status":
        headers = {}
        if rule.retry_after is not None:
            headers["Retry-After"] = str(int(rule.retry_after))
        body = {"status": rule.status, "message": f"injected by fault proxy: {rule.status}"}
        return web.json_response(body, status=rule.status, headers=headers)
    if rule.action == "drop":
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError  # nothing is answered on an aborted connection
    if rule.action == "delay":
        await asyncio.sleep(rule.delay_seconds)
    return await _forward(request, garble=rule.action == "garble")


async def _put_rules(request: web.Request) -> web.Response:
    rules = [FaultRule(**item) for item in await request.json()]
    request.app[STATE].set_rules(rules)
    return web.json_response({"rules": len(rules)})


async def _get_stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response(
        {
            "requests": dict(state.requests),
            "total": sum(state.requests.values()),
            "faults": dict(state.faults),
        }
    )


async def _delete_stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.requests.clear()
    state.faults.clear()
    return web.json_response({})


async def _session_ctx(app: web.Application) -> Any:
    timeout = aiohttp.ClientTimeout(total=None, connect=10)
    async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
        app[SESSION] = session
        yield


async def _serve(target: str, port: int, control_port: int) -> None:
    state = _ProxyState(target.rstrip("/"))
    proxy = web.Application()
    proxy[STATE] = state
    proxy.cleanup_ctx.append(_session_ctx)
    proxy.router.add_route("*", "/{tail:.*}", _proxy)
    control = web.Application()
    control[STATE] = state
    control.router.add_put("/rules", _put_rules)
    control.router.add_get("/stats", _get_stats)
    control.router.add_delete("/stats", _delete_stats)
    runners = [web.AppRunner(proxy, access_log=None), web.AppRunner(control, access_log=None)]
    for runner, listen in zip(runners, (port, control_port), strict=True):
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", listen).start()
    try:
        await asyncio.Event().wait()
    finally:
        for runner in runners:
            await runner.cleanup()


class FaultProxy:
    """The fault proxy as a child process, controlled from (sync) test or bench code."""

    def __init__(self, target: str, log_path: Path) -> None:
        self._target = target
        self._log_path = log_path
        self._choose_ports()

    def _choose_ports(self) -> None:
        self.port = free_port()
        self.control_port = free_port()
        self._process = ManagedProcess(
            "fault-proxy",
            [
                sys.executable,
                "-m",
                "devstack.fault_proxy",
                "--target",
                self._target,
                "--port",
                str(self.port),
                "--control-port",
                str(self.control_port),
            ],
            log_path=self._log_path,
            env=devstack_python_env(),
        )

    @property
    def url(self) -> str:
        """Base URL to use instead of the Hub's public URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> None:
        """Start the process and wait for its control port (new ports if one was taken)."""

        def start_once() -> None:
            self._process.start()
            try:
                wait_for_http(f"{self._control('stats')}", timeout, process=self._process)
            except BaseException:
                self._process.stop()
                raise

        start_retrying_ports(start_once, self._choose_ports)

    def stop(self) -> None:
        """End the process."""
        self._process.stop()

    def _control(self, path: str) -> str:
        return f"http://127.0.0.1:{self.control_port}/{path}"

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self._control(path),
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def set_rules(self, *rules: FaultRule) -> None:
        """Replace all rules (none: forward everything)."""
        self._call("PUT", "rules", [asdict(rule) for rule in rules])

    def clear(self) -> None:
        """Forward everything from now on."""
        self.set_rules()

    def stats(self) -> dict[str, Any]:
        """Requests seen (by ``METHOD path``) and faults injected (by action)."""
        stats: dict[str, Any] = self._call("GET", "stats")
        return stats

    def reset_stats(self) -> None:
        """Zero the counters."""
        self._call("DELETE", "stats")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the proxy process."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.target, args.port, args.control_port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
