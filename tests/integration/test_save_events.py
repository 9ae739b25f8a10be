"""Save events from inside Jupyter, end to end: real Hub, single-user servers, broker.

A PUT to a user's contents API (what Ctrl-S or autosave sends) is seen by the save
extension in that server, forwarded to the Hub-managed hub service with the server's
token, published onto the user's command partition, stored by a consumer and
announced as ``notebook.saved`` to a subscriber bound to the events exchange.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import nbformat
import psutil
import pytest

from consumers.hub_client import HubClient
from consumers.notebook_codec import canonicalise, empty_notebook
from devstack.command_client import register_workspace
from devstack.stack import LocalStack, StackOptions
from orchestrator.operator.subscribe import EventSubscription, ReceivedEvent, subscribe_events
from schemas.export import event_schema_name, load_schema
from schemas.workspaces import workspace_name
from tests.conftest import TEST_APP

EVENT_TIMEOUT = 60.0


def notebook(text: str) -> dict[str, Any]:
    """A valid notebook with one markdown cell holding ``text``."""
    content = empty_notebook()
    content["cells"] = [json.loads(json.dumps(nbformat.v4.new_markdown_cell(text)))]
    return content


def assert_matches_schema(received: ReceivedEvent) -> None:
    """The event validates against the checked-in JSON Schema of its type."""
    schema = load_schema(event_schema_name(received.event["type"]))
    jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(received.event)


def about(user: str, kind: str, path: str | None = None) -> Callable[[ReceivedEvent], bool]:
    """Matcher for an event of ``kind`` about ``user`` (and ``path``/``new_path``)."""

    def matches(received: ReceivedEvent) -> bool:
        data = received.data
        if not received.event.get("type", "").endswith(f".{kind}.v1"):
            return False
        return data.get("user") == user and path in (None, data.get("path"), data.get("new_path"))

    return matches


async def next_event(events: EventSubscription, matches: Callable[[ReceivedEvent], bool]) -> Any:
    """The next matching event, validated against its schema."""
    async with asyncio.timeout(EVENT_TIMEOUT):
        received = await events.first(matches)
    assert_matches_schema(received)
    return received


class JupyterUser:
    """A person's workspace in the tests' app: its Hub user with a running server,
    driven through the Hub's proxy. ``name`` is the person (what apps and events say),
    ``hub_user`` the workspace's Hub user."""

    def __init__(self, stack: LocalStack, http: aiohttp.ClientSession, name: str) -> None:
        self.stack = stack
        self.http = http
        self.name = name
        self.hub_user = workspace_name(TEST_APP, name)
        self._auth = {"Authorization": f"token {stack.service_token}"}

    async def start(self) -> JupyterUser:
        """Record the workspace, create its Hub user and start the server (through the
        consumers' own Hub client)."""
        await register_workspace(self.stack.database_url, TEST_APP, self.name)
        hub = HubClient(self.http, self.stack.hub.api_url, self.stack.service_token)
        await hub.ensure_user(self.hub_user)
        await hub.start_server(self.hub_user)
        return self

    def contents_url(self, path: str) -> str:
        """The contents API URL of ``path`` in this workspace's server."""
        return f"{self.stack.hub.url}/user/{self.hub_user}/api/contents/{path}"

    async def save(self, path: str, content: dict[str, Any]) -> float:
        """PUT ``content`` as Ctrl-S does; returns the request's seconds (asserts success)."""
        started = time.monotonic()
        body = {"type": "notebook", "format": "json", "content": content}
        async with self.http.put(self.contents_url(path), json=body, headers=self._auth) as resp:
            assert resp.status in (200, 201), await resp.text()
        return time.monotonic() - started

    async def rename(self, old: str, new: str) -> None:
        """PATCH ``old`` to ``new`` as the file browser does."""
        async with self.http.patch(
            self.contents_url(old), json={"path": new}, headers=self._auth
        ) as resp:
            assert resp.status == 200, await resp.text()

    async def delete(self, path: str) -> None:
        """DELETE ``path``."""
        async with self.http.delete(self.contents_url(path), headers=self._auth) as resp:
            assert resp.status == 204, await resp.text()

    async def mint_token(self) -> str:
        """A new token of this user (as the Hub gives servers), minted as the Hub admin."""
        async with self.http.post(
            f"{self.stack.hub.api_url}/users/{self.hub_user}/tokens",
            json={"expires_in": 600, "note": "save-events test"},
            headers={"Authorization": f"token {self.stack.hub_admin_token}"},
        ) as resp:
            assert resp.status == 201, await resp.text()
            token: str = (await resp.json())["token"]
        return token


def fresh_name() -> str:
    """A new valid username."""
    return f"s{uuid.uuid4().hex[:10]}"


async def gateway_get(stack: LocalStack, http: aiohttp.ClientSession, key: str, path: str) -> Any:
    """GET a gateway API path as the tests' app; asserts 200."""
    async with http.get(
        f"{stack.gateway_url}{path}", headers={"Authorization": f"Bearer {key}"}
    ) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def test_save_in_jupyter_publishes_saved_event(
    stack: LocalStack, app_key: str, http: aiohttp.ClientSession
) -> None:
    user = await JupyterUser(stack, http, fresh_name()).start()
    async with subscribe_events(stack.broker.amqp_url, ["notebook"]) as events:
        first = notebook("first draft")
        await user.save("analysis.ipynb", first)
        saved = await next_event(events, about(user.name, "notebook.saved", "analysis.ipynb"))
        assert saved.data["sha256"] == canonicalise(first).sha256
        assert saved.data["origin"] == "jupyter"
        assert saved.event["subject"] == f"{user.name}/analysis.ipynb"

        version_path = f"/v1/versions/{saved.data['version_id']}"
        version = await gateway_get(stack, http, app_key, version_path)
        assert version["sha256"] == saved.data["sha256"]
        assert version["origin"] == "jupyter"
        assert canonicalise(version["content"]).sha256 == saved.data["sha256"]

        # An identical save stores nothing; the next change is the next event of this user.
        await user.save("analysis.ipynb", first)
        second = notebook("second draft")
        await user.save("analysis.ipynb", second)
        again = await next_event(events, about(user.name, "notebook.saved"))
        assert again.data["sha256"] == canonicalise(second).sha256
        assert again.data["version_id"] != saved.data["version_id"]

    listing = await gateway_get(
        stack, http, app_key, f"/v1/users/{user.name}/versions?path=analysis.ipynb"
    )
    assert [v["sha256"] for v in listing["versions"]] == [
        canonicalise(second).sha256,
        canonicalise(first).sha256,
    ]


async def test_rename_and_delete_in_jupyter_publish_events(
    stack: LocalStack, app_key: str, http: aiohttp.ClientSession
) -> None:
    user = await JupyterUser(stack, http, fresh_name()).start()
    async with subscribe_events(stack.broker.amqp_url, ["notebook"]) as events:
        await user.save("old.ipynb", notebook("to be renamed"))
        saved = await next_event(events, about(user.name, "notebook.saved", "old.ipynb"))

        await user.rename("old.ipynb", "new.ipynb")
        renamed = await next_event(events, about(user.name, "notebook.renamed"))
        assert (renamed.data["old_path"], renamed.data["new_path"]) == ("old.ipynb", "new.ipynb")

        await user.delete("new.ipynb")
        deleted = await next_event(events, about(user.name, "notebook.deleted"))
        assert deleted.data["path"] == "new.ipynb"

    notebooks = await gateway_get(stack, http, app_key, f"/v1/users/{user.name}/notebooks")
    assert [(n["path"], n["deleted"]) for n in notebooks["notebooks"]] == [("new.ipynb", True)]
    versions = await gateway_get(
        stack, http, app_key, f"/v1/users/{user.name}/versions?path=new.ipynb"
    )
    assert [v["id"] for v in versions["versions"]] == [saved.data["version_id"]]


async def test_notifications_are_checked_before_anything_is_published(
    stack: LocalStack, app_key: str, http: aiohttp.ClientSession
) -> None:
    owner = await JupyterUser(stack, http, fresh_name()).start()
    intruder = JupyterUser(stack, http, fresh_name())
    await HubClient(http, stack.hub.api_url, stack.service_token).ensure_user(intruder.hub_user)
    notify_url = f"http://127.0.0.1:{stack.notify_port}/notify"
    forged = {"user": owner.hub_user, "action": "delete", "path": "kept.ipynb"}

    async with subscribe_events(stack.broker.amqp_url, ["notebook"]) as events:
        await owner.save("kept.ipynb", notebook("must survive"))
        await next_event(events, about(owner.name, "notebook.saved", "kept.ipynb"))

        intruder_token = await intruder.mint_token()
        async with http.post(
            notify_url, json=forged, headers={"Authorization": f"token {intruder_token}"}
        ) as resp:
            assert resp.status == 403
            assert (await resp.json())["error"]["code"] == "forbidden"
        async with http.post(
            notify_url, json=forged, headers={"Authorization": "token not-a-hub-token"}
        ) as resp:
            assert resp.status == 401
        owner_token = await owner.mint_token()
        async with http.post(
            notify_url,
            json={**forged, "action": "explode"},
            headers={"Authorization": f"token {owner_token}"},
        ) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["code"] == "bad_request"

        # Had the forged delete been published, it would precede this save on the
        # owner's partition: the next event of the owner must be this save.
        await owner.save("later.ipynb", notebook("after the forgery"))
        after = await next_event(events, about(owner.name, "notebook.saved"))
        assert after.data["path"] == "later.ipynb"

    notebooks = await gateway_get(stack, http, app_key, f"/v1/users/{owner.name}/notebooks")
    assert {n["path"]: n["deleted"] for n in notebooks["notebooks"]} == {
        "kept.ipynb": False,
        "later.ipynb": False,
    }


async def test_hub_service_health_and_metrics_only_on_its_loopback_port(
    stack: LocalStack, http: aiohttp.ClientSession
) -> None:
    direct = f"http://127.0.0.1:{stack.notify_port}"
    proxied = f"{stack.hub.url}/services/orchestrator-notify"
    async with http.get(f"{direct}/readyz") as resp:
        assert resp.status == 200, await resp.text()
    async with http.get(f"{direct}/metrics") as resp:
        assert "orch_contents_notifications_total" in await resp.text()
    for route in ("healthz", "readyz", "metrics"):  # the public proxy routes none of them
        async with http.get(f"{proxied}/{route}") as resp:
            assert resp.status == 404, route
    for base in (direct, proxied):
        async with http.post(f"{base}/notify", json={}) as resp:
            assert resp.status == 401


async def test_orchestrator_subscribe_prints_the_save(
    stack: LocalStack, http: aiohttp.ClientSession
) -> None:
    user = await JupyterUser(stack, http, fresh_name()).start()
    argv = ["-m", "orchestrator", "subscribe", "--types", "notebook.saved", "--user", user.name]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *argv,
        "--json",
        "--count",
        "1",
        "--timeout",
        str(EVENT_TIMEOUT),
        env=stack.process_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(EVENT_TIMEOUT):
            banner = await process.stdout.readline()
            assert banner.startswith(b"# subscribed to notebook.saved.#"), banner
            content = notebook("seen by the CLI")
            await user.save("cli.ipynb", content)
            line = await process.stdout.readline()
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    event = json.loads(line)
    assert (event["data"]["user"], event["data"]["path"]) == (user.name, "cli.ipynb")
    assert event["data"]["sha256"] == canonicalise(content).sha256


# --- with the hub service stopped: its own stack, as the test kills a process -----------


@pytest.fixture(scope="module")
def outage_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A private stack whose hub service this module may stop."""
    state: Path = tmp_path_factory.mktemp("save-outage")
    local = LocalStack(state, StackOptions(consumers=1, hub_service=True))
    local.start()
    try:
        yield local
    finally:
        local.stop()


def hub_service_process(stack: LocalStack) -> psutil.Process | None:
    """The running hub service process: a child of the Hub running ``hub-service``."""
    for pid in stack.hub.process_ids():
        try:
            process = psutil.Process(pid)
            if "hub-service" in process.cmdline() and process.status() != psutil.STATUS_ZOMBIE:
                return process
        except psutil.Error:
            continue
    return None


async def port_refuses(port: int) -> bool:
    """True if nothing accepts connections on 127.0.0.1:``port``."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    writer.close()
    await writer.wait_closed()
    return False


@pytest.mark.slow
async def test_saves_succeed_while_hub_service_is_down_and_arrive_later(
    outage_stack: LocalStack, http: aiohttp.ClientSession
) -> None:
    stack = outage_stack
    user = await JupyterUser(stack, http, fresh_name()).start()
    async with subscribe_events(stack.broker.amqp_url, ["notebook"]) as events:
        await user.save("warmup.ipynb", notebook("chain works"))
        await next_event(events, about(user.name, "notebook.saved", "warmup.ipynb"))

        # The Hub restarts a managed service it sees exit (it polls every ~30 s), so
        # retry the kill if it came back before the saves were made while it was down.
        for _ in range(3):
            service = hub_service_process(stack)
            assert service is not None, "hub service process not found under the Hub"
            old_pid = service.pid
            service.kill()
            service.wait(timeout=30)
            drafts = [notebook(f"offline draft {i}") for i in range(3)]
            for draft in drafts:
                assert await user.save("offline.ipynb", draft) < 5.0
            if await port_refuses(stack.notify_port):
                break
        else:
            pytest.fail("the hub service came back before any save was made while it was down")

        saved = await next_event(events, about(user.name, "notebook.saved", "offline.ipynb"))
        assert saved.data["sha256"] == canonicalise(drafts[-1]).sha256
        restarted = hub_service_process(stack)
        assert restarted is not None and restarted.pid != old_pid
