"""What every change to a user shares: the version pin and the audit row it writes.

Used by the lifecycle (:mod:`vutf_cli.services.users`), the passwords
(:mod:`vutf_cli.services.user_passwords`) and the import
(:mod:`vutf_cli.services.user_transfer`), so that a user's audit rows look
the same whichever command wrote them.
"""

from __future__ import annotations

from typing import Any, Final

from vutf_cli.db.models import User
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.errors import StaleVersion
from vutf_cli.services import audit_trail

__all__ = ["RESOURCE", "append_change", "check_version", "profile"]

RESOURCE: Final = "user"


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


def append_change(uow: UnitOfWork, action: str, user: User, changes: dict[str, Any]) -> None:
    """Append the audit row of ``action`` on ``user`` in the caller's transaction."""
    audit_trail.append(
        uow,
        action=action,
        resource_type=RESOURCE,
        resource_id=str(user.id),
        user_id=user.id,
        changes=changes,
    )


def check_version(user: User, expected_version: int | None) -> None:
    """StaleVersion unless ``user`` is still at the version the caller saw (if one was given)."""
    if expected_version is not None and user.version != expected_version:
        raise StaleVersion(
            f"user '{user.username}' is at version {user.version}, not {expected_version}; "
            "nothing was written",
            hint="re-read it (vutf users show) and try again",
        )
