"""Contents notifications from Jupyter, turned into stored versions and events.

A notification is only a hint (kernels hold the server's token and could forge one),
so a save is re-read through the contents API with the orchestrator's own token,
validated, and stored as a version (origin ``jupyter``) unless identical to the
latest; then ``notebook.saved`` is published. Renames and deletes are checked against
the server too (the old path gone, the new one there), then followed in the database
(versions are kept) and published as ``notebook.renamed`` / ``notebook.deleted``.
Files that are not notebooks are ignored. Notifications run under the user's lock, so
they are applied in order with that user's commands. The notifying Hub user is a
workspace: its events name the workspace's person and carry its app's id, so only
that app sees them.
"""

from __future__ import annotations

import posixpath

import structlog
from pydantic import ValidationError

from consumers.errors import InvalidNotebook, NotFoundError, PermanentError, TransientError
from consumers.event_publisher import EventPublisher, PendingEvent
from consumers.handlers import announce_version
from consumers.hubs import HubPorts
from consumers.notebook_codec import canonicalise
from consumers.ports import InboundMessage, NotebookIndex, NotebookReader, WorkspaceDirectory
from consumers.redelivery import Redelivery
from consumers.user_locks import UserLocks
from runtime.bus.publisher import PublishFailed
from runtime.metrics import SAVE_TO_EVENT_SECONDS
from schemas.commands import utcnow
from schemas.events import EventKind, NotebookDeleted, NotebookRenamed, SaveOrigin
from schemas.notifications import ContentsAction, ContentsNotification, ContentsNotificationMessage
from schemas.workspaces import Workspace

log = structlog.get_logger(__name__)


def _is_notebook(path: str) -> bool:
    return path.endswith(".ipynb")


def _under(folder: str, path: str) -> bool:
    return path.startswith(folder.rstrip("/") + "/")


class NotificationProcessor:
    """Applies contents notifications (a ``MessageHandler`` of the router)."""

    def __init__(
        self,
        contents: NotebookReader | HubPorts,
        notebooks: NotebookIndex,
        workspaces: WorkspaceDirectory,
        events: EventPublisher,
        redelivery: Redelivery,
        locks: UserLocks,
        *,
        inline_content_max_bytes: int = 16_384,
    ) -> None:
        # a notification is read through the Hub its workspace lives on
        self._hubs = contents if isinstance(contents, HubPorts) else None
        self._single = None if isinstance(contents, HubPorts) else contents
        self._notebooks = notebooks
        self._workspaces = workspaces
        self._events = events
        self._redelivery = redelivery
        self._locks = locks
        self._inline_max = inline_content_max_bytes

    async def handle(self, incoming: InboundMessage) -> None:
        """Apply one notification under the user's lock; ack, retry later or dead-letter.

        A notification whose event the broker did not confirm is given back to the
        queue; it is applied again (idempotently) and its events get the same ids.
        """
        try:
            message = ContentsNotificationMessage.model_validate_json(incoming.body)
        except (ValidationError, ValueError) as exc:
            reason = f"invalid notification: {str(exc)[:500]}"
            await self._redelivery.dead_letter(incoming, "poison", reason)
            await incoming.ack()
            return
        note = message.notification
        structlog.contextvars.bind_contextvars(
            user=note.user, correlation_id=str(note.id), action=note.action.value
        )
        async with self._locks.hold(note.user):
            try:
                who = await self._workspaces.owner(note.user) or Workspace(
                    note.user,
                    "",
                    note.user,  # a Hub user the orchestrator did not create
                    message.hub,  # on the Hub whose service received the notification
                )
                await self._apply(note, who, replayed=bool(incoming.redelivered))
            except PublishFailed:
                log.warning("event not confirmed; the notification will be redelivered")
                await incoming.nack(requeue=True)
                return
            except TransientError as exc:
                await self._redelivery.retry_or_give_up(incoming, exc.message, label="notification")
            except (NotFoundError, InvalidNotebook) as exc:
                log.info("notification skipped", reason=exc.message)
            except PermanentError as exc:
                await self._redelivery.dead_letter(incoming, exc.code, exc.message)
            except Exception as exc:
                log.exception("notification handler crashed")
                reason = f"handler crashed: {type(exc).__name__}"
                await self._redelivery.dead_letter(incoming, "crash", reason)
        await incoming.ack()

    def _reader(self, who: Workspace) -> NotebookReader:
        """The contents of the Hub ``who`` lives on."""
        if self._hubs is not None:
            return self._hubs.for_hub(who.hub).contents
        assert self._single is not None
        return self._single

    async def _apply(self, note: ContentsNotification, who: Workspace, *, replayed: bool) -> None:
        if note.action == ContentsAction.SAVE:
            await self._save(note, who, note.path, replayed=replayed)
        elif note.action == ContentsAction.RENAME:
            assert note.source_path is not None
            await self._rename(note, who, note.source_path, note.path, replayed=replayed)
        else:
            await self._delete(note, who)

    async def _save(
        self, note: ContentsNotification, who: Workspace, path: str, *, replayed: bool
    ) -> None:
        if not _is_notebook(path):
            return
        canonical = canonicalise(await self._reader(who).read_notebook(note.user, path))
        version = await self._notebooks.add_version(
            user=note.user,
            path=path,
            content=canonical.text,
            sha256=canonical.sha256,
            origin=SaveOrigin.JUPYTER,
            command_id=note.id,
        )
        if not (version.created or replayed):
            log.info("save left the notebook unchanged", path=path)
            return
        event = await announce_version(
            version,
            canonical,
            self._notebooks,
            inline_max_bytes=self._inline_max,
            user=who.user,
            hub=who.hub,
        )
        await self._publish(note, who, event)
        lag = (utcnow() - note.occurred_at).total_seconds()
        SAVE_TO_EVENT_SECONDS.observe(max(0.0, lag))
        log.info("jupyter save stored", path=path, version_id=str(version.id), lag=round(lag, 4))

    async def _rename(
        self, note: ContentsNotification, who: Workspace, old: str, new: str, *, replayed: bool
    ) -> None:
        reader = self._reader(who)
        if await reader.exists(note.user, old) or not await reader.exists(note.user, new):
            log.info("rename not seen in the server; ignored", old_path=old, new_path=new)
            return
        if _is_notebook(old) and _is_notebook(new):
            if await self._notebooks.rename(note.user, old, new):
                await self._renamed(note, who, old, new)
                return
            await self._deleted(note, who, old)  # untracked source or target taken: start anew
            await self._save(note, who, new, replayed=replayed)
        elif _is_notebook(old):
            await self._deleted(note, who, old)
        elif _is_notebook(new):
            await self._save(note, who, new, replayed=replayed)
        else:  # a folder: every tracked notebook below it moves
            for summary in await self._notebooks.notebooks(note.user):
                if _under(old, summary.path):
                    moved = posixpath.join(new, summary.path[len(old.rstrip("/")) + 1 :])
                    if await self._notebooks.rename(note.user, summary.path, moved):
                        await self._renamed(note, who, summary.path, moved)

    async def _delete(self, note: ContentsNotification, who: Workspace) -> None:
        if await self._reader(who).exists(note.user, note.path):
            log.info("deleted file exists in the server; ignored", path=note.path)
            return
        if _is_notebook(note.path):
            await self._deleted(note, who, note.path)
            return
        for summary in await self._notebooks.notebooks(note.user):
            if _under(note.path, summary.path) and not summary.deleted:
                await self._deleted(note, who, summary.path)

    async def _renamed(
        self, note: ContentsNotification, who: Workspace, old: str, new: str
    ) -> None:
        data = NotebookRenamed(
            user=who.user, old_path=old, new_path=new, renamed_at=note.occurred_at
        )
        event = PendingEvent(EventKind.NOTEBOOK_RENAMED, data, subject=f"{who.user}/{new}")
        await self._publish(note, who, event)
        log.info("jupyter rename followed", old_path=old, new_path=new)

    async def _deleted(self, note: ContentsNotification, who: Workspace, path: str) -> None:
        if not await self._notebooks.mark_deleted(note.user, path):
            return
        data = NotebookDeleted(user=who.user, path=path, deleted_at=note.occurred_at)
        event = PendingEvent(EventKind.NOTEBOOK_DELETED, data, subject=f"{who.user}/{path}")
        await self._publish(note, who, event)
        log.info("jupyter delete followed", path=path)

    async def _publish(
        self, note: ContentsNotification, who: Workspace, pending: PendingEvent
    ) -> None:
        """Publish as an event of the workspace's app (``who.app``; none for a Hub user the
        orchestrator did not create), with an id derived from the notification."""
        await self._events.publish(
            pending, caused_by=note.id, correlation_id=str(note.id), app_id=who.app or None
        )
