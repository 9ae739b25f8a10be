"""Convergence of every command handler, against in-memory fakes of the ports."""

from __future__ import annotations

import hashlib
import json
import posixpath
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from consumers.errors import ConflictError, InvalidNotebook, NotFoundError, PermanentError
from consumers.handlers import HANDLERS, CommandContext, Outcome, Ports, open_notebook
from consumers.notebook_codec import canonicalise, empty_notebook
from consumers.ports import FlushReport, ServerState
from schemas import commands as c
from schemas.events import EventKind, SaveOrigin
from schemas.launch_codes import ViewLinkIssuer
from schemas.versions import StoredVersion


@dataclass
class FakeHub:
    """Users and servers in memory; records every call."""

    users: set[str] = field(default_factory=set)
    running: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)

    async def server_state(self, user: str) -> ServerState:
        self.calls.append("state")
        ready = user in self.running
        return ServerState(user in self.users, ready, None, f"/user/{user}/" if ready else None)

    async def ensure_user(self, user: str) -> bool:
        self.calls.append("ensure_user")
        created = user not in self.users
        self.users.add(user)
        return created

    async def start_server(
        self, user: str, known: ServerState | None = None, observer: object = None
    ) -> str:
        if known is not None and known.ready and known.url:
            return known.url
        self.calls.append("start")
        assert user in self.users, "started a server for a user that does not exist"
        self.running.add(user)
        return f"/user/{user}/"

    async def stop_server(self, user: str) -> bool:
        self.calls.append("stop")
        was = user in self.running
        self.running.discard(user)
        return was


@dataclass
class FakeContents:
    """A user's files in memory; folders must exist before files, like Jupyter."""

    hub: FakeHub
    files: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    folders: set[tuple[str, str]] = field(default_factory=set)
    writes: int = 0
    activity: dict[str, datetime] = field(default_factory=dict)
    sessions: dict[str, list[str]] = field(default_factory=dict)
    # what an open JupyterLab page holds unsaved, written when asked to flush
    unsaved: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def _need_server(self, user: str) -> None:
        assert user in self.hub.running, "contents call without a running server"

    async def ensure_folder(self, user: str, folder: str) -> None:
        self._need_server(user)
        parts = folder.split("/")
        for i in range(1, len(parts) + 1):
            self.folders.add((user, "/".join(parts[:i])))

    async def ensure_parent(self, user: str, path: str) -> None:
        if posixpath.dirname(path):
            await self.ensure_folder(user, posixpath.dirname(path))

    async def exists(self, user: str, path: str) -> bool:
        self._need_server(user)
        return (user, path) in self.files

    async def read_notebook(self, user: str, path: str) -> dict[str, Any]:
        self._need_server(user)
        if (user, path) not in self.files:
            raise NotFoundError(f"no file {path}")
        return self.files[(user, path)]

    async def write_notebook(self, user: str, path: str, content: dict[str, Any]) -> None:
        self._need_server(user)
        parent = posixpath.dirname(path)
        assert not parent or (user, parent) in self.folders, "parent folder missing"
        self.files[(user, path)] = content
        self.writes += 1

    async def last_activity(self, user: str) -> datetime | None:
        self._need_server(user)
        return self.activity.get(user)

    async def open_notebooks(self, user: str) -> list[str]:
        self._need_server(user)
        return self.sessions.get(user, [])

    async def flush_pages(self, user: str, timeout_seconds: float) -> FlushReport:
        self._need_server(user)
        saved = [p for (u, p) in self.unsaved if u == user]
        for path in saved:
            self.files[(user, path)] = self.unsaved.pop((user, path))
        return FlushReport(pages=1 if saved else 0, reported=1 if saved else 0, saved=tuple(saved))

    async def new_untitled(self, user: str, folder: str) -> str:
        self._need_server(user)
        assert (user, folder) in self.folders
        n = sum(1 for (u, p) in self.files if u == user and p.startswith(f"{folder}/Untitled"))
        path = f"{folder}/Untitled{n or ''}.ipynb"
        self.files[(user, path)] = empty_notebook()
        return path


@dataclass
class FakeVersions:
    """Versions and content blobs in memory, with the store's dedup and idempotency."""

    versions: list[StoredVersion] = field(default_factory=list)
    blobs: dict[str, str] = field(default_factory=dict)
    by_command: dict[uuid.UUID, StoredVersion] = field(default_factory=dict)

    async def add_version(
        self,
        *,
        user: str,
        path: str,
        content: str,
        sha256: str,
        origin: str,
        command_id: uuid.UUID | None = None,
        app: str | None = None,
        restored_from: uuid.UUID | None = None,
        before_overwrite: bool = False,
    ) -> StoredVersion:
        if command_id in self.by_command:
            done = self.by_command[command_id]
            return StoredVersion(**{**done.__dict__, "created": False})
        latest = await self.latest(user, path)
        if latest is not None and latest.sha256 == sha256:
            return latest
        self.blobs[sha256] = content
        version = StoredVersion(
            uuid.uuid4(),
            user,
            path,
            sha256,
            len(content),
            origin,
            datetime.now(UTC),
            True,
            command_id,
            app,
            restored_from,
            before_overwrite,
        )
        self.versions.append(version)
        if command_id is not None:
            self.by_command[command_id] = version
        return version

    async def latest(self, user: str, path: str) -> StoredVersion | None:
        mine = [v for v in self.versions if v.user == user and v.path == path]
        return StoredVersion(**{**mine[-1].__dict__, "created": False}) if mine else None

    async def version(self, version_id: uuid.UUID) -> StoredVersion | None:
        return next((v for v in self.versions if v.id == version_id), None)

    async def content(self, sha256: str) -> str | None:
        return self.blobs.get(sha256)

    async def of_command(self, command_id: uuid.UUID) -> StoredVersion | None:
        return self.by_command.get(command_id)

    async def previous_content(self, version_id: uuid.UUID) -> str | None:
        [mine] = [v for v in self.versions if v.id == version_id]
        same = [v for v in self.versions if (v.user, v.path) == (mine.user, mine.path)]
        at = [v.id for v in same].index(version_id)
        return None if at == 0 else self.blobs[same[at - 1].sha256]


@dataclass
class World:
    hub: FakeHub
    contents: FakeContents
    versions: FakeVersions
    ports: Ports

    async def run(
        self, command: Any, command_id: uuid.UUID | None = None, workspace: str | None = None
    ) -> Outcome:
        """Run ``command`` in ``workspace`` (default: a Hub user named like the person)."""
        context = CommandContext(command_id or uuid.uuid4(), workspace or command.user)
        return await HANDLERS[command.type](command, self.ports, context)


@pytest.fixture
def world() -> World:
    hub = FakeHub()
    contents = FakeContents(hub)
    versions = FakeVersions()
    ports = Ports(hub, contents, versions, hub_public_url="http://hub.test/")
    return World(hub, contents, versions, ports)


def notebook(source: str) -> dict[str, Any]:
    nb = empty_notebook()
    nb["cells"] = [
        {
            "cell_type": "code",
            "source": source,
            "metadata": {},
            "outputs": [],
            "execution_count": None,
        }
    ]
    return nb


async def test_every_command_type_has_a_handler() -> None:
    # but move-user, which spans two Hubs' ports (consumers.moves)
    assert set(HANDLERS) == set(c.CommandType) - {c.CommandType.MOVE_USER}


async def test_ensure_user_creates_once_then_converges(world: World) -> None:
    assert (await world.run(c.EnsureUser(user="ann"))).result == {"user": "ann", "created": True}
    assert (await world.run(c.EnsureUser(user="ann"))).result == {"user": "ann", "created": False}
    assert world.hub.users == {"ann"}


async def test_start_server_creates_the_user_first_and_reports_the_url(world: World) -> None:
    outcome = await world.run(c.StartServer(user="ann"))
    assert outcome.result == {"user": "ann", "server_url": "http://hub.test/user/ann/"}
    assert world.hub.calls == ["state", "ensure_user", "start"]


async def test_start_server_for_a_running_server_costs_one_hub_call(world: World) -> None:
    world.hub.users.add("ann")
    world.hub.running.add("ann")
    await world.run(c.StartServer(user="ann"))
    assert world.hub.calls == ["state"]


async def test_stop_server_converges_and_tells_whether_it_ran(world: World) -> None:
    world.hub.users.add("ann")
    world.hub.running.add("ann")
    assert (await world.run(c.StopServer(user="ann"))).result["was_running"] is True
    assert (await world.run(c.StopServer(user="ann"))).result["was_running"] is False
    assert world.hub.running == set()


async def test_create_at_a_nested_path_ensures_folders_and_keeps_an_existing_file(
    world: World,
) -> None:
    first = await world.run(c.CreateNotebook(user="ann", path="a/b/c.ipynb"))
    assert first.result == {"path": "a/b/c.ipynb", "created": True}
    assert {("ann", "a"), ("ann", "a/b")} <= world.contents.folders
    world.contents.files[("ann", "a/b/c.ipynb")] = notebook("kept")
    again = await world.run(c.CreateNotebook(user="ann", path="a/b/c.ipynb"))
    assert again.result == {"path": "a/b/c.ipynb", "created": False}
    assert world.contents.files[("ann", "a/b/c.ipynb")] == notebook("kept")


async def test_create_untitled_in_a_new_nested_folder(world: World) -> None:
    outcome = await world.run(c.CreateNotebook(user="ann", folder="x/y"))
    assert outcome.result["path"].startswith("x/y/Untitled")
    assert ("ann", outcome.result["path"]) in world.contents.files


async def test_save_stores_a_version_with_its_hash_and_not_identical_content_twice(
    world: World,
) -> None:
    await world.run(c.CreateNotebook(user="ann", path="n.ipynb"))
    world.contents.files[("ann", "n.ipynb")] = notebook("print(1)")
    first = await world.run(c.SaveNotebook(user="ann", path="n.ipynb"))
    expected = canonicalise(notebook("print(1)"))
    assert first.result["sha256"] == expected.sha256
    assert first.result["sha256"] == hashlib.sha256(expected.text.encode()).hexdigest()
    assert first.result["new_version"] is True
    assert [e.kind for e in first.events] == [EventKind.NOTEBOOK_SAVED]

    second = await world.run(c.SaveNotebook(user="ann", path="n.ipynb"))
    assert second.result["new_version"] is False
    assert second.result["version_id"] == first.result["version_id"]
    assert second.events == []
    assert [v.origin for v in world.versions.versions] == ["create", "command"]


async def test_a_redelivered_save_returns_the_version_it_made(world: World) -> None:
    await world.run(c.CreateNotebook(user="ann", path="n.ipynb"))
    world.contents.files[("ann", "n.ipynb")] = notebook("v1")
    command_id = uuid.uuid4()
    first = await world.run(c.SaveNotebook(user="ann", path="n.ipynb"), command_id)
    world.contents.files[("ann", "n.ipynb")] = notebook("v2 written after the first attempt")
    again = await world.run(c.SaveNotebook(user="ann", path="n.ipynb"), command_id)
    assert again.result["version_id"] == first.result["version_id"]
    assert [v.origin for v in world.versions.versions] == ["create", "command"]
    assert [e.kind for e in again.events] == [EventKind.NOTEBOOK_SAVED]  # same event again


async def test_save_of_invalid_content_is_a_permanent_error(world: World) -> None:
    await world.run(c.CreateNotebook(user="ann", path="n.ipynb"))
    world.contents.files[("ann", "n.ipynb")] = {"cells": "not a list"}
    with pytest.raises(InvalidNotebook, match="not a valid notebook"):
        await world.run(c.SaveNotebook(user="ann", path="n.ipynb"))


async def test_restore_writes_the_given_version_or_the_latest(world: World) -> None:
    await world.run(c.CreateNotebook(user="ann", path="n.ipynb"))
    world.contents.files[("ann", "n.ipynb")] = notebook("v1")
    v1 = (await world.run(c.SaveNotebook(user="ann", path="n.ipynb"))).result
    world.contents.files[("ann", "n.ipynb")] = notebook("v2")
    v2 = (await world.run(c.SaveNotebook(user="ann", path="n.ipynb"))).result

    restored = await world.run(
        c.RestoreNotebook(user="ann", path="copy/n.ipynb", version_id=uuid.UUID(v1["version_id"]))
    )
    assert restored.result["sha256"] == v1["sha256"]
    assert canonicalise(world.contents.files[("ann", "copy/n.ipynb")]).sha256 == v1["sha256"]

    latest = await world.run(c.RestoreNotebook(user="ann", path="n.ipynb"))
    assert latest.result["version_id"] == v2["version_id"]


async def test_restore_of_an_unknown_version_fails_before_starting_a_server(
    world: World,
) -> None:
    with pytest.raises(NotFoundError, match="no version"):
        await world.run(c.RestoreNotebook(user="ann", path="n.ipynb", version_id=uuid.uuid4()))
    with pytest.raises(NotFoundError, match="no stored version"):
        await world.run(c.RestoreNotebook(user="ann", path="n.ipynb"))
    assert world.hub.calls == []


async def test_restore_refuses_another_users_version(world: World) -> None:
    await world.run(c.CreateNotebook(user="bob", path="n.ipynb"))
    world.contents.files[("bob", "n.ipynb")] = notebook("bob's")
    bobs = (await world.run(c.SaveNotebook(user="bob", path="n.ipynb"))).result
    with pytest.raises(NotFoundError):
        await world.run(
            c.RestoreNotebook(user="ann", path="n.ipynb", version_id=uuid.UUID(bobs["version_id"]))
        )


async def test_open_creates_when_nothing_is_stored(world: World) -> None:
    outcome = await world.run(c.OpenNotebook(user="ann", path="d/n.ipynb"))
    assert outcome.result["restored_version_id"] is None
    assert outcome.result["launch_url"]
    assert world.contents.files[("ann", "d/n.ipynb")] == empty_notebook()


async def test_open_restores_the_latest_version_when_the_file_is_gone(world: World) -> None:
    await world.run(c.CreateNotebook(user="ann", path="n.ipynb"))
    world.contents.files[("ann", "n.ipynb")] = notebook("saved")
    saved = (await world.run(c.SaveNotebook(user="ann", path="n.ipynb"))).result
    del world.contents.files[("ann", "n.ipynb")]
    world.hub.running.clear()  # e.g. a new home after the server was culled

    outcome = await world.run(c.OpenNotebook(user="ann", path="n.ipynb"))
    assert outcome.result["restored_version_id"] == saved["version_id"]
    assert canonicalise(world.contents.files[("ann", "n.ipynb")]).sha256 == saved["sha256"]


async def test_open_in_view_mode_links_the_latest_version_and_calls_no_hub(
    world: World,
) -> None:
    with pytest.raises(NotFoundError):  # nothing stored: nothing to view
        await world.run(c.OpenNotebook(user="ann", path="v.ipynb", mode="view"))
    await world.run(c.CreateNotebook(user="ann", path="v.ipynb"))
    calls = len(world.hub.calls)
    viewer = Ports(
        world.hub,
        world.contents,
        world.versions,
        hub_public_url="http://hub.test/",
        view_links=ViewLinkIssuer("s" * 64, "http://gw.test"),
    )
    context = CommandContext(uuid.uuid4(), "ann")
    outcome = await open_notebook(
        c.OpenNotebook(user="ann", path="v.ipynb", mode="view"), viewer, context
    )
    latest = await world.versions.latest("ann", "v.ipynb")
    assert latest is not None
    assert outcome.result["mode"] == "view"
    assert outcome.result["version_id"] == str(latest.id)
    assert outcome.result["launch_url"].startswith("http://gw.test/v1/views/")
    assert len(world.hub.calls) == calls  # no server for a view
    with pytest.raises(PermanentError):  # no view links configured
        await world.run(c.OpenNotebook(user="ann", path="v.ipynb", mode="view"))


async def test_open_keeps_a_file_that_is_there(world: World) -> None:
    await world.run(c.CreateNotebook(user="ann", path="n.ipynb"))
    world.contents.files[("ann", "n.ipynb")] = notebook("unsaved edits")
    writes = world.contents.writes
    outcome = await world.run(c.OpenNotebook(user="ann", path="n.ipynb"))
    assert outcome.result["restored_version_id"] is None
    assert world.contents.writes == writes
    assert json.dumps(world.contents.files[("ann", "n.ipynb")]) == json.dumps(
        notebook("unsaved edits")
    )


async def test_a_command_acts_in_its_workspace_and_answers_with_the_person(
    world: World,
) -> None:
    saved = await world.run(c.EnsureUser(user="ann"), workspace="ann-0123456789")
    assert world.hub.users == {"ann-0123456789"}
    assert saved.result == {"user": "ann", "created": True}
    await world.run(c.CreateNotebook(user="ann", path="a.ipynb"), workspace="ann-0123456789")
    world.contents.files[("ann-0123456789", "a.ipynb")] = notebook("edited")
    outcome = await world.run(
        c.SaveNotebook(user="ann", path="a.ipynb"), workspace="ann-0123456789"
    )
    (event,) = outcome.events
    assert event.data.user == "ann" and event.subject == "ann/a.ipynb"
    assert {v.user for v in world.versions.versions} == {"ann-0123456789"}


async def test_versions_say_who_wrote_them(world: World) -> None:
    created = await world.run(c.CreateNotebook(user="ann", path="h.ipynb"))
    (made,) = created.events
    assert made.data.origin == SaveOrigin.CREATE and made.data.command_id is not None
    world.contents.files[("ann", "h.ipynb")] = notebook("v1")
    v1 = (await world.run(c.SaveNotebook(user="ann", path="h.ipynb"))).result
    world.contents.files[("ann", "h.ipynb")] = notebook("v2")
    await world.run(c.SaveNotebook(user="ann", path="h.ipynb"))
    restore = c.RestoreNotebook(user="ann", path="h.ipynb", version_id=v1["version_id"])
    restored = await world.run(restore)
    (event,) = restored.events
    assert event.data.origin == SaveOrigin.RESTORE
    assert str(event.data.restored_from) == v1["version_id"]
    assert restored.result["latest_version_id"] == str(event.data.version_id)
    origins = [v.origin for v in world.versions.versions]
    assert origins == ["create", "command", "command", "restore"]
    assert cell_sources_of(world, "h.ipynb") == ["v1"]


async def test_restore_keeps_unsaved_edits_as_a_version_first(world: World) -> None:
    await world.run(c.CreateNotebook(user="ann", path="k.ipynb"))
    world.contents.files[("ann", "k.ipynb")] = notebook("v1")
    v1 = (await world.run(c.SaveNotebook(user="ann", path="k.ipynb"))).result
    world.contents.files[("ann", "k.ipynb")] = notebook("edited, never saved")
    restore = c.RestoreNotebook(user="ann", path="k.ipynb", version_id=v1["version_id"])
    kept, restored = (await world.run(restore)).events
    assert kept.data.origin == SaveOrigin.JUPYTER and kept.data.before_overwrite is True
    text = await world.versions.content(kept.data.sha256)
    assert text is not None and "edited, never saved" in text
    assert restored.data.origin == SaveOrigin.RESTORE
    assert cell_sources_of(world, "k.ipynb") == ["v1"]


async def test_restore_with_a_stale_if_version_conflicts_and_writes_nothing(world: World) -> None:
    await world.run(c.CreateNotebook(user="ann", path="i.ipynb"))
    world.contents.files[("ann", "i.ipynb")] = notebook("v1")
    v1 = (await world.run(c.SaveNotebook(user="ann", path="i.ipynb"))).result
    world.contents.files[("ann", "i.ipynb")] = notebook("v2")
    v2 = (await world.run(c.SaveNotebook(user="ann", path="i.ipynb"))).result
    before = list(world.versions.versions)
    stale = c.RestoreNotebook(
        user="ann", path="i.ipynb", version_id=v1["version_id"], if_version=v1["version_id"]
    )
    with pytest.raises(ConflictError, match="not at version"):
        await world.run(stale)
    world.contents.files[("ann", "i.ipynb")] = notebook("v2 plus unsaved edits")
    current_but_edited = c.RestoreNotebook(
        user="ann", path="i.ipynb", version_id=v1["version_id"], if_version=v2["version_id"]
    )
    with pytest.raises(ConflictError, match="unsaved changes"):
        await world.run(current_but_edited)
    assert world.versions.versions == before
    assert cell_sources_of(world, "i.ipynb") == ["v2 plus unsaved edits"]


async def test_an_untitled_create_redelivered_makes_no_second_notebook(world: World) -> None:
    command_id = uuid.uuid4()
    first = await world.run(c.CreateNotebook(user="ann", folder="u"), command_id)
    again = await world.run(c.CreateNotebook(user="ann", folder="u"), command_id)
    assert again.result["path"] == first.result["path"]
    assert [p for (u, p) in world.contents.files if u == "ann" and p.startswith("u/")] == [
        first.result["path"]
    ]


def cell_sources_of(world: World, path: str) -> list[str]:
    """The cell sources of ann's ``path`` as her server has it."""
    cells = world.contents.files[("ann", path)]["cells"]
    return ["".join(cell["source"]) for cell in cells]


def _cull(user: str, scheduled_at: datetime) -> c.CullServer:
    return c.CullServer(user=user, reason="idle", scheduled_at=scheduled_at)


async def test_a_cull_does_nothing_when_the_user_came_back(world: World) -> None:
    await world.run(c.OpenNotebook(user="ann", path="a.ipynb"))
    scheduled = datetime.now(UTC)
    world.contents.activity["ann"] = datetime.now(UTC)  # active after the warning
    outcome = await world.run(_cull("ann", scheduled))
    assert outcome.result == {"user": "ann", "culled": False, "why": "user active"}
    assert "ann" in world.hub.running and "stop" not in world.hub.calls


async def test_a_cull_keeps_what_the_open_pages_held_then_stops(world: World) -> None:
    await world.run(c.OpenNotebook(user="ann", path="a.ipynb"))
    await world.run(c.OpenNotebook(user="ann", path="b.ipynb"))
    world.contents.activity["ann"] = datetime(2026, 1, 1, tzinfo=UTC)  # long idle
    world.contents.sessions["ann"] = ["b.ipynb"]  # b has a kernel; a is open in a page
    world.contents.unsaved[("ann", "a.ipynb")] = notebook("typed, never saved")
    world.contents.files[("ann", "b.ipynb")] = notebook("autosaved, not yet stored")
    before = len(world.versions.versions)
    outcome = await world.run(_cull("ann", datetime.now(UTC)))
    assert outcome.result == {
        "user": "ann",
        "culled": True,
        "reason": "idle",
        "kept": ["a.ipynb", "b.ipynb"],
    }
    stored = world.versions.versions[before:]
    assert {(v.path, v.origin) for v in stored} == {("a.ipynb", "jupyter"), ("b.ipynb", "jupyter")}
    texts = {v.path: world.versions.blobs[v.sha256] for v in stored}
    assert "typed, never saved" in texts["a.ipynb"]
    assert [e.kind for e in outcome.events] == [EventKind.NOTEBOOK_SAVED] * 2
    assert "ann" not in world.hub.running
    # nothing new on disk: a second stop stores nothing
    await world.run(c.StartServer(user="ann"))
    again = await world.run(c.StopServer(user="ann"))
    assert again.events == [] and len(world.versions.versions) == before + 2


async def test_a_cull_of_a_server_that_is_not_running_does_nothing(world: World) -> None:
    await world.run(c.EnsureUser(user="ann"))
    outcome = await world.run(_cull("ann", datetime.now(UTC)))
    assert outcome.result == {"user": "ann", "culled": False, "why": "not running"}
