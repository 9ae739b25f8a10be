"""Moves of workspaces between Hubs: one row per ``move-user`` command, with the step
it reached (so a move resumes where a crash left it) and the record once done.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add hub_move."""
    op.create_table(
        "hub_move",
        sa.Column("command_id", sa.Uuid(), primary_key=True),
        sa.Column("workspace", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=32), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("stored", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_hub_move_workspace", "hub_move", ["workspace"])


def downgrade() -> None:
    """Drop hub_move."""
    op.drop_index("ix_hub_move_workspace", table_name="hub_move")
    op.drop_table("hub_move")
