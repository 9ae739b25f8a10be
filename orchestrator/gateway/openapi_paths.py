"""The ``paths`` of the gateway's OpenAPI document: every route, its status codes and headers.

Kept next to the handlers' behaviour on purpose: when a handler starts answering a
new status or header, it is added here (the schemathesis test fails otherwise).
"""

from __future__ import annotations

from typing import Any

from orchestrator.gateway.middleware import CORRELATION_HEADER
from schemas.events import EventKind

_SCHEMAS = "#/components/schemas/"
_PUBLIC: list[dict[str, list[str]]] = []  # no security requirement


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _ok(description: str, schema: str, **headers: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {CORRELATION_HEADER: _ref("headers", "CorrelationId"), **headers},
        "content": {"application/json": {"schema": {"$ref": _SCHEMAS + schema}}},
    }


def _errors(*names_by_status: tuple[int, str]) -> dict[str, Any]:
    return {str(status): _ref("responses", name) for status, name in names_by_status}


_UNAUTHORIZED = (401, "Unauthorized")
_FORBIDDEN = (403, "Forbidden")
_NOT_FOUND = (404, "NotFound")
_INVALID = (422, "Invalid")
_CORRELATION_PARAM = _ref("parameters", "CorrelationId")


def _commands() -> dict[str, Any]:
    accepted = _ok(
        "Accepted: recorded and confirmed by the broker. A replay of an earlier request "
        "with the same Idempotency-Key and body answers the same command again, with "
        "Idempotent-Replayed: true.",
        "CommandView",
        Location={"schema": {"type": "string"}, "required": True},
        **{"Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]}}},
    )
    accepted["links"] = {
        "GetCommand": {
            "operationId": "getCommand",
            "parameters": {"command_id": "$response.body#/id"},
        }
    }
    return {
        "post": {
            "operationId": "acceptCommand",
            "summary": "Send a command",
            "description": "Validated, recorded and published with publisher confirms; "
            "202 only once the broker confirmed it.",
            "parameters": [_ref("parameters", "IdempotencyKey"), _CORRELATION_PARAM],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": _SCHEMAS + "Command"}}},
            },
            "responses": {
                "202": accepted,
                **_errors(
                    (400, "BadRequest"),
                    _UNAUTHORIZED,
                    _FORBIDDEN,
                    (409, "Conflict"),
                    (413, "TooLarge"),
                    (415, "UnsupportedMediaType"),
                    _INVALID,
                    (503, "BusUnavailable"),
                ),
            },
        }
    }


def _command() -> dict[str, Any]:
    return {
        "get": {
            "operationId": "getCommand",
            "summary": "A command's status, attempts, result or error",
            "description": "Only the calling app's commands: any other id is 404; an id "
            "that is not a UUID is 422 (invalid_parameter, field command_id).",
            "parameters": [
                {
                    "name": "command_id",
                    "in": "path",
                    "required": True,
                    "description": "The id the POST answered (a UUID)",
                    "schema": {"type": "string", "format": "uuid"},
                },
                _ref("parameters", "Wait"),
                _CORRELATION_PARAM,
            ],
            "responses": {
                "200": _ok("The command", "CommandView"),
                **_errors(_UNAUTHORIZED, _NOT_FOUND, _INVALID),
            },
        }
    }


def _notebooks() -> dict[str, Any]:
    user = _ref("parameters", "User")
    path_query = {
        "name": "path",
        "in": "query",
        "required": True,
        "description": "The notebook's path (relative, ending in .ipynb)",
        "schema": {"type": "string"},
    }
    return {
        "/v1/users/{user}/notebooks": {
            "get": {
                "operationId": "listNotebooks",
                "summary": "A user's notebooks, most recently updated first",
                "parameters": [user, _CORRELATION_PARAM],
                "responses": {
                    "200": _ok("The notebooks", "NotebookList"),
                    **_errors(_UNAUTHORIZED, _FORBIDDEN, _INVALID),
                },
            }
        },
        "/v1/users/{user}/versions": {
            "get": {
                "operationId": "listVersions",
                "summary": "Stored versions of one notebook, newest first",
                "parameters": [user, path_query, _CORRELATION_PARAM],
                "responses": {
                    "200": _ok("The versions", "VersionList"),
                    **_errors(_UNAUTHORIZED, _FORBIDDEN, _INVALID),
                },
            }
        },
        "/v1/versions/{version_id}": {
            "get": {
                "operationId": "getVersion",
                "summary": "One stored version with its nbformat content",
                "parameters": [
                    {
                        "name": "version_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "format": "uuid"},
                    },
                    _CORRELATION_PARAM,
                ],
                "responses": {
                    "200": _ok("The version", "VersionWithContent"),
                    **_errors(_UNAUTHORIZED, _NOT_FOUND, _INVALID),
                },
            }
        },
        "/v1/versions/{version_id}/diff": {
            "get": {
                "operationId": "diffVersions",
                "summary": "What changed from an earlier version of the notebook to this one",
                "description": "By default against the version stored just before it; "
                "`against` names another version of the same notebook. Cached by the two "
                "contents' hashes. 413 for a notebook over 20 MiB, 503 when the diff takes "
                "longer than 20 s.",
                "parameters": [
                    {
                        "name": "version_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "format": "uuid"},
                    },
                    {
                        "name": "against",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "format": "uuid"},
                    },
                    _CORRELATION_PARAM,
                ],
                "responses": {
                    "200": _ok("The diff", "VersionDiff"),
                    **_errors(
                        _UNAUTHORIZED, _NOT_FOUND, (413, "TooLarge"), _INVALID, (503, "Slow")
                    ),
                },
            }
        },
    }


def _events() -> dict[str, Any]:
    return {
        "get": {
            "operationId": "streamEvents",
            "summary": "Server-sent events of the app",
            "description": "CloudEvents (JSON in each `data:` line; the SSE `event:` is the "
            "kind) of the app's commands, notebooks and servers: results, "
            "`command.progressed` while a command runs (the same `progress` as its view), "
            "saves, renames, deletes, and the server lifecycle (`server.starting`, "
            "`server.ready`, `server.spawn_failed`, `server.stopping`, `server.stopped`, "
            "`server.cull_scheduled`). `?user=` limits to one user (and then also includes "
            "saves made inside Jupyter), `?types=` to some event kinds. Comments keep it "
            "alive. Payloads: the AsyncAPI document and the JSON Schemas.",
            "parameters": [
                {"name": "user", "in": "query", "required": False, "schema": {"type": "string"}},
                {
                    "name": "types",
                    "in": "query",
                    "required": False,
                    "description": "Comma-separated kinds, e.g. "
                    "command.progressed,command.succeeded,server.cull_scheduled; one of: "
                    + ", ".join(k.value for k in EventKind),
                    "schema": {"type": "string"},
                },
                _CORRELATION_PARAM,
            ],
            "responses": {
                "200": {
                    "description": "An endless text/event-stream",
                    "headers": {CORRELATION_HEADER: _ref("headers", "CorrelationId")},
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                **_errors(_UNAUTHORIZED, _FORBIDDEN, _INVALID),
            },
        }
    }


def _embedding() -> dict[str, Any]:
    """Routes of :mod:`orchestrator.gateway.embed_api`."""
    return {
        "/v1/users/{user}/launch": {
            "post": {
                "operationId": "createLaunchLink",
                "summary": "A one-time launch link for one notebook of a user",
                "description": "The app must be allowed 'open' commands and the user. The "
                "gateway only signs the link; send an 'open' command to start the server.",
                "parameters": [_ref("parameters", "User"), _CORRELATION_PARAM],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["path"],
                                "properties": {"path": {"type": "string"}},
                            }
                        }
                    },
                },
                "responses": {
                    "200": _ok("The link", "LaunchLink"),
                    **_errors(
                        (400, "BadRequest"),
                        _UNAUTHORIZED,
                        _FORBIDDEN,
                        _INVALID,
                        (503, "Unavailable"),
                    ),
                },
            }
        },
        "/v1/views/{code}": {
            "get": {
                "operationId": "viewNotebook",
                "summary": "The read-only view of a notebook (the launch_url of open, mode view)",
                "description": "The code in the path is the credential (no app key). HTML "
                "rendered from the latest stored version, outputs included; served with "
                "Content-Security-Policy sandbox (no scripts) and the app origins as "
                "frame-ancestors. 404 for an unknown code, 410 once it expired.",
                "security": _PUBLIC,
                "parameters": [
                    {"name": "code", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {
                        "description": "HTML page",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    },
                    **_errors(_NOT_FOUND, (410, "Expired"), (413, "TooLarge"), (503, "Slow")),
                },
            }
        },
        "/static/orchestrator-embed.js": {
            "get": {
                "operationId": "embedModule",
                "summary": "The host-side bridge ES module for app pages",
                "security": _PUBLIC,
                "responses": {
                    "200": {
                        "description": "JavaScript module",
                        "content": {"text/javascript": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }


def _operational() -> dict[str, Any]:
    def public(operation_id: str, summary: str, responses: dict[str, Any]) -> dict[str, Any]:
        return {
            "get": {
                "operationId": operation_id,
                "summary": summary,
                "security": _PUBLIC,
                "responses": responses,
            }
        }

    return {
        "/healthz": public("liveness", "Liveness", {"200": _ok("Alive", "Liveness")}),
        "/readyz": public(
            "readiness",
            "Readiness: broker connected and database answering",
            {"200": _ok("Ready", "Readiness"), "503": _ok("Not ready", "Readiness")},
        ),
        "/metrics": public(
            "metrics",
            "Prometheus metrics",
            {
                "200": {
                    "description": "Prometheus text exposition format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        ),
        "/openapi.json": public(
            "openapi",
            "This document",
            {
                "200": {
                    "description": "OpenAPI 3.1",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        ),
    }


def api_paths() -> dict[str, Any]:
    """Every route the gateway serves."""
    return {
        "/v1/commands": _commands(),
        "/v1/commands/{command_id}": _command(),
        **_notebooks(),
        "/v1/events": _events(),
        **_embedding(),
        **_operational(),
    }
