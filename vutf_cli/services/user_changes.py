"""What every change to a user shares: the version pin and the audit row it writes.

Used by the lifecycle (:mod:`vutf_cli.services.users`), the passwords
(:mod:`vutf_cli.services.user_passwords`) and the import
(:mod:`vutf_cli.services.user_transfer`), so that a user's audit rows look
the same whichever command wrote them.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from vutf_cli.db.models import User
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.errors import StaleVersion
from vutf_cli.services import audit_trail

__all__ = [
    "RESOURCE",
    "append_change",
    "change_row",
    "check_version",
    "profile",
    "subject",
    "user_id_named",
]

RESOURCE: Final = "user"


def user_id_named(uow: UnitOfWork, ident: str) -> uuid.UUID | None:
    """The id of the user ``ident`` (username, email or id) names, deleted users included."""
    user = uow.users.get_by_identifier(ident, include_deleted=True)
    return None if user is None else user.id


def subject(ident: str) -> audit_trail.Subject:
    """The user named ``ident``, as the subject of a refusal (e.g. of a key's owner)."""
    return audit_trail.Subject(ident, user_id_named)


# A refused change of a user names them in its failure row (user_id).
audit_trail.name_subjects(RESOURCE, user_id_named)


def profile(user: User) -> dict[str, Any]:
    """What an audit row records about a user (never the hash)."""
    return {
        "username": user.username,
        "email": user.email,
        "full_name": user.full_name,
        "is_active": user.is_active,
        "is_superuser": user.is_superuser,
        "is_verified": user.is_verified,
    }


def change_row(action: str, user: User, changes: dict[str, Any]) -> dict[str, Any]:
    """The audit row of ``action`` on ``user``: the keyword arguments of ``audit_trail.append``.

    The one shape of a user's row; the caller appends it (:func:`append_change`)
    or collects it for one bulk append (``vutf apply``).
    """
    return {
        "action": action,
        "resource_type": RESOURCE,
        "resource_id": str(user.id),
        "user_id": user.id,
        "changes": changes,
    }


def append_change(uow: UnitOfWork, action: str, user: User, changes: dict[str, Any]) -> None:
    """Append the audit row of ``action`` on ``user`` in the caller's transaction."""
    audit_trail.append(uow, **change_row(action, user, changes))


def check_version(user: User, expected_version: int | None) -> None:
    """StaleVersion unless ``user`` is still at the version the caller saw (if one was given)."""
    if expected_version is not None and user.version != expected_version:
        raise StaleVersion(
            f"user '{user.username}' is at version {user.version}, not {expected_version}; "
            "nothing was written",
            hint="re-read it (vutf users show) and try again",
        )
