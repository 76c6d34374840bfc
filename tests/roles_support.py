"""Giving a test user a role without an audit row, for tests whose subject is not roles.

A key never carries more than its owner holds (docs/architecture.md §3.4):
``keys create`` refuses scopes the owner lacks and verification narrows a
key to them.  Tests about keys give their key owners the built-in ``admin``
role (every scope) here, behind the services' back, so that the audit rows
those tests count are only the ones of their subject.
"""

from __future__ import annotations

import uuid
from typing import Any

from vutf_cli.db.repositories.roles import AssignmentRepository, RoleRepository
from vutf_cli.db.types import utcnow
from vutf_cli.db.uow import UnitOfWork


def grant_role_in(uow: UnitOfWork, user: Any, role: str = "admin") -> None:
    """Assign ``role`` to ``user`` (a User row or its id) in ``uow``, writing no audit row."""
    if isinstance(user, uuid.UUID):
        user = uow.users.get_or_raise(user)
    found = RoleRepository(uow.session).require(role)
    AssignmentRepository(uow.session, actor="test setup").assign(
        user, found, expires_at=None, now=utcnow()
    )


def grant_role(db: Any, user: str | uuid.UUID, role: str = "admin") -> None:
    """Assign ``role`` to the user ``user`` (username, email or id) of the Database ``db``."""

    def write(uow: UnitOfWork) -> None:
        target = uow.users.require(str(user))
        grant_role_in(uow, target, role)

    db.run(write)


def grant_role_at(database_url: str, user: str, role: str = "admin") -> None:
    """:func:`grant_role` on the database at ``database_url`` (for CLI and e2e tests)."""
    from vutf_cli.db.database import Database
    from vutf_cli.settings import Settings

    db = Database(Settings(database_url=database_url, db_deadline=5.0, argon2_profile="test"))
    try:
        grant_role(db, user, role)
    finally:
        db.dispose()
