"""Drop ix_command_user: ix_command_user_status_created (0003) starts with ``user``.

Every query by user is served by the composite index, and each index of the command
table is one more B-tree page written per new command (a random one, for a key like the
user): the gateway's SQLite WAL traffic per accepted command fell by this index's share.

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


def upgrade() -> None:
    """Drop ix_command_user."""
    op.drop_index("ix_command_user", table_name="command")


def downgrade() -> None:
    """Re-create ix_command_user."""
    op.create_index("ix_command_user", "command", ["user"])
