"""Command handlers: each idempotent and convergent, each ensuring its preconditions.

Handlers depend only on the ports; they return an :class:`Outcome` (the result the
status API shows, plus events to publish after the commit). ``HANDLERS`` at the end
is the one table from command type to handler, for every type but ``move-user``,
which uses two Hubs' ports (:mod:`consumers.moves`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import structlog

from consumers.errors import ConflictError, NotFoundError, PermanentError, TransientError
from consumers.event_publisher import PendingEvent
from consumers.lifecycle import QuietObserver
from consumers.notebook_codec import CanonicalNotebook, canonicalise, empty_notebook
from consumers.ports import (
    CommandObserver,
    ContentsPort,
    HubPort,
    ServerState,
    VersionStore,
    VersionWriter,
)
from runtime.metrics import SERVERS_CULLED
from runtime.notebook_changes import summarise
from schemas import commands as c
from schemas.events import ChangeSummary, EventKind, NotebookSaved, SaveOrigin
from schemas.launch_codes import LaunchLinkIssuer, ViewLinkIssuer
from schemas.lifecycle import ProgressPhase, StopReason
from schemas.names import normalise_relative_path
from schemas.versions import StoredVersion

log = structlog.get_logger(__name__)
# Notebooks larger than this get no change summary in notebook.saved (parsing both
# versions would cost more than a save should).
SUMMARY_MAX_BYTES = 2_000_000


@dataclass(frozen=True)
class Ports:
    """Everything a handler may touch."""

    hub: HubPort
    contents: ContentsPort
    versions: VersionStore
    hub_public_url: str
    inline_content_max_bytes: int = 16_384
    launch_links: LaunchLinkIssuer | None = None
    view_links: ViewLinkIssuer | None = None  # read-only views (open with mode "view")
    # how long a stop waits for the open JupyterLab pages to save their notebooks
    flush_timeout_seconds: float = 5.0
    hub_name: str | None = None  # the Hub these ports reach, named in events


@dataclass(frozen=True)
class CommandContext:
    """Where a command acts: ``workspace`` is the Hub user of the command's person in
    the command's app (every Hub, contents and version call uses it); ``app`` is the
    app that sent it (recorded on the versions it writes); ``observer`` hears the
    command's progress and the server's lifecycle."""

    command_id: uuid.UUID
    workspace: str
    app: str | None = None
    observer: CommandObserver = field(default_factory=QuietObserver)


@dataclass
class Outcome:
    """What a handler achieved."""

    result: dict[str, Any]
    events: list[PendingEvent] = field(default_factory=list)


def notebook_url(hub_public_url: str, user: str, path: str) -> str:
    """The JupyterLab URL that opens ``path`` in ``user``'s server."""
    return f"{hub_public_url.rstrip('/')}/user/{quote(user)}/lab/tree/{quote(path)}"


def saved_event(
    version: StoredVersion,
    content: dict[str, Any] | None,
    *,
    user: str,
    hub: str | None,
    changes: ChangeSummary | None = None,
) -> PendingEvent:
    """The ``notebook.saved`` event for a stored version of ``user`` (the person; the
    version itself is kept under the workspace's Hub user, on ``hub``), with who wrote
    it and what it changed."""
    return PendingEvent(
        EventKind.NOTEBOOK_SAVED,
        NotebookSaved(
            user=user,
            path=version.path,
            version_id=version.id,
            sha256=version.sha256,
            size=version.size,
            origin=SaveOrigin(version.origin),
            saved_at=version.created_at,
            content=content,
            command_id=version.writing_command,
            restored_from=version.restored_from,
            before_overwrite=version.before_overwrite,
            hub=hub,
            changes=changes,
        ),
        subject=f"{user}/{version.path}",
        key=str(version.id),  # one command may store two versions of a notebook
    )


async def announce_version(
    version: StoredVersion,
    canonical: CanonicalNotebook,
    versions: VersionWriter,
    *,
    inline_max_bytes: int,
    user: str,
    hub: str | None,
) -> PendingEvent:
    """:func:`saved_event` of ``version`` (whose content is ``canonical``): the content
    inline when at most ``inline_max_bytes``, and the cells it changed against the
    version before it (:func:`runtime.notebook_changes.summarise`)."""
    document = canonical.as_dict() if canonical.size <= SUMMARY_MAX_BYTES else None
    inline = document if canonical.size <= inline_max_bytes else None
    changes = None
    if document is not None:
        changes = summarise(await versions.previous_content(version.id), document)
    return saved_event(version, inline, user=user, hub=hub, changes=changes)


async def store_version(
    canonical: CanonicalNotebook,
    path: str,
    origin: SaveOrigin,
    ports: Ports,
    ctx: CommandContext,
    *,
    user: str,
    restored_from: uuid.UUID | None = None,
) -> tuple[StoredVersion, list[PendingEvent]]:
    """Store what this command wrote or read as a version, and its ``notebook.saved``.

    The event comes with this command's version, new or found again (the command
    redelivered after storing it: the same event id goes into the outcome's outbox);
    content identical to the latest version stores and announces nothing.
    """
    version = await ports.versions.add_version(
        user=ctx.workspace,
        path=path,
        content=canonical.text,
        sha256=canonical.sha256,
        origin=origin.value,
        command_id=ctx.command_id,
        app=ctx.app,
        restored_from=restored_from,
    )
    if not (version.created or version.command_id == ctx.command_id):
        return version, []
    return version, [await _announce(version, canonical, ports, user=user)]


async def ensure_user(cmd: c.EnsureUser, ports: Ports, ctx: CommandContext) -> Outcome:
    """Create the workspace's Hub user if missing (201 and 409 both succeed)."""
    created = await ports.hub.ensure_user(ctx.workspace)
    return Outcome({"user": cmd.user, "created": created})


async def ensure_server(ports: Ports, ctx: CommandContext, *, then: str | None = None) -> str:
    """The workspace's user and a ready server; then progress ``writing`` (``then`` says
    what the command does next), unless ``then`` is None."""
    state = await ports.hub.server_state(ctx.workspace)
    if not state.user_exists:
        await ports.hub.ensure_user(ctx.workspace)
    url = await ports.hub.start_server(ctx.workspace, state, ctx.observer)
    if then is not None:
        await ctx.observer.progress(ProgressPhase.WRITING, message=then)
    return url


async def start_server(cmd: c.StartServer, ports: Ports, ctx: CommandContext) -> Outcome:
    """Ensure the user and a ready server (one Hub call when it already runs)."""
    url = await ensure_server(ports, ctx)
    return Outcome({"user": cmd.user, "server_url": ports.hub_public_url.rstrip("/") + url})


async def _store_found(
    on_disk: CanonicalNotebook,
    path: str,
    ports: Ports,
    ctx: CommandContext,
    *,
    user: str,
    before_overwrite: bool = False,
) -> list[PendingEvent]:
    """Store content found on disk that no version holds yet (origin ``jupyter``: a
    person wrote it in Jupyter), and its ``notebook.saved``."""
    version = await ports.versions.add_version(
        user=ctx.workspace,
        path=path,
        content=on_disk.text,
        sha256=on_disk.sha256,
        origin=SaveOrigin.JUPYTER.value,
        before_overwrite=before_overwrite,
    )
    if not version.created:
        return []
    return [await _announce(version, on_disk, ports, user=user)]


async def _announce(
    version: StoredVersion, canonical: CanonicalNotebook, ports: Ports, *, user: str
) -> PendingEvent:
    return await announce_version(
        version,
        canonical,
        ports.versions,
        inline_max_bytes=ports.inline_content_max_bytes,
        user=user,
        hub=ports.hub_name,
    )


async def _keep_open_notebooks(
    ports: Ports, ctx: CommandContext, *, user: str
) -> tuple[list[str], list[PendingEvent]]:
    """Before a server stops: the open JupyterLab pages are asked to save (the embed
    bridge), then every notebook they saved or that has a kernel is read from disk and
    stored unless the latest version holds it. Returns the paths and the events.

    The pages' answer is best effort (none open, or one that does not answer in time,
    only leaves the disk as it is); reading the disk is not.
    """
    ws = ctx.workspace
    saved: tuple[str, ...] = ()
    try:
        report = await ports.contents.flush_pages(ws, ports.flush_timeout_seconds)
        saved = report.saved
        log.info("open pages asked to save", pages=report.pages, reported=report.reported)
    except (TransientError, PermanentError) as exc:
        log.warning("open pages could not be asked to save", error=str(exc)[:200])
    events: list[PendingEvent] = []
    kept: list[str] = []
    for raw in sorted(set(saved) | set(await ports.contents.open_notebooks(ws))):
        try:
            path = normalise_relative_path(raw)
        except ValueError:
            continue
        if not path.endswith(".ipynb") or not await ports.contents.exists(ws, path):
            continue
        on_disk = canonicalise(await ports.contents.read_notebook(ws, path))
        latest = await ports.versions.latest(ws, path)
        if latest is None or latest.sha256 != on_disk.sha256:
            events += await _store_found(on_disk, path, ports, ctx, user=user)
        kept.append(path)
    return kept, events


async def _stop(
    reason: StopReason,
    ports: Ports,
    ctx: CommandContext,
    *,
    user: str,
    state: ServerState | None = None,
) -> tuple[bool, list[str], list[PendingEvent]]:
    """Keep the open notebooks, then stop the server: ``server.stopping`` and
    ``server.stopped`` for a server that was running. ``state`` saves a Hub call when
    the caller has just read it."""
    if state is None:
        state = await ports.hub.server_state(ctx.workspace)
    running = state.ready or state.pending is not None
    kept: list[str] = []
    events: list[PendingEvent] = []
    if state.ready:
        kept, events = await _keep_open_notebooks(ports, ctx, user=user)
    if running:
        await ctx.observer.stopping(reason)
    was_running = await ports.hub.stop_server(ctx.workspace)
    await ctx.observer.stopped(reason, was_running=was_running)
    return was_running, kept, events


async def stop_server(cmd: c.StopServer, ports: Ports, ctx: CommandContext) -> Outcome:
    """Store the open notebooks' latest content, then stop the user's server; nothing
    to stop is success."""
    was_running, kept, events = await _stop(StopReason.COMMAND, ports, ctx, user=cmd.user)
    return Outcome(
        {"user": cmd.user, "stopped": True, "was_running": was_running, "kept": kept}, events
    )


async def cull_server(cmd: c.CullServer, ports: Ports, ctx: CommandContext) -> Outcome:
    """Cull an idle or too old server (the culler's command), unless its user came back.

    The user counts as back when the server's own ``last_activity`` (which the
    orchestrator's calls never move) is after ``scheduled_at``, when the cull was
    announced; then nothing happens (``culled: false``). Otherwise the open notebooks
    are kept as versions and the server is stopped with the cull's reason.
    """
    ws = ctx.workspace
    state = await ports.hub.server_state(ws)
    if not state.ready:
        await ctx.observer.cull_called_off()
        return Outcome({"user": cmd.user, "culled": False, "why": "not running"})
    reason = StopReason(cmd.reason)
    if reason == StopReason.IDLE:
        active = await ports.contents.last_activity(ws)
        if active is not None and active > cmd.scheduled_at:
            await ctx.observer.cull_called_off()
            return Outcome({"user": cmd.user, "culled": False, "why": "user active"})
    was_running, kept, events = await _stop(reason, ports, ctx, user=cmd.user, state=state)
    if was_running:
        SERVERS_CULLED.labels(reason.value).inc()
    return Outcome(
        {"user": cmd.user, "culled": was_running, "reason": reason.value, "kept": kept}, events
    )


async def create(cmd: c.CreateNotebook, ports: Ports, ctx: CommandContext) -> Outcome:
    """Create an empty notebook at ``path`` (kept if it exists) or untitled in ``folder``;
    the new notebook is stored as a version of origin ``create``.

    An untitled create redelivered after it stored its version returns that notebook
    instead of making another.
    """
    ws = ctx.workspace
    await ensure_server(ports, ctx, then="creating the notebook")
    if cmd.folder is not None:
        made = await ports.versions.of_command(ctx.command_id)
        if made is not None:
            return Outcome({"path": made.path, "created": True})
        await ports.contents.ensure_folder(ws, cmd.folder)
        path = await ports.contents.new_untitled(ws, cmd.folder)
        written = canonicalise(await ports.contents.read_notebook(ws, path))
        _, events = await store_version(written, path, SaveOrigin.CREATE, ports, ctx, user=cmd.user)
        return Outcome({"path": path, "created": True}, events)
    assert cmd.path is not None
    await ports.contents.ensure_parent(ws, cmd.path)
    if await ports.contents.exists(ws, cmd.path):
        return Outcome({"path": cmd.path, "created": False})
    return Outcome(
        {"path": cmd.path, "created": True}, await _write_empty(cmd, cmd.path, ports, ctx)
    )


async def _write_empty(
    cmd: c.CreateNotebook | c.OpenNotebook, path: str, ports: Ports, ctx: CommandContext
) -> list[PendingEvent]:
    """Write an empty notebook at ``path`` and store it (origin ``create``)."""
    notebook = empty_notebook()
    await ports.contents.write_notebook(ctx.workspace, path, notebook)
    written = canonicalise(notebook)
    _, events = await store_version(written, path, SaveOrigin.CREATE, ports, ctx, user=cmd.user)
    return events


async def _stored_version(
    user: str, path: str, version_id: uuid.UUID | None, ports: Ports
) -> tuple[StoredVersion, str]:
    """The version to restore and its content; NotFoundError before any Hub call."""
    if version_id is not None:
        version = await ports.versions.version(version_id)
        if version is None or version.user != user:
            raise NotFoundError(f"no version {version_id} of this user")
    else:
        version = await ports.versions.latest(user, path)
        if version is None:
            raise NotFoundError(f"no stored version of {path} for this user")
    text = await ports.versions.content(version.sha256)
    if text is None:
        raise NotFoundError(f"content of version {version.id} is missing")
    return version, text


async def _write_version(user: str, path: str, text: str, ports: Ports) -> None:
    await ports.contents.ensure_parent(user, path)
    await ports.contents.write_notebook(user, path, json.loads(text))


async def _keep_unsaved(
    cmd: c.RestoreNotebook, ports: Ports, ctx: CommandContext, latest: StoredVersion | None
) -> list[PendingEvent]:
    """Before a restore overwrites ``cmd.path``: what is on disk, if it differs from the
    latest stored version, is stored first (origin ``jupyter``, ``before_overwrite``).

    With ``if_version``, the app said which version it believes is current: if the
    latest is another one, or the disk holds something else, the restore fails with
    ``conflict`` and nothing is written or stored.
    """
    ws = ctx.workspace
    on_disk = (
        canonicalise(await ports.contents.read_notebook(ws, cmd.path))
        if await ports.contents.exists(ws, cmd.path)
        else None
    )
    changed = on_disk is not None and (latest is None or on_disk.sha256 != latest.sha256)
    if cmd.if_version is not None:
        current = None if latest is None else latest.id
        if current != cmd.if_version or changed:
            found = "unsaved changes on disk" if changed else f"latest version {current}"
            raise ConflictError(f"{cmd.path} is not at version {cmd.if_version} ({found})")
    if on_disk is None or not changed:
        return []
    return await _store_found(on_disk, cmd.path, ports, ctx, user=cmd.user, before_overwrite=True)


async def restore(cmd: c.RestoreNotebook, ports: Ports, ctx: CommandContext) -> Outcome:
    """Write a stored version (given, or the latest) to ``path`` in the user's server.

    An unknown version, or one of another workspace (another app's), fails at once,
    before a server is started for nothing. Unsaved content on disk is kept as a
    version first (:func:`_keep_unsaved`); the restored content becomes the latest
    version (origin ``restore``, ``restored_from``), so the save Jupyter reports for
    this write stores nothing twice.
    """
    ws = ctx.workspace
    version, text = await _stored_version(ws, cmd.path, cmd.version_id, ports)
    await ensure_server(ports, ctx, then="restoring the notebook")
    mine = await ports.versions.of_command(ctx.command_id)
    events = (
        []
        if mine is not None
        else await _keep_unsaved(cmd, ports, ctx, await ports.versions.latest(ws, cmd.path))
    )
    await _write_version(ws, cmd.path, text, ports)
    canonical = CanonicalNotebook(text=text, sha256=version.sha256)  # stored canonical
    restored, stored_events = await store_version(
        canonical, cmd.path, SaveOrigin.RESTORE, ports, ctx, user=cmd.user, restored_from=version.id
    )
    return Outcome(
        {
            "path": cmd.path,
            "version_id": str(version.id),
            "sha256": version.sha256,
            "latest_version_id": str(restored.id),
        },
        [*events, *stored_events],
    )


async def save(cmd: c.SaveNotebook, ports: Ports, ctx: CommandContext) -> Outcome:
    """Read ``path``, validate it, store a new version unless identical to the latest."""
    ws = ctx.workspace
    await ensure_server(ports, ctx, then="reading the notebook")
    canonical = canonicalise(await ports.contents.read_notebook(ws, cmd.path))
    version, events = await store_version(
        canonical, cmd.path, SaveOrigin.COMMAND, ports, ctx, user=cmd.user
    )
    return Outcome(
        {
            "path": cmd.path,
            "version_id": str(version.id),
            "sha256": version.sha256,
            "size": version.size,
            "new_version": version.created,
        },
        events,
    )


def _launch(user: str, path: str, ports: Ports) -> dict[str, Any]:
    """A one-time launch link when the Hub uses the launch authenticator, else the lab URL."""
    if ports.launch_links is None:
        return {"launch_url": notebook_url(ports.hub_public_url, user, path), "expires_at": None}
    link = ports.launch_links.link(user, path)
    return {"launch_url": link.url, "expires_at": link.expires_at.isoformat()}


async def open_notebook(cmd: c.OpenNotebook, ports: Ports, ctx: CommandContext) -> Outcome:
    """Ensure user and server; keep the file if present, else restore latest or create.
    In view mode: a link to the read-only view of the latest version (no server)."""
    ws = ctx.workspace
    if cmd.mode == "view":
        return await _view(cmd, ports, ctx)
    await ensure_server(ports, ctx, then="opening the notebook")
    restored: str | None = None
    events: list[PendingEvent] = []
    if not await ports.contents.exists(ws, cmd.path):
        latest = await ports.versions.latest(ws, cmd.path)
        if latest is not None:
            version, text = await _stored_version(ws, cmd.path, latest.id, ports)
            await _write_version(ws, cmd.path, text, ports)
            restored = str(version.id)
        else:
            await ports.contents.ensure_parent(ws, cmd.path)
            events = await _write_empty(cmd, cmd.path, ports, ctx)
    return Outcome(
        {
            "path": cmd.path,
            "restored_version_id": restored,
            **_launch(ws, cmd.path, ports),
        },
        events,
    )


async def _view(cmd: c.OpenNotebook, ports: Ports, ctx: CommandContext) -> Outcome:
    """A view link of the latest stored version of ``cmd.path``: the gateway renders it
    read-only, so no Hub call is made and nothing can be edited, run or saved there."""
    latest = await ports.versions.latest(ctx.workspace, cmd.path)
    if latest is None:
        raise NotFoundError(f"no stored version of {cmd.path} to view")
    if ports.view_links is None:
        raise PermanentError(
            "the read-only view needs ORCH_LAUNCH_SECRET and ORCH_PUBLIC_URL (the gateway's) "
            "in the consumers' settings"
        )
    link = ports.view_links.link(ctx.workspace, cmd.path)
    return Outcome(
        {
            "path": cmd.path,
            "restored_version_id": None,
            "launch_url": link.url,
            "expires_at": link.expires_at.isoformat(),
            "mode": "view",
            "version_id": str(latest.id),
        }
    )


Handler = Callable[[Any, Ports, CommandContext], Awaitable[Outcome]]

HANDLERS: dict[c.CommandType, Handler] = {
    c.CommandType.ENSURE_USER: ensure_user,
    c.CommandType.START_SERVER: start_server,
    c.CommandType.STOP_SERVER: stop_server,
    c.CommandType.CREATE: create,
    c.CommandType.RESTORE: restore,
    c.CommandType.SAVE: save,
    c.CommandType.OPEN: open_notebook,
    c.CommandType.CULL_SERVER: cull_server,
}
