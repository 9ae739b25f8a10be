"""Moving a workspace to another JupyterHub (the ``move-user`` command).

Each step is idempotent and recorded before the next (:class:`~consumers.ports.MoveLog`),
so a move interrupted anywhere (a crash, a retry) resumes where it stopped:

1. **Leave the source Hub**: with the user's server running (started if need be), the
   open JupyterLab pages are asked to save, then every notebook on disk whose content
   no version holds is stored as one (``save``'s path: origin ``command``, this
   command's id); the server is stopped (``server.stopping``/``server.stopped``,
   reason ``move``).
2. **Write on the target Hub**: the user is ensured there with a running server, the
   latest version of every notebook not deleted is written, and that server stopped
   again (the next ``open`` starts it where it now lives).
3. **Switch**: the workspace's Hub becomes the target, in one transaction with the
   move's record; from then on its commands, links and saves go there.

Then ``user.moved``, and a ``notebook.saved`` for every version step 1 stored (built
from the versions themselves, so a resumed move announces them too). The user's other
commands wait behind the move (the command order barrier), so none of them runs on a
half-moved workspace.
"""

from __future__ import annotations

import json

import structlog

from consumers.errors import PermanentError, TransientError
from consumers.event_publisher import PendingEvent
from consumers.handlers import (
    CommandContext,
    Outcome,
    Ports,
    announce_version,
    ensure_server,
    store_version,
)
from consumers.hubs import HubPorts
from consumers.notebook_codec import CanonicalNotebook, canonicalise
from consumers.ports import MoveLog
from schemas.commands import MoveUser, utcnow
from schemas.events import EventKind, SaveOrigin, UserMoved
from schemas.lifecycle import StopReason
from schemas.versions import StoredVersion
from schemas.workspaces import MoveStep, Workspace

log = structlog.get_logger(__name__)


async def move_user(
    cmd: MoveUser,
    workspace: Workspace,
    hubs: HubPorts,
    moves: MoveLog,
    ctx: CommandContext,
) -> Outcome:
    """Move ``workspace`` to Hub ``cmd.to_hub`` (see the module); a workspace already
    there (and no move of this command under way) is success with ``from_hub`` null."""
    target = hubs.for_hub(cmd.to_hub)  # an unknown Hub fails at once, before anything
    here = workspace.hub or hubs.names[0]
    move = await moves.begin(ctx.command_id, workspace.name, here, cmd.to_hub)
    if move.source == move.target:
        await moves.advance(ctx.command_id, MoveStep.DONE)
        return Outcome({"user": cmd.user, "from_hub": None, "to_hub": cmd.to_hub})
    source = hubs.for_hub(move.source)
    step = MoveStep(move.step)
    stored = list(move.stored)
    log.info("moving workspace", source=move.source, target=move.target, step=step.value)
    if step == MoveStep.STARTED:
        stored = await _leave(source, ctx, user=cmd.user)
        await moves.advance(ctx.command_id, MoveStep.LEFT_SOURCE, stored=stored)
        step = MoveStep.LEFT_SOURCE
    if step == MoveStep.LEFT_SOURCE:
        await _write_on(target, ctx)
        await moves.advance(ctx.command_id, MoveStep.WRITTEN)
    if step != MoveStep.DONE:
        await moves.switch(ctx.command_id)
    written = await _live_notebooks(target, ctx)
    events = [
        await _announce(source, version, user=cmd.user, hub=move.source)
        for version in await source.versions.stored_by(ctx.command_id)
    ]
    events.append(
        PendingEvent(
            EventKind.USER_MOVED,
            UserMoved(
                user=cmd.user,
                from_hub=move.source,
                to_hub=move.target,
                notebooks=written,
                moved_at=utcnow(),
            ),
            subject=cmd.user,
        )
    )
    log.info("workspace moved", source=move.source, target=move.target, notebooks=len(written))
    return Outcome(
        {
            "user": cmd.user,
            "from_hub": move.source,
            "to_hub": move.target,
            "notebooks": written,
            "stored": stored,
        },
        events,
    )


async def _leave(source: Ports, ctx: CommandContext, *, user: str) -> list[str]:
    """Step 1: store every changed notebook on the source Hub, then stop the server
    there. Returns the paths stored as new versions."""
    ws = ctx.workspace
    state = await source.hub.server_state(ws)
    if not state.user_exists:
        return []  # never used there: nothing to keep
    await ensure_server(source, ctx, then="storing the notebooks before the move")
    try:
        await source.contents.flush_pages(ws, source.flush_timeout_seconds)
    except (TransientError, PermanentError) as exc:  # best effort, as before a stop
        log.warning("open pages could not be asked to save", error=str(exc)[:200])
    stored: list[str] = []
    for path in await source.contents.list_notebooks(ws):
        on_disk = canonicalise(await source.contents.read_notebook(ws, path))
        version, _ = await store_version(on_disk, path, SaveOrigin.COMMAND, source, ctx, user=user)
        if version.command_id == ctx.command_id:
            stored.append(path)
    await ctx.observer.stopping(StopReason.MOVE)
    was_running = await source.hub.stop_server(ws)
    await ctx.observer.stopped(StopReason.MOVE, was_running=was_running)
    return stored


async def _announce(ports: Ports, version: StoredVersion, *, user: str, hub: str) -> PendingEvent:
    """The ``notebook.saved`` of a version the move stored (also when a resumed move
    stored it in an earlier attempt)."""
    text = await ports.versions.content(version.sha256)
    if text is None:
        raise PermanentError(f"the content of version {version.id} is missing")
    return await announce_version(
        version,
        CanonicalNotebook(text=text, sha256=version.sha256),
        ports.versions,
        inline_max_bytes=ports.inline_content_max_bytes,
        user=user,
        hub=hub,
    )


async def _live_notebooks(ports: Ports, ctx: CommandContext) -> list[str]:
    """The workspace's notebooks not deleted, by path."""
    return sorted(n.path for n in await ports.versions.notebooks(ctx.workspace) if not n.deleted)


async def _write_on(target: Ports, ctx: CommandContext) -> None:
    """Step 2: the latest version of every notebook written on the target Hub, whose
    server is then stopped."""
    ws = ctx.workspace
    paths = await _live_notebooks(target, ctx)
    await ensure_server(target, ctx, then="writing the notebooks on the new Hub")
    for path in paths:
        latest = await target.versions.latest(ws, path)
        text = None if latest is None else await target.versions.content(latest.sha256)
        if text is None:
            raise PermanentError(f"the latest version of {path} has no stored content")
        await target.contents.ensure_parent(ws, path)
        await target.contents.write_notebook(ws, path, json.loads(text))
    await ctx.observer.stopping(StopReason.MOVE)
    was_running = await target.hub.stop_server(ws)
    await ctx.observer.stopped(StopReason.MOVE, was_running=was_running)
