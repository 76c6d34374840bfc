"""ORM models for the tables of docs/architecture.md §2 (SQLAlchemy 2.0 typed style).

Case-insensitive uniqueness is enforced by partial unique indexes over
``lower(column)`` that exclude soft-deleted rows (``WHERE NOT is_deleted``,
declared here for both dialects), so a deleted name can be registered again.
``version`` is SQLAlchemy's ``version_id_col``: every UPDATE carries ``WHERE
version = :old`` and a stale one fails instead of overwriting.

No ``from __future__ import annotations`` here: Declarative then receives the
``Mapped[...]`` annotations as objects instead of strings it would have to
evaluate one by one, which is measurably slower at every start-up.
"""

import uuid
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
    func,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from vutf_cli.db.base import Base
from vutf_cli.db.types import GUID, JSONType, UTCDateTime, utcnow

AUDIT_STATUSES = ("success", "failure", "error")

# Rows that count for uniqueness: soft-deleted ones do not.  Spelled exactly
# as the repositories' live condition, so SQLite's planner (which matches
# index predicates syntactically) uses these indexes too.
LIVE_ROWS: Final = "NOT is_deleted"


def unique_among_live_rows(name: str, *expressions: Any) -> Index:
    """A unique index over the rows that are not soft-deleted, on both dialects."""
    return Index(
        name,
        *expressions,
        unique=True,
        postgresql_where=text(LIVE_ROWS),
        sqlite_where=text(LIVE_ROWS),
    )


class AuditColumns:
    """Who created/changed a row and when, plus the optimistic-lock counter."""

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))


class SoftDeleteColumns:
    is_deleted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deleted_by: Mapped[str | None] = mapped_column(String(255))


class User(AuditColumns, SoftDeleteColumns, Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(GUID(), primary_key=True, default=uuid.uuid4)
    username: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(String(255))
    full_name: Mapped[str | None] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    is_superuser: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    is_verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_login_ip: Mapped[str | None] = mapped_column(String(45))
    # Lockout state (docs/architecture.md §2): failures in the current window.
    failed_login_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_failed_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())

    api_keys: Mapped[list["ApiKey"]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    __mapper_args__ = {"version_id_col": AuditColumns.version}

    __table_args__ = (
        CheckConstraint("length(username) BETWEEN 3 AND 100", name="username_length"),
        CheckConstraint("email = lower(email)", name="email_lower_case"),
        unique_among_live_rows("uq_users_username_live", func.lower(text("username"))),
        unique_among_live_rows("uq_users_email_live", func.lower(text("email"))),
        Index("ix_users_created_at_id", "created_at", "id"),
    )


class ApiKey(AuditColumns, SoftDeleteColumns, Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(GUID(), primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        GUID(), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    key_prefix: Mapped[str] = mapped_column(String(12), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    permissions: Mapped[dict[str, Any]] = mapped_column(JSONType(), default=dict)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_ip: Mapped[str | None] = mapped_column(String(45))
    usage_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # Which key pepper the hash was made with (a keyed digest, never the pepper).
    pepper_fingerprint: Mapped[str | None] = mapped_column(String(16))

    user: Mapped[User] = relationship(back_populates="api_keys")

    __mapper_args__ = {"version_id_col": AuditColumns.version}

    __table_args__ = (
        CheckConstraint("usage_count >= 0", name="usage_count_non_negative"),
        unique_among_live_rows("uq_api_keys_user_id_name_live", "user_id", "name"),
        Index("ix_api_keys_expires_at", "expires_at"),
    )


class AuditLog(Base):
    """One append-only, hash-chained audit entry.  Never updated, never deleted."""

    __tablename__ = "audit_log"

    id: Mapped[uuid.UUID] = mapped_column(GUID(), primary_key=True, default=uuid.uuid4)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[uuid.UUID | None] = mapped_column(GUID())
    action: Mapped[str] = mapped_column(String(100))
    resource_type: Mapped[str] = mapped_column(String(50))
    resource_id: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    changes: Mapped[dict[str, Any] | None] = mapped_column(JSONType())
    # ``metadata`` is reserved by Declarative; the column keeps its schema name.
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONType())
    error_message: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    prev_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        CheckConstraint(
            "status IN ('success', 'failure', 'error')",
            name="status_valid",
        ),
        CheckConstraint("seq > 0", name="seq_positive"),
        # Each filter of `vutf audit list` leads an index that ends in seq, so
        # filtered, seq-ordered keyset pages are index scans at any table size.
        Index("ix_audit_log_created_at_seq", "created_at", "seq"),
        Index("ix_audit_log_actor_seq", "actor", "seq"),
        Index("ix_audit_log_user_id_seq", "user_id", "seq"),
        Index("ix_audit_log_action_seq", "action", "seq"),
        Index("ix_audit_log_resource_seq", "resource_type", "resource_id", "seq"),
        Index("ix_audit_log_status_seq", "status", "seq"),
    )


class Role(AuditColumns, SoftDeleteColumns, Base):
    """A named set of API-key scopes (revision 0004_roles); built-in ones are read-only."""

    __tablename__ = "roles"

    id: Mapped[uuid.UUID] = mapped_column(GUID(), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    permissions: Mapped[dict[str, Any]] = mapped_column(JSONType(), default=dict)
    is_builtin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __mapper_args__ = {"version_id_col": AuditColumns.version}

    __table_args__ = (
        CheckConstraint("length(name) BETWEEN 2 AND 64", name="name_length"),
        unique_among_live_rows("uq_roles_name_live", func.lower(text("name"))),
    )


class UserRole(AuditColumns, SoftDeleteColumns, Base):
    """A role assigned to a user, until ``expires_at`` (if any) or removal."""

    __tablename__ = "user_roles"

    id: Mapped[uuid.UUID] = mapped_column(GUID(), primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(GUID(), ForeignKey("users.id", ondelete="CASCADE"))
    role_id: Mapped[uuid.UUID] = mapped_column(
        GUID(), ForeignKey("roles.id", ondelete="CASCADE"), index=True
    )
    granted_by: Mapped[str | None] = mapped_column(String(255))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship()
    role: Mapped[Role] = relationship()

    __mapper_args__ = {"version_id_col": AuditColumns.version}

    __table_args__ = (
        unique_among_live_rows("uq_user_roles_user_id_role_id_live", "user_id", "role_id"),
        Index("ix_user_roles_expires_at", "expires_at"),
    )


# Every table vutf owns (what `vutf db status` counts and a downgrade to base drops).
APP_TABLES: Final = (
    User.__tablename__,
    ApiKey.__tablename__,
    AuditLog.__tablename__,
    Role.__tablename__,
    UserRole.__tablename__,
)
