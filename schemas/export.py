"""Export the contracts as JSON Schemas into ``schemas/jsonschema/`` (checked in).

``python -m schemas.export`` rewrites the files; ``python -m schemas.export --check``
exits 1 and names every file that drifted from the models (or is stale), so a test
and CI keep the checked-in schemas and the pydantic models in step.

Events: one schema per event type, the CloudEvents envelope specialised to that
type (``type`` is a constant, ``data`` the type's model). Commands: each command
body, the union apps POST, and the bus message. Notifications: the body the save
extension POSTs and the bus message the hub service publishes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, create_model

from schemas import commands as c
from schemas.events import EVENT_DATA_MODELS, CloudEvent, EventKind, event_type
from schemas.notifications import ContentsNotification, ContentsNotificationMessage

SCHEMA_DIR = Path(__file__).resolve().parent / "jsonschema"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def event_model(kind: EventKind) -> type[BaseModel]:
    """The envelope model of ``kind``: ``CloudEvent[data model]`` with a constant ``type``."""
    data_model = EVENT_DATA_MODELS[kind]
    envelope: Any = CloudEvent[data_model]  # type: ignore[valid-type]
    constant: Any = Literal[event_type(kind)]
    model: type[BaseModel] = create_model(
        f"{data_model.__name__}Event",
        __base__=envelope,
        __doc__=f"CloudEvent of type {event_type(kind)} (routing key {kind.value}…).",
        type=(constant, Field(default=event_type(kind))),
    )
    return model


def _schema(
    adapter: TypeAdapter[Any], title: str, mode: Literal["validation", "serialization"]
) -> dict[str, Any]:
    schema = adapter.json_schema(mode=mode)
    if mode == "serialization":
        _all_required(schema)
    schema.setdefault("title", title)
    return {"$schema": DIALECT, **schema}


def _all_required(schema: dict[str, Any]) -> None:
    """What we publish always carries every field (defaults included): say so."""
    if isinstance(schema.get("properties"), dict):
        schema["required"] = list(schema["properties"])
    for definition in schema.get("$defs", {}).values():
        _all_required(definition)


def build_schemas() -> dict[str, dict[str, Any]]:
    """Every exported schema by its path relative to :data:`SCHEMA_DIR`."""
    out: dict[str, dict[str, Any]] = {}
    for kind in EventKind:
        name = f"events/{kind.value}.v1.json"
        out[name] = _schema(TypeAdapter(event_model(kind)), kind.value, "serialization")
    for model in c.COMMAND_MODELS:
        command_type = model.model_fields["type"].default
        out[f"commands/{command_type.value}.json"] = _schema(
            TypeAdapter(model), model.__name__, "validation"
        )
    out["commands/command.json"] = _schema(c.COMMAND_ADAPTER, "Command", "validation")
    out["commands/command-message.json"] = _schema(
        TypeAdapter(c.CommandMessage), "CommandMessage", "serialization"
    )
    out["notifications/contents-notification.json"] = _schema(
        TypeAdapter(ContentsNotification), "ContentsNotification", "validation"
    )
    out["notifications/contents-notification-message.json"] = _schema(
        TypeAdapter(ContentsNotificationMessage), "ContentsNotificationMessage", "serialization"
    )
    return out


def render(schema: dict[str, Any]) -> str:
    """The checked-in text of a schema: stable key order, two-space indent, final newline."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def drift(directory: Path = SCHEMA_DIR) -> list[str]:
    """Files under ``directory`` that differ from the models, are missing, or are stale."""
    expected = {name: render(schema) for name, schema in build_schemas().items()}
    problems = []
    for name, text in sorted(expected.items()):
        path = directory / name
        if not path.exists():
            problems.append(f"missing: {name}")
        elif path.read_text() != text:
            problems.append(f"differs from the models: {name}")
    for path in sorted(directory.rglob("*.json")):
        name = path.relative_to(directory).as_posix()
        if name not in expected:
            problems.append(f"stale (no model): {name}")
    return problems


def write(directory: Path = SCHEMA_DIR) -> list[str]:
    """Write every schema (removing stale ones); returns the names written."""
    expected = build_schemas()
    for path in directory.rglob("*.json"):
        if path.relative_to(directory).as_posix() not in expected:
            path.unlink()
    for name, schema in expected.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(schema))
    return sorted(expected)


def load_schema(name: str, directory: Path = SCHEMA_DIR) -> dict[str, Any]:
    """A checked-in schema by relative name (e.g. ``events/notebook.saved.v1.json``)."""
    schema: dict[str, Any] = json.loads((directory / name).read_text())
    return schema


def event_schema_name(cloudevent_type: str) -> str:
    """The schema file of a CloudEvents ``type`` (``…notebook.saved.v1`` → its file)."""
    *_, noun, verb, version = cloudevent_type.rsplit(".", 3)
    return f"events/{noun}.{verb}.{version}.json"


def main(argv: list[str] | None = None) -> int:
    """Write the schemas, or with ``--check`` report drift and exit 1."""
    parser = argparse.ArgumentParser(prog="python -m schemas.export", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if files drifted")
    args = parser.parse_args(argv)
    if args.check:
        problems = drift()
        for problem in problems:
            print(problem)
        if problems:
            print("run: python -m schemas.export")
        return 1 if problems else 0
    for name in write():
        print(f"wrote schemas/jsonschema/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
