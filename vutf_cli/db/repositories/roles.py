"""Roles and user-role assignments: lookups, locks and the effective-permission query.

An assignment counts while it is live (``NOT user_roles.is_deleted``), its
role is live, and ``expires_at IS NULL OR expires_at > now``: an expired
assignment stops counting at its instant, in the query, with no job running.
``prune`` only tidies such rows away.

Assignment changes of one role are serialized by a row lock on the role
(:meth:`RoleRepository.lock`, ``SELECT … FOR UPDATE``; SQLite writers are
serialized by ``BEGIN IMMEDIATE`` already): a role deleted while it is being
assigned is seen as deleted by whichever transaction comes second, so no live
assignment of a deleted role is ever left behind.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BindParameter,
    Boolean,
    ColumnElement,
    Integer,
    Select,
    bindparam,
    func,
    not_,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.orm import joinedload

from vutf_cli.db.models import Role, User, UserRole
from vutf_cli.db.repositories.base import BaseRepository
from vutf_cli.errors import NotFound

__all__ = ["AssignmentRepository", "RoleRepository", "counting", "live"]


def live(column: Any) -> ColumnElement[bool]:
    """``NOT <table>.is_deleted``, spelled as the partial indexes' predicate (see base)."""
    return cast(ColumnElement[bool], type_coerce(not_(type_coerce(column, Integer)), Boolean))


def unexpired(now: datetime | BindParameter[datetime]) -> ColumnElement[bool]:
    return or_(UserRole.expires_at.is_(None), UserRole.expires_at > now)


def counting(now: datetime | BindParameter[datetime]) -> tuple[ColumnElement[bool], ...]:
    """When an assignment (joined to its role) counts at ``now``: the one rule.

    Live assignment of a live role, unexpired.  :meth:`AssignmentRepository.granting`
    and the key lookup that reads its owner's roles in the same statement
    (``ApiKeyRepository.authenticate_key``) both join on exactly this.
    """
    return live(UserRole.is_deleted), live(Role.is_deleted), unexpired(now)


@functools.cache
def _granting_statement() -> Select[Any]:
    # Built once: only the user and the instant change from call to call.
    return (
        select(Role.name, Role.permissions, UserRole.expires_at)
        .join(Role, Role.id == UserRole.role_id)
        .where(
            UserRole.user_id == bindparam("user_id", type_=UserRole.user_id.type),
            *counting(bindparam("now", type_=UserRole.expires_at.type)),
        )
        .order_by(func.lower(Role.name))
    )


class RoleRepository(BaseRepository[Role]):
    model = Role
    label = "role"

    def get_by_name(self, name: str, *, include_deleted: bool = False) -> Role | None:
        """The role named ``name`` (any case); with ``include_deleted`` the live one wins,
        failing that the most recently deleted."""
        statement = self._select(include_deleted).where(
            func.lower(Role.name) == name.strip().lower()
        )
        if include_deleted:
            statement = statement.order_by(
                Role.is_deleted.asc(), Role.deleted_at.desc().nulls_first(), Role.created_at.desc()
            )
        return self.session.scalars(statement.limit(1)).first()

    def find(self, ident: str, *, include_deleted: bool = False) -> Role | None:
        """The role named ``ident`` (any case) or with that id, or None."""
        role = self.get_by_name(ident, include_deleted=include_deleted)
        if role is None:
            try:
                role_id = uuid.UUID(ident.strip())
            except ValueError:
                return None
            role = self.get(role_id, include_deleted=include_deleted)
        return role

    def require(self, ident: str, *, include_deleted: bool = False) -> Role:
        """The role named ``ident`` (or with that id); NotFound otherwise."""
        role = self.find(ident, include_deleted=include_deleted)
        if role is None:
            shown = ident if len(ident) <= 60 else ident[:60] + "…"
            raise NotFound(f"role {shown!r} not found", hint="list them: vutf roles list")
        return role

    def lock(self, role: Role) -> Role:
        """``role`` re-read under a row lock (as committed now, deleted or not)."""
        statement = (
            select(Role)
            .where(Role.id == role.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return self.session.scalars(statement).one()

    def list_roles(self, *, include_deleted: bool = False) -> list[Role]:
        statement = self._select(include_deleted).order_by(func.lower(Role.name), Role.created_at)
        return list(self.session.scalars(statement))

    def member_counts(self, now: datetime) -> dict[uuid.UUID, int]:
        """Role id → users holding it now (live, unexpired assignments of live users)."""
        statement = (
            select(UserRole.role_id, func.count())
            .join(User, User.id == UserRole.user_id)
            .where(live(UserRole.is_deleted), live(User.is_deleted), unexpired(now))
            .group_by(UserRole.role_id)
        )
        return {role_id: count for role_id, count in self.session.execute(statement)}


class AssignmentRepository(BaseRepository[UserRole]):
    model = UserRole
    label = "role assignment"

    def _with_names(self) -> Any:
        return self._select().options(joinedload(UserRole.user), joinedload(UserRole.role))

    def live_for(self, user_id: uuid.UUID, role_id: uuid.UUID) -> UserRole | None:
        """The live assignment of ``role_id`` to ``user_id`` (expired or not), if any."""
        statement = self._with_names().where(
            UserRole.user_id == user_id, UserRole.role_id == role_id
        )
        return cast(UserRole | None, self.session.scalars(statement).first())

    def assign(
        self, user: User, role: Role, *, expires_at: datetime | None, now: datetime
    ) -> UserRole:
        assignment = self.create(
            user_id=user.id,
            role_id=role.id,
            granted_by=self.actor,
            granted_at=now,
            expires_at=expires_at,
        )
        assignment.user = user
        assignment.role = role
        return assignment

    def of_user(self, user_id: uuid.UUID) -> list[UserRole]:
        """The live assignments of a user (expired ones too), by role name."""
        statement = (
            self._with_names()
            .join(Role, Role.id == UserRole.role_id)
            .where(UserRole.user_id == user_id, live(Role.is_deleted))
            .order_by(func.lower(Role.name))
        )
        return list(self.session.scalars(statement).unique())

    def of_role(self, role_id: uuid.UUID, *, now: datetime, expired: bool) -> list[UserRole]:
        """The live assignments of a role to live users (``expired``: past-expiry ones too)."""
        statement = (
            self._with_names()
            .join(User, User.id == UserRole.user_id)
            .where(UserRole.role_id == role_id, live(User.is_deleted))
            .order_by(func.lower(User.username))
        )
        if not expired:
            statement = statement.where(unexpired(now))
        return list(self.session.scalars(statement).unique())

    def of_role_ids(self, role_id: uuid.UUID) -> list[UserRole]:
        """Every live assignment of a role (whatever its user or expiry)."""
        statement = self._with_names().where(UserRole.role_id == role_id)
        return list(self.session.scalars(statement).unique())

    def granting(self, user_id: uuid.UUID, now: datetime) -> Sequence[Any]:
        """(role name, permissions, expires_at) of each assignment that counts at ``now``."""
        return list(self.session.execute(_granting_statement(), {"user_id": user_id, "now": now}))

    def expired(self, now: datetime) -> list[UserRole]:
        """Live assignments whose expiry has passed (what ``prune-expired`` tidies)."""
        statement = (
            self._with_names()
            .where(UserRole.expires_at.is_not(None), UserRole.expires_at <= now)
            .order_by(UserRole.expires_at, UserRole.id)
        )
        return list(self.session.scalars(statement).unique())
