"""The outbox: messages recorded with the outcome that caused them, and the relay's index.

``outbox_message`` holds the events a finished command caused until the broker
confirmed them. ``ix_command_unfinished_updated`` (partial: unfinished commands only)
lets the relay find accepted or running commands nobody touched for a while, whose
message the broker may have lost, without scanning the command history.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UNFINISHED = sa.text("status IN ('accepted', 'running')")


def upgrade() -> None:
    """Create outbox_message and the partial index of unfinished commands."""
    op.create_table(
        "outbox_message",
        sa.Column("message_id", sa.String(length=64), primary_key=True),
        sa.Column("exchange", sa.String(length=128), nullable=False),
        sa.Column("routing_key", sa.String(length=255), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("caused_by", sa.Uuid(), nullable=True),
        sa.Column("correlation_id", sa.String(length=128), nullable=True),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("message_type", sa.String(length=128), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_outbox_message_caused_by", "outbox_message", ["caused_by"])
    op.create_index("ix_outbox_message_created_at", "outbox_message", ["created_at"])
    op.create_index(
        "ix_command_unfinished_updated",
        "command",
        ["updated_at"],
        sqlite_where=UNFINISHED,
        postgresql_where=UNFINISHED,
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_command_unfinished_updated", table_name="command")
    op.drop_index("ix_outbox_message_created_at", table_name="outbox_message")
    op.drop_index("ix_outbox_message_caused_by", table_name="outbox_message")
    op.drop_table("outbox_message")
