"""The orchestrator's Hub role holds only what its code uses: the REAL Hub refuses the
rest when asked with the orchestrator's own service token."""

from __future__ import annotations

import aiohttp
import pytest

from devstack.stack import LocalStack
from hub_service.jupyterhub_contract import ORCHESTRATOR_SCOPES


async def _call(
    http: aiohttp.ClientSession, method: str, url: str, token: str, body: object = None
) -> int:
    headers = {"Authorization": f"token {token}"}
    async with http.request(method, url, json=body, headers=headers) as resp:
        return resp.status


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/users/{user}/tokens", {"expires_in": 60}),  # a token to act as the user
        ("GET", "/users/{user}/tokens", None),  # the user's tokens
        ("PATCH", "/users/{user}", {"admin": True}),  # make the user a Hub admin
        ("GET", "/groups", None),
        ("POST", "/groups/orchestrated", None),
        ("POST", "/proxy", None),  # re-sync the proxy's routing table
        ("POST", "/shutdown", None),
    ],
)
async def test_the_hub_refuses_out_of_role_calls_made_with_the_service_token(
    stack: LocalStack,
    http: aiohttp.ClientSession,
    username: str,
    method: str,
    path: str,
    body: object,
) -> None:
    api = stack.hub.api_url
    created = await _call(http, "POST", f"{api}/users/{username}", stack.service_token)
    assert created == 201  # in role: ensure-user
    url = api + path.format(user=username)
    assert await _call(http, method, url, stack.service_token, body) == 403


async def test_the_role_is_the_one_the_code_documents(
    stack: LocalStack, http: aiohttp.ClientSession
) -> None:
    headers = {"Authorization": f"token {stack.service_token}"}
    async with http.get(f"{stack.hub.api_url}/user", headers=headers) as resp:
        assert resp.status == 200
        held = set((await resp.json())["scopes"])
    assert set(ORCHESTRATOR_SCOPES) <= held
    assert not {"tokens", "read:tokens", "admin:servers", "admin:groups", "shutdown"} & held
