"""Spawn slots shared by every consumer process (one limit on concurrent spawns).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the spawn_slot table."""
    op.create_table(
        "spawn_slot",
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("slot"),
    )


def downgrade() -> None:
    """Drop the spawn_slot table."""
    op.drop_table("spawn_slot")
