"""Workspaces: every notebook belongs to one app's workspace of its person.

Adds the ``workspace`` table and moves each existing notebook into the workspace of
the app that wrote it: the app of the earliest command among its versions, or, for
notebooks only ever saved inside Jupyter, the app ``legacy``. ``notebook.user`` then
holds the workspace's Hub user (``schemas.workspaces.workspace_name``). The files of
old notebooks stay in the person's old Hub user; ``open`` restores the latest stored
version into the new workspace.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from schemas.workspaces import workspace_name

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

LEGACY_APP = "legacy"


def upgrade() -> None:
    """Create ``workspace``; rename each notebook's user to its workspace."""
    op.create_table(
        "workspace",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("app", sa.String(64), nullable=False),
        sa.Column("user", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("app", "user", name="uq_workspace_app_user"),
    )
    connection = op.get_bind()
    owners = connection.execute(
        sa.text(
            "SELECT n.id, n.user, ("
            "  SELECT c.app FROM notebook_version v JOIN command c ON c.id = v.command_id"
            "  WHERE v.notebook_id = n.id ORDER BY v.created_at LIMIT 1"
            ") FROM notebook n"
        )
    ).all()
    recorded: set[str] = set()
    for notebook_id, user, app in owners:
        owner_app = app or LEGACY_APP
        name = workspace_name(owner_app, user)
        if name not in recorded:
            connection.execute(
                sa.text(
                    'INSERT INTO workspace (name, app, "user", created_at) '
                    "VALUES (:name, :app, :user, CURRENT_TIMESTAMP)"
                ),
                {"name": name, "app": owner_app, "user": user},
            )
            recorded.add(name)
        connection.execute(
            sa.text('UPDATE notebook SET "user" = :name WHERE id = :id'),
            {"name": name, "id": notebook_id},
        )


def downgrade() -> None:
    """Give notebooks back their person's name and drop ``workspace``."""
    connection = op.get_bind()
    connection.execute(
        sa.text(
            'UPDATE notebook SET "user" = ('
            '  SELECT w."user" FROM workspace w WHERE w.name = notebook."user"'
            ') WHERE "user" IN (SELECT name FROM workspace)'
        )
    )
    op.drop_table("workspace")
