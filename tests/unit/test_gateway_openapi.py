"""The OpenAPI document covers every route and says what the validators really accept."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from orchestrator.gateway.app import create_app
from orchestrator.gateway.openapi import build_openapi
from orchestrator.gateway.openapi_models import RESULT_MODELS
from runtime.settings import GatewaySettings
from schemas.commands import INTERNAL_COMMAND_TYPES, CommandType
from schemas.names import USERNAME_PATTERN

_V1, _V2 = "7f1c2a4e-0b0d-4c55-9a51-3f2b6f0e9d11", "0c8d3b52-52a4-4f0e-8d0c-6a1f5e7b2c33"
_NOW = "2026-01-02T03:04:05.678901+00:00"
# One result per command type, shaped as consumers/handlers.py builds them.
RESULTS: dict[str, dict[str, Any]] = {
    "ensure-user": {"user": "alice", "created": True},
    "start-server": {"user": "alice", "server_url": "http://hub.test/user/alice/"},
    "stop-server": {"user": "alice", "stopped": True, "was_running": False},
    "create": {"path": "work/Untitled.ipynb", "created": True},
    "restore": {
        "path": "a.ipynb",
        "version_id": _V1,
        "sha256": "ab" * 32,
        "latest_version_id": _V2,
    },
    "save": {
        "path": "a.ipynb",
        "version_id": _V1,
        "sha256": "ab" * 32,
        "size": 120,
        "new_version": False,
    },
    "open": {
        "path": "a.ipynb",
        "restored_version_id": None,
        "launch_url": "http://hub.test/hub/launch?code=x",
        "expires_at": _NOW,
    },
    "cull-server": {"user": "alice", "culled": True, "reason": "idle", "kept": ["a.ipynb"]},
    "move-user": {
        "user": "alice",
        "from_hub": "hub-1",
        "to_hub": "hub-2",
        "notebooks": ["a.ipynb", "sub/c.ipynb"],
        "stored": ["sub/c.ipynb"],
    },
}
APP_COMMAND_TYPES = [kind for kind in CommandType if kind not in INTERNAL_COMMAND_TYPES]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_openapi(GatewaySettings())


def _schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    """The schema ``name`` with its references resolvable by a plain validator."""
    schemas = document["components"]["schemas"]
    return {**schemas[name], "components": {"schemas": schemas}}


def _command_schema(document: dict[str, Any]) -> dict[str, Any]:
    """The ``Command`` schema with its references resolvable by a plain validator."""
    return _schema(document, "Command")


def _view(kind: str, **fields: Any) -> dict[str, Any]:
    """A ``CommandView`` answer of a succeeded ``kind`` command, ``fields`` replaced."""
    return {
        "id": _V2,
        "type": kind,
        "user": "alice",
        "status": "succeeded",
        "attempts": 1,
        "result": RESULTS[kind],
        "error": None,
        "correlation_id": "c-1",
        "created_at": _NOW,
        "updated_at": _NOW,
        "finished_at": _NOW,
        "status_url": f"http://127.0.0.1:8040/v1/commands/{_V2}",
        "progress": {"phase": "done", "updated_at": _NOW},
        **fields,
    }


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
    for kind in APP_COMMAND_TYPES:
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


def test_every_command_model_keeps_type_and_user_for_client_generators(
    document: dict[str, Any],
) -> None:
    """A top-level oneOf/anyOf/allOf makes openapi-python-client emit one model per
    branch without the command's own fields (CreateNotebook lost type and user)."""
    schemas = document["components"]["schemas"]
    union = schemas["Command"]
    assert union["discriminator"]["propertyName"] == "type"
    assert len(union["oneOf"]) == len(APP_COMMAND_TYPES) == len(union["discriminator"]["mapping"])
    for kind, ref in union["discriminator"]["mapping"].items():
        model = schemas[ref.rsplit("/", 1)[1]]
        assert {"oneOf", "anyOf", "allOf"}.isdisjoint(model), kind
        assert {"type", "user"} <= set(model["required"]), kind
        assert model["properties"]["type"]["const"] == kind
        assert model["properties"]["type"]["default"] == kind  # generated models fill it in


def test_create_takes_exactly_one_of_path_and_folder(document: dict[str, Any]) -> None:
    validator = Draft202012Validator(_schema(document, "CreateNotebook"))
    base = {"type": "create", "user": "alice"}
    for body in (
        {**base, "path": "a.ipynb"},
        {**base, "folder": "f"},
        {**base, "path": "a.ipynb", "folder": None},
        {**base, "path": None, "folder": "f"},
    ):
        assert validator.is_valid(body), body
    for body in (
        base,
        {**base, "path": "a.ipynb", "folder": "f"},
        {**base, "path": None, "folder": None},
    ):
        assert not validator.is_valid(body), body


def test_results_and_errors_are_typed_per_command_type(document: dict[str, Any]) -> None:
    assert set(RESULT_MODELS) == set(CommandType) == set(RESULTS)
    validator = Draft202012Validator(_schema(document, "CommandView"))
    for kind, result in RESULTS.items():
        assert validator.is_valid(_view(kind)), list(validator.iter_errors(_view(kind)))
        running = {"phase": "spawning", "percent": 50, "message": "m", "updated_at": _NOW}
        assert validator.is_valid(
            _view(kind, status="running", result=None, finished_at=None, progress=running)
        )
        assert not validator.is_valid(_view(kind, progress={**running, "percent": 101}))
        for other, wrong in RESULTS.items():
            if other != kind:  # another type's result: not this command's
                assert not validator.is_valid(_view(kind, result=wrong)), (kind, other)
        assert not validator.is_valid(_view(kind, result={**result, "extra": 1})), kind
    failed = _view("restore", status="failed", result=None)
    assert validator.is_valid({**failed, "error": {"code": "conflict", "message": "stale"}})
    for error in ({"code": "conflict"}, {"code": "x", "message": "m", "details": []}, "x"):
        assert not validator.is_valid({**failed, "error": error}), error


def test_result_models_tell_apart_by_required_fields(document: dict[str, Any]) -> None:
    """Generated clients parse ``result`` by trying each model until one has all its
    required fields: no model's required fields may include another's."""
    schemas = document["components"]["schemas"]
    required = {m.__name__: set(schemas[m.__name__]["required"]) for m in RESULT_MODELS.values()}
    for name, fields in required.items():
        for other, other_fields in required.items():
            assert name == other or not other_fields <= fields, (name, other)


def test_command_status_documents_404_and_422(document: dict[str, Any]) -> None:
    operation = document["paths"]["/v1/commands/{command_id}"]["get"]
    assert {"200", "401", "404", "422"} == set(operation["responses"])
    assert operation["parameters"][0]["schema"]["format"] == "uuid"
