"""Several JupyterHubs: the Hub each workspace lives on, spawn slots and the spawn line
per Hub, and each Hub's status (draining, healthy).

The spawn tables hold only leases and waiters of spawns in progress: they are made
again (a spawn in progress during the upgrade loses its place, nothing else).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _spawn_tables(with_hub: bool) -> None:
    hub = [sa.Column("hub", sa.String(length=32), primary_key=True)] if with_hub else []
    op.create_table(
        "spawn_slot",
        *hub,
        sa.Column("slot", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("holder", sa.String(length=128), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    )
    waiter_hub = [sa.Column("hub", sa.String(length=32), nullable=False)] if with_hub else []
    op.create_table(
        "spawn_waiter",
        sa.Column("holder", sa.String(length=128), primary_key=True),
        *waiter_hub,
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_spawn_waiter_since", "spawn_waiter", ["since"])


def _drop_spawn_tables() -> None:
    op.drop_index("ix_spawn_waiter_since", table_name="spawn_waiter")
    op.drop_table("spawn_waiter")
    op.drop_table("spawn_slot")


def upgrade() -> None:
    """Add workspace.hub, per-Hub spawn tables and hub_status."""
    with op.batch_alter_table("workspace") as batch:
        batch.add_column(sa.Column("hub", sa.String(length=32), nullable=True))
        batch.create_index("ix_workspace_hub", ["hub"])
    _drop_spawn_tables()
    _spawn_tables(with_hub=True)
    op.create_table(
        "hub_status",
        sa.Column("name", sa.String(length=32), primary_key=True),
        sa.Column("draining", sa.Boolean(), nullable=False),
        sa.Column("healthy", sa.Boolean(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
    )


def downgrade() -> None:
    """Back to one Hub."""
    op.drop_table("hub_status")
    _drop_spawn_tables()
    _spawn_tables(with_hub=False)
    with op.batch_alter_table("workspace") as batch:
        batch.drop_index("ix_workspace_hub")
        batch.drop_column("hub")
