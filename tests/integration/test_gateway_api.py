"""The gateway's rules, against a real gateway process and a real RabbitMQ.

The stack (broker + gateway, no Hub, no consumers) comes from ``gateway_fixtures``;
what the gateway published is read back from the partition queues.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aio_pika
import aiohttp
import pytest

from devstack.stack import LocalStack
from schemas.topology import HEADER_CORRELATION_ID
from tests.integration.gateway_client import (
    AUTH_CACHE_SECONDS,
    MAX_BODY_BYTES,
    bearer,
    bus_messages,
    post_command,
)

pytest_plugins = ["tests.integration.gateway_fixtures"]


async def test_accepted_command_is_on_the_bus_with_its_correlation_id(
    gateway_stack: LocalStack, gw_keys: dict[str, str], gw: aiohttp.ClientSession
) -> None:
    status, headers, body = await post_command(
        gw,
        gw_keys["a"],
        {"type": "ensure-user", "user": "alice"},
        **{"X-Correlation-ID": "c-42"},
    )
    assert status == 202, body
    assert headers["X-Correlation-ID"] == "c-42"
    assert body["correlation_id"] == "c-42" and body["status"] == "accepted"
    assert headers["Location"] == f"/v1/commands/{body['id']}"
    assert body["status_url"].endswith(headers["Location"])
    [message] = await bus_messages(gateway_stack, body["id"])
    assert message.headers[HEADER_CORRELATION_ID] == "c-42"
    assert message.correlation_id == "c-42"
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    async with gw.get(f"/v1/commands/{body['id']}", headers=bearer(gw_keys["a"])) as resp:
        assert (await resp.json())["correlation_id"] == "c-42"


async def test_correlation_id_generated_when_missing_or_malformed(
    gw_keys: dict[str, str], gw: aiohttp.ClientSession
) -> None:
    for given in ({}, {"X-Correlation-ID": "not valid!"}):
        status, headers, body = await post_command(
            gw, gw_keys["a"], {"type": "ensure-user", "user": "bob"}, **given
        )
        assert status == 202
        generated = headers["X-Correlation-ID"]
        assert str(uuid.UUID(generated)) == generated == body["correlation_id"]
    async with gw.get("/nowhere") as resp:  # errors carry it too
        assert uuid.UUID(resp.headers["X-Correlation-ID"])


async def test_idempotent_replay_returns_the_same_command_and_publishes_once(
    gateway_stack: LocalStack, gw_keys: dict[str, str], gw: aiohttp.ClientSession
) -> None:
    idem = {"Idempotency-Key": f"order-{uuid.uuid4()}"}
    body = {"type": "create", "user": "carol", "path": "work/a.ipynb"}
    first = await post_command(gw, gw_keys["a"], body, **idem)
    second = await post_command(gw, gw_keys["a"], body, **idem)
    assert first[0] == second[0] == 202
    assert second[2]["id"] == first[2]["id"]
    assert second[1].get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first[1]
    assert len(await bus_messages(gateway_stack, first[2]["id"])) == 1

    # the same key with another body is a conflict; another app may use the same key
    other = {"type": "create", "user": "carol", "path": "work/b.ipynb"}
    conflict = await post_command(gw, gw_keys["a"], other, **idem)
    assert conflict[0] == 409 and conflict[2]["error"]["code"] == "idempotency_conflict"
    elsewhere = await post_command(gw, gw_keys["b"], other, **idem)
    assert elsewhere[0] == 202 and elsewhere[2]["id"] != first[2]["id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "ensure-user", "user": "alice", "admin": True}, "admin"),
        ({"type": "ensure-user", "user": "Alice"}, "user"),
        ({"type": "ensure-user", "user": "al ice"}, "user"),
        ({"type": "save", "user": "alice", "path": "/home/alice/a.ipynb"}, "path"),
        ({"type": "save", "user": "alice", "path": "../bob/a.ipynb"}, "path"),
        ({"type": "open", "user": "alice", "path": "a.txt"}, "path"),
        ({"type": "create", "user": "alice", "folder": "/abs"}, "folder"),
        ({"type": "restore", "user": "alice", "path": "a.ipynb", "version_id": "x"}, "version_id"),
        ({"type": "format-disk", "user": "alice"}, "type"),
        ({"user": "alice"}, "type"),
    ],
)
async def test_invalid_commands_are_422_naming_the_field(
    gw_keys: dict[str, str],
    gw: aiohttp.ClientSession,
    body: dict[str, Any],
    field: str,
) -> None:
    status, _, answer = await post_command(gw, gw_keys["a"], body)
    assert status == 422
    assert answer["error"]["code"] == "invalid_command"
    assert field in [d["field"] for d in answer["error"]["details"]], answer
    assert field in answer["error"]["message"]


async def test_malformed_requests_get_json_errors(
    gw_keys: dict[str, str], gw: aiohttp.ClientSession
) -> None:
    auth = bearer(gw_keys["a"])
    json_type = {"Content-Type": "application/json", **auth}
    cases: list[tuple[str, str, dict[str, str], bytes, int, str]] = [
        ("POST", "/v1/commands", json_type, b"{oops", 400, "invalid_json"),
        ("POST", "/v1/commands", {**auth, "Content-Type": "text/plain"}, b"{}", 415, ""),
        ("POST", "/v1/commands", json_type, b"{" + b" " * MAX_BODY_BYTES + b"}", 413, ""),
        ("POST", "/v1/commands", {**json_type, "Idempotency-Key": "a b"}, b"{}", 400, ""),
        ("GET", "/v1/no-such-thing", auth, b"", 404, "not_found"),
        ("DELETE", "/v1/commands", auth, b"", 405, "method_not_allowed"),
        ("GET", f"/v1/commands/{uuid.uuid4()}?wait=soon", auth, b"", 422, "invalid_parameter"),
        ("GET", "/v1/users/Not_Valid/notebooks", auth, b"", 422, "invalid_parameter"),
        ("GET", "/v1/users/alice/versions?path=../x.ipynb", auth, b"", 422, ""),
    ]
    for method, path, headers, data, status, code in cases:
        async with gw.request(method, path, headers=headers, data=data) as resp:
            assert resp.status == status, (method, path, await resp.text())
            assert resp.content_type == "application/json"
            error = (await resp.json())["error"]
            assert error["message"]
            assert not code or error["code"] == code
            if status == 405:
                assert resp.headers["Allow"] == "POST"


async def test_401_for_who_you_are_403_for_what_you_may_do(
    gw_keys: dict[str, str], gw: aiohttp.ClientSession
) -> None:
    command = {"type": "ensure-user", "user": "lim-dave"}
    for headers, words in (
        ({}, "missing Authorization"),
        ({"Authorization": f"Basic {gw_keys['a']}"}, "Bearer"),
        (bearer("orch_not-a-key"), "unknown or revoked"),
    ):
        async with gw.post("/v1/commands", json=command, headers=headers) as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
            assert words in (await resp.json())["error"]["message"]

    assert (await post_command(gw, gw_keys["limited"], command))[0] == 202
    wrong_type = await post_command(gw, gw_keys["limited"], {**command, "type": "start-server"})
    assert wrong_type[0] == 403
    assert "may not send 'start-server'" in wrong_type[2]["error"]["message"]
    wrong_user = await post_command(gw, gw_keys["limited"], {**command, "user": "erin"})
    assert wrong_user[0] == 403
    assert "starts with 'lim-'" in wrong_user[2]["error"]["message"]
    async with gw.get("/v1/users/erin/notebooks", headers=bearer(gw_keys["limited"])) as resp:
        assert resp.status == 403


async def test_an_app_cannot_see_another_apps_command(
    gw_keys: dict[str, str], gw: aiohttp.ClientSession
) -> None:
    _, _, mine = await post_command(gw, gw_keys["a"], {"type": "ensure-user", "user": "frank"})
    async with gw.get(f"/v1/commands/{mine['id']}", headers=bearer(gw_keys["b"])) as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "not_found"
    async with gw.get(f"/v1/commands/{mine['id']}", headers=bearer(gw_keys["a"])) as resp:
        assert resp.status == 200
        assert (await resp.json())["id"] == mine["id"]


async def test_revoked_key_stops_working_within_the_cache_ttl(
    gateway_stack: LocalStack, gw: aiohttp.ClientSession
) -> None:
    key = gateway_stack.issue_app_key("app-revoked")
    command = {"type": "ensure-user", "user": "grace"}
    assert (await post_command(gw, key, command))[0] == 202  # now cached
    prefix = key[:12]
    await asyncio.to_thread(gateway_stack.orchestrator_cli, "keys", "revoke", prefix)
    revoked_at = time.monotonic()
    while (status := (await post_command(gw, key, command))[0]) == 202:
        # no event announces a revocation: poll, bounded by the documented TTL
        assert time.monotonic() - revoked_at < AUTH_CACHE_SECONDS + 5
        await asyncio.sleep(0.1)
    assert status == 401


async def test_metrics_count_accepts_rejections_and_confirm_latency(
    gw_keys: dict[str, str], gw: aiohttp.ClientSession
) -> None:
    async def scrape() -> dict[str, float]:
        async with gw.get("/metrics") as resp:
            assert resp.status == 200
            text = await resp.text()
        values = {}
        for line in text.splitlines():
            if line.startswith("orch_") and " " in line:
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    accepted = 'orch_commands_accepted_total{type="stop-server"}'
    rejected = 'orch_commands_rejected_total{reason="invalid_command"}'
    confirmed = 'orch_publish_confirm_seconds_count{exchange="orch.commands"}'
    route = 'orch_http_request_seconds_count{method="%s",route="%s",status="%s"}'
    posted_202 = route % ("POST", "/v1/commands", "202")
    posted_422 = route % ("POST", "/v1/commands", "422")
    status_404 = route % ("GET", "/v1/commands/{command_id}", "404")
    before = await scrape()
    assert (await post_command(gw, gw_keys["a"], {"type": "stop-server", "user": "hal"}))[0] == 202
    assert (await post_command(gw, gw_keys["a"], {"type": "stop-server", "user": "H"}))[0] == 422
    headers = {"Authorization": f"Bearer {gw_keys['a']}"}
    async with gw.get(f"/v1/commands/{uuid.uuid4()}", headers=headers) as resp:
        assert resp.status == 404
    after = await scrape()
    assert after[accepted] == before.get(accepted, 0) + 1
    assert after[rejected] == before.get(rejected, 0) + 1
    assert after[confirmed] == before.get(confirmed, 0) + 1
    for series in (posted_202, posted_422, status_404):  # by route template, not raw path
        assert after[series] == before.get(series, 0) + 1, series


async def test_health_and_openapi_are_public(gw: aiohttp.ClientSession) -> None:
    async with gw.get("/healthz") as resp:
        assert resp.status == 200
    async with gw.get("/readyz") as resp:
        assert resp.status == 200
        assert (await resp.json())["checks"] == {"broker": "ok", "database": "ok"}
    async with gw.get("/openapi.json") as resp:
        assert resp.status == 200
        document = await resp.json()
    assert document["openapi"].startswith("3.")
    assert "/v1/commands" in document["paths"]


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (
            b'{"type": "stop-server", "user": "dup", "type": "ensure-user"}',
            "duplicate key 'type'",
        ),
        (b'{"type": "ensure-user", "user": "nan", "x": NaN}', "NaN is not a JSON number"),
        (b'{"type": "ensure-user", "user": "inf", "x": [Infinity]}', "Infinity is not a JSON"),
    ],
)
async def test_bodies_that_readers_could_understand_differently_are_refused(
    gw_keys: dict[str, str],
    gw: aiohttp.ClientSession,
    raw: bytes,
    problem: str,
) -> None:
    headers = {**bearer(gw_keys["a"]), "Content-Type": "application/json"}
    async with gw.post("/v1/commands", data=raw, headers=headers) as resp:
        body = await resp.json()
        assert resp.status == 400, body
    assert body["error"]["code"] == "invalid_json"
    assert problem in body["error"]["message"]


@pytest.mark.parametrize(
    ("path", "field"),
    [("/v1/commands/not-a-uuid", "command_id"), ("/v1/versions/not-a-uuid", "version_id")],
)
async def test_a_malformed_id_in_a_path_is_422_naming_it(
    gw_keys: dict[str, str], gw: aiohttp.ClientSession, path: str, field: str
) -> None:
    async with gw.get(path, headers={"Authorization": f"Bearer {gw_keys['a']}"}) as resp:
        assert resp.status == 422
        error = (await resp.json())["error"]
    assert error["code"] == "invalid_parameter"
    assert [d["field"] for d in error["details"]] == [field]
