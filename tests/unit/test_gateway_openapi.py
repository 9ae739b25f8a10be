"""The OpenAPI document covers every route and says what the validators really accept."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from orchestrator.gateway.app import create_app
from orchestrator.gateway.openapi import build_openapi
from runtime.settings import GatewaySettings
from schemas.commands import CommandType
from schemas.names import USERNAME_PATTERN


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_openapi(GatewaySettings())


def _command_schema(document: dict[str, Any]) -> dict[str, Any]:
    """The ``Command`` schema with its references resolvable by a plain validator."""
    schemas = document["components"]["schemas"]
    return {**schemas["Command"], "components": {"schemas": schemas}}


def test_every_route_of_the_app_is_documented(document: dict[str, Any]) -> None:
    app = create_app(GatewaySettings())
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert served == documented


def test_command_bodies_follow_the_pydantic_models(document: dict[str, Any]) -> None:
    validator = Draft202012Validator(_command_schema(document))
    for kind in CommandType:
        body: dict[str, Any] = {"type": kind.value, "user": "alice"}
        if kind in (CommandType.SAVE, CommandType.OPEN, CommandType.RESTORE, CommandType.CREATE):
            body["path"] = "work/a.ipynb"
        assert validator.is_valid(body), (body, list(validator.iter_errors(body)))
    rejected = [
        {"user": "alice"},  # the discriminator is required on the wire
        {"type": "ensure-user", "user": "Alice"},
        {"type": "ensure-user", "user": "alice", "extra": 1},
        {"type": "create", "user": "alice", "path": "a.ipynb", "folder": "f"},
        {"type": "create", "user": "alice"},
        {"type": "save", "user": "alice"},
    ]
    for body in rejected:
        assert not validator.is_valid(body), body


def test_names_and_headers_documented(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["EnsureUser"]["properties"]["user"]["pattern"] == USERNAME_PATTERN
    accept = document["paths"]["/v1/commands"]["post"]
    assert set(accept["responses"]) == {
        "202",
        "400",
        "401",
        "403",
        "409",
        "413",
        "415",
        "422",
        "503",
    }
    unavailable = document["components"]["responses"]["BusUnavailable"]
    assert unavailable["headers"]["Retry-After"]["required"] is True
    assert document["components"]["securitySchemes"]["appKey"]["scheme"] == "bearer"
    assert document["paths"]["/healthz"]["get"]["security"] == []
