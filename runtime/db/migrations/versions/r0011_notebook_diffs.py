"""Diffs between notebook versions, cached by the two contents' hashes.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add notebook_diff."""
    op.create_table(
        "notebook_diff",
        sa.Column("before_sha256", sa.String(length=64), primary_key=True),
        sa.Column("after_sha256", sa.String(length=64), primary_key=True),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    """Drop notebook_diff."""
    op.drop_table("notebook_diff")
