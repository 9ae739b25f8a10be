"""Apps are tenants: one person in two apps has two workspaces, and each app reaches
only its own, through every endpoint, the event stream and a launched browser session.

Tried as an attacker would: app Y holds a valid, unrestricted key and knows (or
guesses) app X's command ids, version ids, the person's name and the notebook path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from devstack.command_client import CommandClient, JupyterFiles, notebook_with
from devstack.stack import LocalStack
from schemas.workspaces import workspace_name
from tests.e2e.embedding_steps import launch_link

SECRET_PATH = "restricted/secret.ipynb"
MARKER = "x-only: 4711"


@pytest.fixture(scope="module")
def keys(stack: LocalStack) -> dict[str, str]:
    """Unrestricted keys of two apps (no user prefix: the default an operator issues)."""
    return {app: stack.issue_app_key(app) for app in ("iso-x", "iso-y")}


async def _get(
    http: aiohttp.ClientSession, stack: LocalStack, key: str, path: str
) -> tuple[int, Any]:
    async with http.get(
        stack.gateway_url + path, headers={"Authorization": f"Bearer {key}"}
    ) as resp:
        return resp.status, await resp.json()


@contextlib.asynccontextmanager
async def _stream(
    stack: LocalStack, key: str, query: str
) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
    """The app's SSE stream; events arrive in the yielded queue."""
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    connected = asyncio.Event()

    async def read() -> None:
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                f"{stack.gateway_url}/v1/events{query}",
                headers={"Authorization": f"Bearer {key}"},
            ) as resp,
        ):
            async for line in resp.content:
                if line.startswith(b": connected"):
                    connected.set()
                if line.startswith(b"data: "):
                    await events.put(json.loads(line[6:]))

    reader = asyncio.create_task(read())
    try:
        async with asyncio.timeout(30):
            await connected.wait()
        yield events
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


async def test_one_person_in_two_apps_has_two_workspaces_that_never_meet(
    stack: LocalStack, keys: dict[str, str], http: aiohttp.ClientSession, username: str
) -> None:
    x = CommandClient(http, stack.gateway_url, keys["iso-x"])
    y = CommandClient(http, stack.gateway_url, keys["iso-y"])
    files = JupyterFiles(http, stack.hub.url, stack.service_token, app="iso-x")
    person = username

    async with (
        _stream(stack, keys["iso-x"], f"?user={person}") as x_events,
        _stream(stack, keys["iso-y"], "") as y_events,
        _stream(stack, keys["iso-y"], f"?user={person}") as y_person_events,
    ):
        await x.succeed({"type": "open", "user": person, "path": SECRET_PATH})
        await files.write(person, SECRET_PATH, notebook_with(MARKER))
        save_id = await x.submit({"type": "save", "user": person, "path": SECRET_PATH})
        saved = await x.wait(save_id)
        assert saved["status"] == "succeeded", saved
        version_id = saved["result"]["version_id"]
        async with asyncio.timeout(60):
            while (await x_events.get())["data"].get("command_id") != save_id:
                pass
        # Y's own command: the proof that its streams work, and the marker of their end
        await y.succeed({"type": "ensure-user", "user": person})
        for stream in (y_events, y_person_events):
            async with asyncio.timeout(60):
                seen = [await stream.get()]
                while seen[-1]["data"].get("command_id") is None:
                    seen.append(await stream.get())
            assert {event["appid"] for event in seen} == {"iso-y"}, seen
            assert all(MARKER not in json.dumps(event) for event in seen)

    # every read of X's things with Y's key: 404, or Y's own (empty) workspace
    assert (await _get(http, stack, keys["iso-y"], f"/v1/commands/{save_id}"))[0] == 404
    assert (await _get(http, stack, keys["iso-y"], f"/v1/versions/{version_id}"))[0] == 404
    status, listing = await _get(http, stack, keys["iso-y"], f"/v1/users/{person}/notebooks")
    assert (status, listing["notebooks"]) == (200, [])
    status, versions = await _get(
        http, stack, keys["iso-y"], f"/v1/users/{person}/versions?path={SECRET_PATH}"
    )
    assert (status, versions["versions"]) == (200, [])
    status, own = await _get(http, stack, keys["iso-x"], f"/v1/versions/{version_id}")
    assert status == 200 and MARKER in json.dumps(own["content"])  # X itself still reads it

    # commands of Y cannot restore X's version, nor open X's file
    stolen = await y.run(
        {"type": "restore", "user": person, "path": "loot.ipynb", "version_id": version_id}
    )
    assert (stolen["status"], stolen["error"]["code"]) == ("failed", "not_found"), stolen
    opened = await y.succeed({"type": "open", "user": person, "path": SECRET_PATH})
    assert opened["restored_version_id"] is None
    y_files = JupyterFiles(http, stack.hub.url, stack.service_token, app="iso-y")
    y_copy = await y_files.read(person, SECRET_PATH)
    assert y_copy is not None and MARKER not in json.dumps(y_copy)

    # a browser session launched by Y is confined to Y's workspace by the Hub
    launch_url = await launch_link(http, stack, keys["iso-y"], person, SECRET_PATH)
    jar = aiohttp.CookieJar(unsafe=True)  # cookies of 127.0.0.1, as a browser keeps them
    async with aiohttp.ClientSession(cookie_jar=jar) as browser:
        async with browser.get(launch_url) as resp:
            assert resp.status == 200
            assert f"/user/{workspace_name('iso-y', person)}/" in str(resp.url)
        x_file = (
            f"{stack.hub.url}/user/{workspace_name('iso-x', person)}"
            f"/api/contents/{SECRET_PATH}?content=1"
        )
        async with browser.get(x_file) as resp:
            body = await resp.text()
            assert resp.status in (403, 404), (resp.status, str(resp.url))
            assert MARKER not in body
        y_file = (
            f"{stack.hub.url}/user/{workspace_name('iso-y', person)}"
            f"/api/contents/{SECRET_PATH}?content=1"
        )
        async with browser.get(y_file) as resp:
            assert resp.status == 200  # the session works, in Y's workspace only


async def test_a_guessed_version_or_command_id_is_404_not_403(
    stack: LocalStack, keys: dict[str, str], http: aiohttp.ClientSession
) -> None:
    for path in (f"/v1/versions/{uuid.uuid4()}", f"/v1/commands/{uuid.uuid4()}"):
        status, body = await _get(http, stack, keys["iso-y"], path)
        assert status == 404 and body["error"]["code"] == "not_found"
