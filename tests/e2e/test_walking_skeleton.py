"""One command end to end through the real gateway, broker, consumer and Hub."""

from __future__ import annotations

import aiohttp

from devstack.stack import LocalStack
from schemas.workspaces import workspace_name
from tests.conftest import TEST_APP


async def test_ensure_user_end_to_end(
    stack: LocalStack, app_key: str, http: aiohttp.ClientSession, username: str
) -> None:
    auth = {"Authorization": f"Bearer {app_key}"}
    async with http.post(
        f"{stack.gateway_url}/v1/commands",
        json={"type": "ensure-user", "user": username},
        headers={**auth, "X-Correlation-ID": "skeleton-1"},
    ) as resp:
        assert resp.status == 202, await resp.text()
        accepted = await resp.json()
    assert accepted["status"] == "accepted"

    async with http.get(
        f"{stack.gateway_url}/v1/commands/{accepted['id']}?wait=30", headers=auth
    ) as resp:
        assert resp.status == 200
        done = await resp.json()
    assert done["status"] == "succeeded", done
    assert done["result"] == {"user": username, "created": True}
    assert done["correlation_id"] == "skeleton-1"
    assert done["attempts"] == 1

    async with http.get(
        f"{stack.hub.api_url}/users/{workspace_name(TEST_APP, username)}",
        headers={"Authorization": f"token {stack.service_token}"},
    ) as resp:
        assert resp.status == 200  # the person's workspace in the tests' app
