"""The server lifecycle: progress of running commands, the spawn line, the servers the
orchestrator knows and their scheduled culls, per-app culling policy, job leases.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add command.progress, the app's culling policy, and three tables."""
    with op.batch_alter_table("command") as batch:
        batch.add_column(sa.Column("progress", sa.JSON(), nullable=True))
    with op.batch_alter_table("app") as batch:
        batch.add_column(sa.Column("idle_timeout_seconds", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_age_seconds", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("cull_grace_seconds", sa.Integer(), nullable=True))
    op.create_table(
        "spawn_waiter",
        sa.Column("holder", sa.String(length=128), primary_key=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_spawn_waiter_since", "spawn_waiter", ["since"])
    op.create_table(
        "server",
        sa.Column("workspace", sa.String(length=64), primary_key=True),
        sa.Column("app", sa.String(length=64), nullable=False),
        sa.Column("user", sa.String(length=64), nullable=False),
        sa.Column("running", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_activity", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cull_reason", sa.String(length=16), nullable=True),
        sa.Column("cull_scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cull_deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cull_command_id", sa.Uuid(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "job_lease",
        sa.Column("name", sa.String(length=64), primary_key=True),
        sa.Column("holder", sa.String(length=128), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_table("job_lease")
    op.drop_table("server")
    op.drop_index("ix_spawn_waiter_since", table_name="spawn_waiter")
    op.drop_table("spawn_waiter")
    with op.batch_alter_table("app") as batch:
        batch.drop_column("cull_grace_seconds")
        batch.drop_column("max_age_seconds")
        batch.drop_column("idle_timeout_seconds")
    with op.batch_alter_table("command") as batch:
        batch.drop_column("progress")
