"""``vutf export-state``: the database as an identity file declares it.

Live users with their active role assignments, the roles that are not
built in (built-in ones are seeded by the schema, never declared), and the
active API keys (revoked and expired keys are history, not state).  A
file written from it plans empty against the same database.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select

from vutf_cli.db.database import Database
from vutf_cli.db.models import ApiKey, Role, User, UserRole
from vutf_cli.db.types import utcnow
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.roles import assignment_state
from vutf_cli.domain.views import api_key_state
from vutf_cli.services.declarative.format import (
    DesiredKey,
    DesiredMembership,
    DesiredRole,
    DesiredUser,
    Identity,
)

__all__ = ["current_state"]

_ALL_USER_FIELDS = frozenset({"full_name", "active", "superuser", "verified"})


def current_state(db: Database) -> Identity:
    """Every live user (with their roles), custom role and active API key, as declared."""

    def read(uow: UnitOfWork) -> Identity:
        now = utcnow()
        users = list(
            uow.session.scalars(
                select(User).where(User.is_deleted.is_(False)).order_by(User.username)
            )
        )
        names = {user.id: user.username for user in users}
        roles = list(
            uow.session.scalars(select(Role).where(Role.is_deleted.is_(False)).order_by(Role.name))
        )
        role_names = {role.id: role.name for role in roles}
        held: dict[uuid.UUID, list[DesiredMembership]] = {}
        for row in uow.session.scalars(
            select(UserRole).where(UserRole.is_deleted.is_(False)).order_by(UserRole.granted_at)
        ):
            if row.role_id in role_names and assignment_state(row.expires_at, False, now) == (
                "active"
            ):
                held.setdefault(row.user_id, []).append(
                    DesiredMembership(role_names[row.role_id], row.expires_at)
                )
        keys = [
            key
            for key in uow.session.scalars(select(ApiKey).where(ApiKey.is_deleted.is_(False)))
            if api_key_state(key, now) == "active" and key.user_id in names
        ]
        keys.sort(key=lambda k: (names[k.user_id], k.name))
        return Identity(
            roles=tuple(
                DesiredRole(
                    name=role.name,
                    scopes=tuple(sorted(role.permissions)),
                    description=role.description,
                    given=frozenset({"description"}),
                )
                for role in roles
                if not role.is_builtin
            ),
            users=tuple(
                DesiredUser(
                    username=u.username,
                    email=u.email,
                    full_name=u.full_name,
                    active=u.is_active,
                    superuser=u.is_superuser,
                    verified=u.is_verified,
                    roles=tuple(sorted(held.get(u.id, ()), key=lambda m: m.role.lower())),
                    given=_ALL_USER_FIELDS,
                )
                for u in users
            ),
            keys=tuple(
                DesiredKey(
                    owner=names[k.user_id],
                    name=k.name,
                    scopes=tuple(sorted(s for s, granted in k.permissions.items() if granted)),
                    expires_at=k.expires_at,
                    given=frozenset({"scopes", "expires_at"}),
                )
                for k in keys
            ),
        )

    return db.run(read, read_only=True)
