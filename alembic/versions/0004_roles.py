"""Roles and user-role assignments, with the four built-in roles seeded.

Revision ID: 0004_roles
Revises: 0003_login_lockout
Create Date: 2026-12-07

``roles`` names a set of API-key scopes (``permissions``, the same JSON
object ``{scope: true}`` as ``api_keys.permissions``); ``user_roles`` assigns
a role to a user, with who granted it, when, and an optional expiry.  Both
have the audit and soft-delete columns of the other tables; names are unique
case-insensitively among live roles, and a user holds a role at most once
among live assignments.  The built-in roles (``is_builtin``) are seeded here
with fixed ids (the same in every database) and can be neither changed nor
deleted; their scopes are documented in docs/architecture.md §2.2.  Seeding
writes no audit row: a migration is not a command on the data.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Final

import sqlalchemy as sa
from alembic import op

from vutf_cli.db.types import GUID, JSONType, UTCDateTime

revision: str = "0004_roles"
down_revision: str | None = "0003_login_lockout"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEEDED_BY: Final = "vutf migration 0004_roles"

# name -> (fixed id, description, scopes).  Kept in step with
# vutf_cli.domain.roles.BUILTIN_ROLES (a test holds them together).
BUILTIN_ROLES: Final = {
    "admin": (
        uuid.UUID("4c0e5d1a-0b1e-4f3a-9a51-000000000001"),
        "Everything (scope *)",
        ("*",),
    ),
    "user-manager": (
        uuid.UUID("4c0e5d1a-0b1e-4f3a-9a51-000000000002"),
        "Manage users (scope users:*)",
        ("users:*",),
    ),
    "key-manager": (
        uuid.UUID("4c0e5d1a-0b1e-4f3a-9a51-000000000003"),
        "Manage API keys (scope api_keys:*)",
        ("api_keys:*",),
    ),
    "viewer": (
        uuid.UUID("4c0e5d1a-0b1e-4f3a-9a51-000000000004"),
        "Read everything (scope read)",
        ("read",),
    ),
}

LIVE: Final = sa.text("NOT is_deleted")


def _audit_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(255)),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(255)),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("is_deleted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("deleted_at", UTCDateTime()),
        sa.Column("deleted_by", sa.String(255)),
    ]


def upgrade() -> None:
    op.create_table(
        "roles",
        sa.Column("id", GUID(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("permissions", JSONType(), nullable=False),
        sa.Column("is_builtin", sa.Boolean(), server_default=sa.false(), nullable=False),
        *_audit_columns(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roles")),
        sa.CheckConstraint("length(name) BETWEEN 2 AND 64", name=op.f("ck_roles_name_length")),
    )
    op.create_index(
        "uq_roles_name_live",
        "roles",
        [sa.text("lower(name)")],
        unique=True,
        postgresql_where=LIVE,
        sqlite_where=LIVE,
    )
    op.create_table(
        "user_roles",
        sa.Column("id", GUID(), nullable=False),
        sa.Column("user_id", GUID(), nullable=False),
        sa.Column("role_id", GUID(), nullable=False),
        sa.Column("granted_by", sa.String(255)),
        sa.Column("granted_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime()),
        *_audit_columns(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_roles")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_roles_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["role_id"], ["roles.id"], name=op.f("fk_user_roles_role_id_roles"), ondelete="CASCADE"
        ),
    )
    op.create_index("ix_user_roles_role_id", "user_roles", ["role_id"])
    op.create_index("ix_user_roles_expires_at", "user_roles", ["expires_at"])
    op.create_index(
        "uq_user_roles_user_id_role_id_live",
        "user_roles",
        ["user_id", "role_id"],
        unique=True,
        postgresql_where=LIVE,
        sqlite_where=LIVE,
    )
    _seed_builtin_roles(op.get_context().dialect.name)


def _seed_builtin_roles(dialect: str) -> None:
    # Literal SQL, so that `vutf db upgrade --sql` renders it too.  Times come
    # from the database; on SQLite in the text form UTCDateTime stores.
    if dialect == "postgresql":
        now, true = "CURRENT_TIMESTAMP", "true"
    else:
        now, true = "strftime('%Y-%m-%d %H:%M:%f000', 'now')", "1"
    for name, (role_id, description, scopes) in BUILTIN_ROLES.items():
        permissions = json.dumps(dict.fromkeys(sorted(scopes), True), separators=(",", ":"))
        statement = (
            "INSERT INTO roles (id, name, description, permissions, is_builtin, created_at,"
            " created_by, updated_at, updated_by, version, is_deleted) VALUES"
            f" ('{role_id}', '{name}', '{description}', '{permissions}', {true}, {now},"
            f" '{SEEDED_BY}', {now}, '{SEEDED_BY}', 1, {'false' if true == 'true' else '0'})"
        )
        # A colon would start a bind parameter of sa.text(); these are literal.
        op.execute(sa.text(statement.replace(":", "\\:")))


def downgrade() -> None:
    op.drop_table("user_roles")
    op.drop_table("roles")
