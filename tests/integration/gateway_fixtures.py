"""Fixtures for the gateway tests: ONE broker + gateway stack (no Hub, no consumers) per
session, shared by the ``test_gateway_*`` modules that load this plugin with
``pytest_plugins = ["tests.integration.gateway_fixtures"]``.

Nothing consumes the partition queues of this stack, so a test can read exactly what
the gateway published and play the consumer itself (see ``gateway_client``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from devstack.stack import LocalStack, StackOptions
from tests.integration.gateway_client import (
    AUTH_CACHE_SECONDS,
    MAX_BODY_BYTES,
    MAX_WAIT_SECONDS,
)


@pytest.fixture(scope="session")
def gateway_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """Broker + gateway only; short auth cache so revocation tests stay quick."""
    state: Path = tmp_path_factory.mktemp("gateway-stack")
    stack = LocalStack(
        state,
        StackOptions(
            consumers=0,
            hub=False,
            hub_service=False,
            extra_env={
                "ORCH_AUTH_CACHE_SECONDS": str(AUTH_CACHE_SECONDS),
                "ORCH_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
                "ORCH_MAX_WAIT_SECONDS": str(MAX_WAIT_SECONDS),
            },
        ),
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def gw_keys(gateway_stack: LocalStack) -> dict[str, str]:
    """Keys of two unrestricted apps and one limited to ensure-user for users 'lim-*'."""
    return {
        "a": gateway_stack.issue_app_key("app-a"),
        "b": gateway_stack.issue_app_key("app-b"),
        "limited": gateway_stack.issue_app_key(
            "app-limited", types="ensure-user", user_prefix="lim-"
        ),
    }


@pytest.fixture
async def gw(gateway_stack: LocalStack) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client whose relative URLs go to the gateway."""
    async with aiohttp.ClientSession(
        base_url=gateway_stack.gateway_url, timeout=aiohttp.ClientTimeout(total=60)
    ) as session:
        yield session
