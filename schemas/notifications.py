"""Contents notifications: what Jupyter servers report about files, as hints.

A single-user server's save extension POSTs a :class:`ContentsNotification` to the
hub service; the service checks the caller's token and publishes a
:class:`ContentsNotificationMessage` onto the commands exchange, keyed by the user, so
notifications are applied in order with that user's commands. A notification is only
a hint: the consumer reads the file itself (kernels hold the same token and could
forge one).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from schemas.commands import utcnow
from schemas.names import MAX_PATH_LENGTH, Username, normalise_relative_path

ContentsPath = Annotated[
    str,
    StringConstraints(max_length=MAX_PATH_LENGTH * 2),
    AfterValidator(normalise_relative_path),
]


class ContentsAction(StrEnum):
    """What happened to a file (``copy`` is reported as a save of the copy)."""

    SAVE = "save"
    RENAME = "rename"
    DELETE = "delete"


class ContentsNotification(BaseModel):
    """One file change inside a user's Jupyter server (the extension → hub service body).

    ``occurred_at`` is the time of the earliest save folded into this notification
    (bursts of saves of one file are coalesced, latest wins); ``coalesced`` counts them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, description="Idempotency key")
    user: Username = Field(description="Owner of the server the file lives in")
    action: ContentsAction
    path: ContentsPath = Field(description="The file (the new path for a rename)")
    source_path: ContentsPath | None = Field(
        default=None, description="The old path of a rename; absent otherwise"
    )
    occurred_at: datetime = Field(default_factory=utcnow)
    coalesced: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _source_only_for_rename(self) -> ContentsNotification:
        if (self.action == ContentsAction.RENAME) != (self.source_path is not None):
            raise ValueError("'source_path' is required for rename and only for rename")
        return self


class ContentsNotificationMessage(BaseModel):
    """What travels on the bus (header ``x-orch-kind: contents-notification``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    notification: ContentsNotification
    received_at: datetime = Field(default_factory=utcnow)
    hub: str | None = Field(
        default=None, description="The Hub whose service received it (ORCH_HUB_NAME)"
    )

    @property
    def user(self) -> str:
        """The user the notification is about (also the partition routing key)."""
        return self.notification.user
