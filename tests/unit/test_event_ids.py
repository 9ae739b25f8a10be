"""Event ids derive from their cause: the same event again gets the same id, and two
events one command causes never share one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from consumers.event_publisher import EventPublisher, PendingEvent
from consumers.handlers import saved_event
from schemas.versions import StoredVersion

COMMAND = uuid.uuid4()


def _version(content_hash: str) -> StoredVersion:
    return StoredVersion(
        id=uuid.uuid4(),
        user="ann-workspace",
        path="a.ipynb",
        sha256=content_hash,
        size=10,
        origin="restore",
        created_at=datetime.now(UTC),
        created=True,
    )


def _id(event: PendingEvent) -> str:
    message = EventPublisher.message(event, caused_by=COMMAND, correlation_id=None, app_id=None)
    return message.message_id


def test_two_versions_of_one_notebook_saved_by_one_command_get_two_event_ids() -> None:
    kept, restored = _version("a" * 64), _version("b" * 64)
    first = saved_event(kept, None, user="ann", hub=None)
    second = saved_event(restored, None, user="ann", hub=None)
    assert first.subject == second.subject
    assert _id(first) != _id(second)
    assert _id(first) == _id(saved_event(kept, None, user="ann", hub=None))  # redelivered
