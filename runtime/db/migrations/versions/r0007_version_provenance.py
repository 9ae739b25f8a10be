"""Who wrote each version: the app of its command, the version a restore wrote back,
and whether it is content a restore found unsaved on disk and kept first.

Existing versions keep their origin (``command`` or ``jupyter``); their app is taken
from their command where they have one.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add app, restored_from and before_overwrite to notebook_version."""
    with op.batch_alter_table("notebook_version") as batch:
        batch.add_column(sa.Column("app", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("restored_from", sa.Uuid(), nullable=True))
        batch.add_column(
            sa.Column("before_overwrite", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute(
        "UPDATE notebook_version SET app = "
        "(SELECT command.app FROM command WHERE command.id = notebook_version.command_id) "
        "WHERE command_id IS NOT NULL"
    )


def downgrade() -> None:
    """Drop them."""
    with op.batch_alter_table("notebook_version") as batch:
        batch.drop_column("before_overwrite")
        batch.drop_column("restored_from")
        batch.drop_column("app")
