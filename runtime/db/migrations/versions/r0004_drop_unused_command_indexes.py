"""Drop the command table's indexes that no query uses.

Commands are read by id (primary key), by app and Idempotency-Key (the unique
constraint) and by the order barrier (ix_command_user_status_created, which also
serves any lookup by user). The single-column indexes on user, app, status and
created_at served none of these, and each index is one more B-tree page written per
committed batch of new commands and per status change: the gateway's SQLite WAL traffic
per accepted command fell by their share.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DROPPED = {
    "ix_command_user": ["user"],
    "ix_command_app": ["app"],
    "ix_command_status": ["status"],
    "ix_command_created_at": ["created_at"],
}


def upgrade() -> None:
    """Drop the unused single-column indexes."""
    for name in DROPPED:
        op.drop_index(name, table_name="command")


def downgrade() -> None:
    """Re-create them."""
    for name, columns in DROPPED.items():
        op.create_index(name, "command", columns)
