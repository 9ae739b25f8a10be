"""The gateway's OpenAPI 3.1 document, served at ``GET /openapi.json``.

Command bodies come from the pydantic models in :mod:`schemas.commands`, responses
from :mod:`orchestrator.gateway.openapi_models`; the name rules the models enforce in
code (usernames, ``type`` being required as the discriminator, ``path`` xor
``folder``) are added to the generated schemas so the document says what the
gateway really accepts. Routes, status codes, headers and error bodies are written
out in :mod:`orchestrator.gateway.openapi_paths`; a schemathesis run against the
live gateway checks the two agree.

The document must also generate a working client (tests/integration/
test_generated_client.py runs openapi-python-client on it). Rules a client generator
would turn into extra types are therefore written with ``if``/``then``/``else``,
which validators enforce and generators ignore: a top-level ``oneOf`` on a command
model would make openapi-python-client emit one model per branch, without the
command's own fields. Every command model keeps ``type`` (a const, required, with
the const as default so a generated model fills it in) and ``user``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic.json_schema import models_json_schema

from orchestrator.gateway.middleware import CORRELATION_HEADER
from orchestrator.gateway.openapi_models import RESPONSE_MODELS, RESULT_MODELS
from orchestrator.gateway.openapi_paths import api_paths
from orchestrator.gateway.validation import IDEMPOTENCY_KEY_PATTERN
from runtime.settings import GatewaySettings
from schemas.commands import COMMAND_ADAPTER
from schemas.names import MAX_PATH_LENGTH, USERNAME_PATTERN

REF = "#/components/schemas/{model}"
_NULL = {"type": "null"}
routes = web.RouteTableDef()

_USERNAME = {
    "type": "string",
    "pattern": USERNAME_PATTERN,
    "maxLength": 64,
    "description": "A JupyterHub username: lowercase letters, digits, '.', '_', '-'.",
}
_PATH_RULES = (
    "A relative POSIX path inside the user's home: not absolute, no '..' or hidden "
    "('.'-prefixed) segments, no control characters, backslashes or :*?\"<>|, at most "
    f"{MAX_PATH_LENGTH} characters once normalised ('a//./b' becomes 'a/b')."
)


def _given(name: str) -> dict[str, Any]:
    """Matches an object whose ``name`` is present and a string (not absent, not null)."""
    return {"required": [name], "properties": {name: {"type": "string"}}}


def _command_schemas() -> dict[str, Any]:
    """Schemas of every command model plus ``Command`` (the discriminated union).

    Each model requires ``type`` (a const whose default is that const) and ``user``;
    ``CreateNotebook`` says "exactly one of path and folder" with ``if``/``then``/
    ``else`` (see the module docstring for why not ``oneOf``).
    """
    generated = COMMAND_ADAPTER.json_schema(ref_template=REF)
    models: dict[str, Any] = generated.pop("$defs")
    for model in models.values():
        props = model["properties"]
        # "type" has a default in the models but is required on the wire: it selects the
        # model. The default (== the const) stays: it only lets generated models fill it in.
        model["required"] = ["type", *(n for n in model["required"] if n != "type")]
        props["type"]["description"] = "The command type; required (it selects the model)."
        props["user"] = {**_USERNAME, "description": props["user"].get("description", "")}
        for name in ("path", "folder"):
            if name in props:
                rule = _PATH_RULES + (" Must end in '.ipynb'." if name == "path" else "")
                props[name]["description"] = rule
    models["CreateNotebook"].update(
        {  # exactly one of path and folder (the other absent or null)
            "if": _given("path"),
            "then": {"properties": {"folder": {"type": "null"}}},
            "else": _given("folder"),
        }
    )
    return {**models, "Command": generated}


def _result_by_type(types: list[tuple[str, str]]) -> dict[str, Any]:
    """``if type is T then result is T's result model or null, else ...`` for ``types``.

    A chain rather than an ``allOf`` of conditions: generators merge ``allOf`` into
    the model, while ``if``/``then``/``else`` is left to validators.
    """
    (kind, model), *rest = types
    rule: dict[str, Any] = {
        "if": {"required": ["type"], "properties": {"type": {"const": kind}}},
        "then": {"properties": {"result": {"oneOf": [{"$ref": REF.format(model=model)}, _NULL]}}},
    }
    if rest:
        rule["else"] = _result_by_type(rest)
    return rule


def _response_schemas() -> dict[str, Any]:
    """Schemas of the response models; ``CommandView.result`` is a ``oneOf`` of the
    result models (they differ in required fields, so exactly one matches) and, by
    ``if``/``then``, the one of the command's type."""
    _, generated = models_json_schema(
        [(model, "serialization") for model in RESPONSE_MODELS], ref_template=REF
    )
    defs: dict[str, Any] = generated["$defs"]
    view = defs["CommandView"]
    result = view["properties"]["result"]
    result["oneOf"] = result.pop("anyOf")
    view.update(_result_by_type([(t.value, m.__name__) for t, m in RESULT_MODELS.items()]))
    return defs


def _components(settings: GatewaySettings) -> dict[str, Any]:
    error_content = {"application/json": {"schema": {"$ref": REF.format(model="ErrorBody")}}}
    correlation = {"$ref": "#/components/headers/CorrelationId"}

    def error(description: str, **headers: dict[str, Any]) -> dict[str, Any]:
        return {
            "description": description,
            "headers": {CORRELATION_HEADER: correlation, **headers},
            "content": error_content,
        }

    return {
        "schemas": {**_command_schemas(), **_response_schemas()},
        "securitySchemes": {
            "appKey": {
                "type": "http",
                "scheme": "bearer",
                "description": "A per-app API key issued by `orchestrator keys create APP`. "
                "Lookups are cached for a few seconds (ORCH_AUTH_CACHE_SECONDS, default 5): "
                "a revoked key stops working within that time.",
            }
        },
        "headers": {
            "CorrelationId": {
                "description": "The request's correlation id: the caller's if well-formed "
                "(1-128 of A-Z a-z 0-9 . _ : -), else a generated UUID.",
                "required": True,
                "schema": {"type": "string", "minLength": 1, "maxLength": 128},
            },
        },
        "parameters": {
            "CorrelationId": {
                "name": CORRELATION_HEADER,
                "in": "header",
                "required": False,
                "description": "Correlation id to carry through logs, the bus message and "
                "the command record; a malformed one is replaced by a generated UUID.",
                "schema": {"type": "string"},
            },
            "IdempotencyKey": {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Repeating a request with the same key and body returns the "
                "same command (no second publish); the same key with another body is 409.",
                "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
            },
            "User": {"name": "user", "in": "path", "required": True, "schema": _USERNAME},
            "Wait": {
                "name": "wait",
                "in": "query",
                "required": False,
                "description": "Long-poll: answer as soon as the command ends, at the latest "
                "after this many seconds.",
                "schema": {"type": "number", "minimum": 0, "maximum": settings.max_wait_seconds},
            },
        },
        "responses": {
            "BadRequest": error("Malformed JSON body or header"),
            "Unauthorized": error(
                "Missing, malformed, unknown or revoked app key",
                **{"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}},
            ),
            "Forbidden": error("The app may not do this (command type or user prefix)"),
            "NotFound": error("No such resource for this app"),
            "Conflict": error("The Idempotency-Key was used with another body"),
            "TooLarge": error(
                f"Body larger than {settings.max_body_bytes} bytes (a diff: a notebook too large)"
            ),
            "UnsupportedMediaType": error("Body is not application/json"),
            "Invalid": error("A field, path or query parameter is invalid (details name it)"),
            "BusUnavailable": error(
                "The broker is down or did not confirm the command: it was NOT accepted; "
                "retry after Retry-After seconds, with the same Idempotency-Key (a replay "
                "of a command accepted earlier is answered 202 even then)",
                **{"Retry-After": {"schema": {"type": "integer"}, "required": True}},
            ),
            "Unavailable": error("A feature this request needs is not configured"),
            "Slow": error("The work took longer than its limit; the request may be tried later"),
            "Expired": error("The link has expired: ask for a new one"),
        },
    }


def build_openapi(settings: GatewaySettings) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a gateway configured with ``settings``."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Notebook orchestrator gateway",
            "version": "1.0.0",
            "description": "Commands for JupyterHub notebooks, their status, stored "
            "versions and live events. Every error is JSON: "
            '{"error": {"code", "message", "details"?}}.',
        },
        "servers": [{"url": str(settings.public_url).rstrip("/")}],
        "security": [{"appKey": []}],
        "paths": api_paths(),
        "components": _components(settings),
    }


OPENAPI = web.AppKey("openapi", dict[str, Any])


@routes.get("/openapi.json")
async def openapi_document(request: web.Request) -> web.Response:
    """The OpenAPI document (built once per process)."""
    return web.json_response(request.app[OPENAPI])
