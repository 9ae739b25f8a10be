"""SSE filtering: an app sees its own events (by user and kind), never another app's."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from orchestrator.gateway.event_stream import (
    STREAM_QUEUE_SIZE,
    EventBroadcaster,
    Subscription,
    parse_kinds,
)
from runtime.http_errors import ApiError
from schemas.commands import CommandType
from schemas.events import CommandSucceeded, EventKind, NotebookDeleted, make_event, utcnow


def _succeeded(app: str | None, user: str) -> dict[str, Any]:
    data = CommandSucceeded(
        command_id=uuid.uuid4(), command_type=CommandType.ENSURE_USER, user=user, result={}
    )
    event = make_event(EventKind.COMMAND_SUCCEEDED, data, subject="x", app_id=app)
    parsed: dict[str, Any] = json.loads(event.model_dump_json())
    return parsed


def _deleted_in_jupyter(user: str, app: str | None) -> dict[str, Any]:
    data = NotebookDeleted(user=user, path="a.ipynb", deleted_at=utcnow())
    event = make_event(EventKind.NOTEBOOK_DELETED, data, subject=f"{user}/a.ipynb", app_id=app)
    parsed: dict[str, Any] = json.loads(event.model_dump_json())
    return parsed


def test_another_apps_events_are_never_wanted() -> None:
    for user in (None, "alice"):
        sub = Subscription(app="app-a", user=user, kinds=None)
        assert not sub.wants(_succeeded("app-b", "alice"))
        assert sub.wants(_succeeded("app-a", "alice"))


def test_user_filter() -> None:
    sub = Subscription(app="app-a", user="alice", kinds=None)
    assert sub.wants(_succeeded("app-a", "alice"))
    assert not sub.wants(_succeeded("app-a", "bob"))


def test_events_from_inside_jupyter_go_to_the_workspaces_app_only() -> None:
    mine, theirs, nobodys = (_deleted_in_jupyter("al", app) for app in ("app-a", "app-b", None))
    for user in (None, "al"):
        sub = Subscription(app="app-a", user=user, kinds=None)
        assert sub.wants(mine)
        assert not sub.wants(theirs)
        assert not sub.wants(nobodys)  # a Hub user no app owns
    assert not Subscription(app="app-a", user="bo", kinds=None).wants(mine)


def test_kind_filter() -> None:
    only_saved = Subscription(app="app-a", user="alice", kinds=frozenset({"notebook.saved"}))
    assert not only_saved.wants(_succeeded("app-a", "alice"))
    commands = Subscription(app="app-a", user=None, kinds=frozenset({"command.succeeded"}))
    assert commands.wants(_succeeded("app-a", "alice"))


def test_kinds_parsed_and_unknown_kinds_are_422() -> None:
    assert parse_kinds(None) is None
    assert parse_kinds("command.succeeded, notebook.saved") == {
        "command.succeeded",
        "notebook.saved",
    }
    for bad in ("", "command.done", "notebook.saved,bogus"):
        with pytest.raises(ApiError) as caught:
            parse_kinds(bad)
        assert caught.value.status == 422


def test_broadcaster_delivers_to_interested_subscribers_and_drops_for_slow_ones() -> None:
    broadcaster = EventBroadcaster()
    mine = Subscription(app="app-a", user=None, kinds=None)
    theirs = Subscription(app="app-b", user=None, kinds=None)
    broadcaster.subscribe(mine)
    broadcaster.subscribe(theirs)
    for _ in range(STREAM_QUEUE_SIZE + 5):
        broadcaster.publish(_succeeded("app-a", "alice"))  # never blocks, even when full
    assert mine.queue.qsize() == STREAM_QUEUE_SIZE
    assert theirs.queue.empty()
    broadcaster.unsubscribe(mine)
    broadcaster.publish(_succeeded("app-a", "alice"))
    assert mine.queue.qsize() == STREAM_QUEUE_SIZE
