"""``orchestrator command ID``: everything the database knows about one command.

Launch codes and other credentials inside results are redacted: the operator sees
that a launch link was issued, not a link that would log them in as the user.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from typing import Any

from sqlalchemy.exc import DBAPIError

from runtime.db.commands import CommandStore
from runtime.db.engine import make_engine, make_sessionmaker
from runtime.db.models import CommandRecord
from runtime.logs import redact_text
from runtime.settings import CommonSettings

_FIELDS = (
    "id",
    "app",
    "type",
    "user",
    "status",
    "attempts",
    "correlation_id",
    "idempotency_key",
    "created_at",
    "updated_at",
    "finished_at",
    "payload",
    "result",
    "error",
)


def redact_value(value: Any) -> Any:
    """``value`` with credentials removed from every string inside it (recursively)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_value(item) for item in value]
    return value


def describe_command(record: CommandRecord) -> dict[str, Any]:
    """The command as a JSON-ready dict, secrets redacted."""
    described: dict[str, Any] = {}
    for name in _FIELDS:
        value = getattr(record, name)
        if isinstance(value, uuid.UUID):
            value = str(value)
        elif hasattr(value, "isoformat"):
            value = value.isoformat()
        described[name] = redact_value(value)
    return described


def render_command(described: dict[str, Any]) -> str:
    """Human form: one ``field: value`` line each; nested values as indented JSON."""
    width = max(len(name) for name in described)
    indent = "\n" + " " * (width + 2)
    lines = []
    for name, value in described.items():
        if isinstance(value, dict | list):
            shown = json.dumps(value, indent=2, sort_keys=True).replace("\n", indent)
        else:
            shown = "-" if value is None else str(value)
        lines.append(f"{name.ljust(width)}  {shown}")
    return "\n".join(lines)


async def run_command_lookup(settings: CommonSettings, args: argparse.Namespace) -> int:
    """Print one command; 1 when it does not exist, 2 when the id is not a UUID."""
    try:
        command_id = uuid.UUID(args.command_id)
    except ValueError:
        print(f"error: not a command id (a UUID): {args.command_id!r}", file=sys.stderr)
        return 2
    engine = make_engine(settings.database_url.get_secret_value())
    try:
        record = await CommandStore(make_sessionmaker(engine)).get(command_id)
    except DBAPIError as error:
        print(f"error: cannot read the command table: {type(error.orig).__name__}", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()
    if record is None:
        print(f"error: no command {command_id}", file=sys.stderr)
        return 1
    described = describe_command(record)
    print(json.dumps(described, indent=2) if args.json else render_command(described))
    return 0
