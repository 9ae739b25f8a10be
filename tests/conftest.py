"""Fixtures shared by integration and end-to-end tests: the REAL stack, started once.

The stack (private RabbitMQ, JupyterHub with real single-user servers, gateway,
consumers) is started through the same module ``make run`` uses, on free loopback
ports under a temporary directory, and stopped (every PID) at the end of the session.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from orchestrator.localstack.stack import LocalStack, StackOptions


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The shared stack: two consumers, hub service, four partitions."""
    state: Path = tmp_path_factory.mktemp("stack")
    local = LocalStack(state, StackOptions(consumers=2, hub_service=False))
    local.start()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="session")
def app_key(stack: LocalStack) -> str:
    """An API key of an unrestricted app named 'tests'."""
    return stack.issue_app_key("tests")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client session."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        yield session


@pytest.fixture
def username() -> str:
    """A fresh, valid JupyterHub username."""
    return f"u{uuid.uuid4().hex[:10]}"
