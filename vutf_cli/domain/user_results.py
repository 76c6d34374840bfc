"""What the user services return besides pages of users (see :mod:`vutf_cli.services.users`).

Frozen, built inside the transaction like the views.  They live apart from
the service so that ``vutf users list``, which needs none of them, does not
create their classes at start-up (each frozen dataclass costs about a
millisecond to create); :mod:`vutf_cli.services.users` re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vutf_cli.domain.user_view import UserView
from vutf_cli.domain.views import ApiKeyView

__all__ = ["CreatedUser", "DeletedUser", "UserChange", "UserDetail", "UserExport"]


@dataclass(frozen=True, slots=True)
class UserExport(UserView):
    """A user as exported: every column of :class:`UserView`, plus the hash when asked."""

    password_hash: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class CreatedUser:
    user: UserView
    created: bool
    # Only for --generate-password, and only when the user was created.
    password: str | None = field(default=None, repr=False)
    # With --if-not-exists: fields of the existing user that differ from the request.
    differences: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UserChange:
    """A user after a change; ``changed`` is False when it was already so."""

    user: UserView
    changed: bool
    fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UserDetail:
    user: UserView
    # None unless the keys were asked for; deleted keys are left out.
    api_keys: tuple[ApiKeyView, ...] | None = None


@dataclass(frozen=True, slots=True)
class DeletedUser:
    user: UserView
    hard: bool
    # Soft delete: keys revoked now.  Hard delete: keys removed with the row.
    api_keys: int
    # False when the user was already (soft-)deleted: nothing was written.
    changed: bool = True
