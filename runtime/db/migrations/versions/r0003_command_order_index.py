"""Index for the order barrier: a user's unfinished commands accepted before one.

Without it the consumers' per-command query scanned all of a user's commands, so its
cost grew with the command history (measured in the soak as a slowly growing backlog).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ix_command_user_status_created."""
    op.create_index("ix_command_user_status_created", "command", ["user", "status", "created_at"])


def downgrade() -> None:
    """Drop ix_command_user_status_created."""
    op.drop_index("ix_command_user_status_created", table_name="command")
