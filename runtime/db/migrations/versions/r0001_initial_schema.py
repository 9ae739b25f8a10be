"""Initial schema: apps and keys, commands, notebooks, versions and content blobs.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_INDEXES = [
    ("command", "app", False),
    ("command", "created_at", False),
    ("command", "status", False),
    ("command", "user", False),
    ("notebook", "user", False),
    ("app_key", "app", False),
    ("app_key", "key_hash", True),
    ("notebook_version", "command_id", False),
    ("notebook_version", "notebook_id", False),
]


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create every table of the initial schema."""
    op.create_table(
        "app",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("allowed_types", sa.JSON(), nullable=True),
        sa.Column("user_prefix", sa.String(length=64), nullable=True),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "command",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("app", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("user", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.Column("correlation_id", sa.String(length=128), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        _timestamp("finished_at", nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("app", "idempotency_key", name="uq_command_idem"),
    )
    op.create_table(
        "notebook",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("latest_version_id", sa.Uuid(), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user", "path", name="uq_notebook_user_path"),
    )
    op.create_table(
        "notebook_blob",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )
    op.create_table(
        "app_key",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("app", sa.String(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("key_prefix", sa.String(length=16), nullable=False),
        _timestamp("created_at"),
        _timestamp("revoked_at", nullable=True),
        sa.ForeignKeyConstraint(["app"], ["app.name"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "notebook_version",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("notebook_id", sa.Uuid(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("command_id", sa.Uuid(), nullable=True),
        _timestamp("created_at"),
        sa.ForeignKeyConstraint(["notebook_id"], ["notebook.id"]),
        sa.ForeignKeyConstraint(["sha256"], ["notebook_blob.sha256"]),
        sa.PrimaryKeyConstraint("id"),
    )
    for table, column, unique in _INDEXES:
        op.create_index(f"ix_{table}_{column}", table, [column], unique=unique)


def downgrade() -> None:
    """Drop every table (and its data)."""
    for table, column, _unique in reversed(_INDEXES):
        op.drop_index(f"ix_{table}_{column}", table_name=table)
    for table in ("notebook_version", "app_key", "notebook_blob", "notebook", "command", "app"):
        op.drop_table(table)
