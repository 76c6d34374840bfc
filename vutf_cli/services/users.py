"""The life of a user, the work behind ``vutf users create``, ``update``, ``activate``,
``deactivate``, ``verify``, ``delete`` and ``restore``: primitives in, frozen views out.

Every function takes the :class:`~vutf_cli.db.database.Database` and plain
values, and runs through :func:`~vutf_cli.services.audit_trail.mutate`, so the
change and its ``success`` audit row commit together and a refusal (conflict,
not found, stale version) leaves a ``failure`` row.  Views are built inside
the transaction; no ORM object leaves it.  A password is hashed *before* the
write transaction opens (see :mod:`vutf_cli.services.user_passwords`).  The
other user services: reading (:mod:`vutf_cli.services.user_queries`),
passwords (:mod:`vutf_cli.services.user_passwords`), export and import
(:mod:`vutf_cli.services.user_transfer`).

Decisions where the issue left room (the command help refers here):

* Users are named by username, email (anything with ``@``) or id.
  ``delete`` and ``restore`` also find soft-deleted users (a live user of the
  same name wins); every other command acts on live users only.
* ``create --if-not-exists`` matches on the username: an existing live user is
  returned unchanged (``created`` false, no audit row, no password shown) and
  the fields that differ from the request are listed, so the caller can warn.
  Another user holding the email is still a conflict.
* ``update`` changes the email, full name (``""`` clears it) and superuser
  flag; ``expected_version`` pins the version the caller saw (a mismatch is
  StaleVersion, exit 4).  Values equal to the current ones are not a change:
  nothing is written and no audit row is added.
* ``activate``, ``deactivate`` and ``verify`` are idempotent: a user already
  in that state is returned unchanged (``changed`` false, no audit row).
* ``delete`` soft-deletes and revokes the user's API keys in the same
  transaction (one ``user.delete`` row listing the revoked key ids);
  deleting an already deleted user is a Conflict.  ``hard`` removes the row,
  the database cascades to the keys, and also purges a soft-deleted user.
  ``restore`` undoes a soft delete (a live user is a Conflict, as is a name
  or email registered again meanwhile); revoked keys stay revoked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vutf_cli.db.database import Database
from vutf_cli.db.models import User
from vutf_cli.db.types import utcnow
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.user_view import UserView
from vutf_cli.domain.validation import normalize_email, validate_full_name, validate_username
from vutf_cli.errors import Conflict, InvalidInput
from vutf_cli.services.audit_trail import mutate
from vutf_cli.services.user_changes import RESOURCE, append_change, check_version, profile
from vutf_cli.services.user_passwords import generate_password

if TYPE_CHECKING:
    from vutf_cli.domain.user_results import (
        CreatedUser,
        DeletedUser,
        UserChange,
        UserDetail,
        UserExport,
    )

__all__ = [
    "CreatedUser",
    "DeletedUser",
    "UserChange",
    "UserDetail",
    "UserExport",
    "activate_user",
    "create_user",
    "deactivate_user",
    "delete_user",
    "restore_user",
    "update_user",
    "verify_user",
]


def __getattr__(name: str) -> Any:
    # The results are created on first use (see vutf_cli.domain.user_results),
    # and stay importable from here.
    if name in ("CreatedUser", "DeletedUser", "UserChange", "UserDetail", "UserExport"):
        from vutf_cli.domain import user_results

        return getattr(user_results, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- create ----------------------------------------------------------------------
def create_user(
    db: Database,
    *,
    username: str,
    email: str,
    password: str | None = None,
    generate: bool = False,
    full_name: str | None = None,
    is_superuser: bool = False,
    is_verified: bool = False,
    if_not_exists: bool = False,
) -> CreatedUser:
    """Register a user with ``password``, or a generated one (returned once) with ``generate``."""
    from vutf_cli.domain.user_results import CreatedUser

    if (password is None) != generate:
        raise InvalidInput("give a password or ask for a generated one (exactly one of them)")
    username = validate_username(username)
    email = normalize_email(email)
    full_name = validate_full_name(full_name)
    passwords = db.passwords
    secret = generate_password(passwords.min_length) if password is None else password
    passwords.check_strength(secret)
    requested = {
        "email": email,
        "full_name": full_name,
        "is_superuser": is_superuser,
        "is_verified": is_verified,
    }

    def existing(uow: UnitOfWork) -> CreatedUser | None:
        user = uow.users.get_by_username(username)
        if user is None:
            return None
        differences = tuple(
            name for name, value in requested.items() if getattr(user, name) != value
        )
        return CreatedUser(UserView.from_row(user), created=False, differences=differences)

    if if_not_exists:
        # Looked up first so that an existing user costs no argon2 hash.
        found = db.run(existing, read_only=True)
        if found is not None:
            return found
    password_hash = passwords.hash(secret)

    def create(uow: UnitOfWork) -> CreatedUser:
        if if_not_exists:
            found = existing(uow)  # created meanwhile by someone else
            if found is not None:
                return found
        user = uow.users.create_user(
            username=username,
            email=email,
            password_hash=password_hash,
            full_name=full_name,
            is_superuser=is_superuser,
            is_verified=is_verified,
        )
        append_change(uow, "user.create", user, profile(user))
        return CreatedUser(
            UserView.from_row(user), created=True, password=secret if generate else None
        )

    return mutate(db, create, action="user.create", resource_type=RESOURCE, resource_id=username)


# -- change ----------------------------------------------------------------------
def update_user(
    db: Database,
    ident: str,
    *,
    email: str | None = None,
    full_name: str | None = None,
    is_superuser: bool | None = None,
    expected_version: int | None = None,
) -> UserChange:
    """Change the email, full name (``""`` clears it) or superuser flag of a live user."""
    from vutf_cli.domain.user_results import UserChange

    if email is None and full_name is None and is_superuser is None:
        raise InvalidInput(
            "nothing to update", hint="give --email, --full-name or --superuser/--no-superuser"
        )
    wanted: dict[str, Any] = {}
    if email is not None:
        wanted["email"] = normalize_email(email)
    if full_name is not None:
        wanted["full_name"] = validate_full_name(full_name)
    if is_superuser is not None:
        wanted["is_superuser"] = is_superuser

    def change(uow: UnitOfWork) -> UserChange:
        user = uow.users.require(ident)
        check_version(user, expected_version)
        changes = {name: value for name, value in wanted.items() if getattr(user, name) != value}
        if not changes:
            return UserChange(UserView.from_row(user), changed=False)
        before = {name: getattr(user, name) for name in changes}
        uow.users.update(user, **changes)
        append_change(
            uow,
            "user.update",
            user,
            {name: {"old": before[name], "new": value} for name, value in changes.items()},
        )
        return UserChange(UserView.from_row(user), changed=True, fields=tuple(changes))

    return mutate(db, change, action="user.update", resource_type=RESOURCE, resource_id=ident)


def _set_flag(
    db: Database, ident: str, action: str, apply: Callable[[UnitOfWork, User], bool]
) -> UserChange:
    from vutf_cli.domain.user_results import UserChange

    def change(uow: UnitOfWork) -> UserChange:
        user = uow.users.require(ident)
        before = profile(user)
        if not apply(uow, user):
            return UserChange(UserView.from_row(user), changed=False)
        after = profile(user)
        changed = {name: after[name] for name in after if after[name] != before[name]}
        append_change(uow, action, user, changed)
        return UserChange(UserView.from_row(user), changed=True, fields=tuple(changed))

    return mutate(db, change, action=action, resource_type=RESOURCE, resource_id=ident)


def _activation(active: bool) -> Callable[[UnitOfWork, User], bool]:
    def apply(uow: UnitOfWork, user: User) -> bool:
        if user.is_active == active:
            return False
        uow.users.set_active(user, active)
        return True

    return apply


def activate_user(db: Database, ident: str) -> UserChange:
    return _set_flag(db, ident, "user.activate", _activation(True))


def deactivate_user(db: Database, ident: str) -> UserChange:
    return _set_flag(db, ident, "user.deactivate", _activation(False))


def verify_user(db: Database, ident: str) -> UserChange:
    def apply(uow: UnitOfWork, user: User) -> bool:
        if user.is_verified and user.verified_at is not None:
            return False
        uow.users.verify(user)
        return True

    return _set_flag(db, ident, "user.verify", apply)


def delete_user(db: Database, ident: str, *, hard: bool = False) -> DeletedUser:
    """Soft-delete a user and revoke their keys, or with ``hard`` remove the row."""
    from vutf_cli.domain.user_results import DeletedUser

    def remove(uow: UnitOfWork) -> DeletedUser:
        user = uow.users.require(ident, include_deleted=True)
        if hard:
            view = UserView.from_row(user)
            key_count = uow.keys.count(user_id=user.id, include_deleted=True)
            append_change(
                uow,
                "user.delete",
                user,
                {"hard": True, "username": user.username, "api_keys_removed": key_count},
            )
            uow.users.delete(user, hard=True)
            return DeletedUser(view, hard=True, api_keys=key_count)
        if user.is_deleted:
            raise Conflict(
                f"user '{user.username}' is already deleted",
                hint="use --hard to remove the row for good, or restore it",
            )
        now = utcnow()
        keys = uow.keys.list_for_user(user.id)
        revoked = [str(key.id) for key in keys if key.revoked_at is None]
        uow.keys.revoke_many(keys, now=now)
        uow.users.delete(user)
        append_change(uow, "user.delete", user, {"hard": False, "revoked_api_keys": revoked})
        return DeletedUser(UserView.from_row(user), hard=False, api_keys=len(revoked))

    return mutate(db, remove, action="user.delete", resource_type=RESOURCE, resource_id=ident)


def restore_user(db: Database, ident: str) -> UserView:
    """Undo a soft delete (its API keys stay revoked)."""

    def restore(uow: UnitOfWork) -> UserView:
        user = uow.users.require(ident, include_deleted=True)
        if not user.is_deleted:
            raise Conflict(f"user '{user.username}' is not deleted")
        uow.users.restore(user)
        append_change(uow, "user.restore", user, {"is_deleted": False})
        return UserView.from_row(user)

    return mutate(db, restore, action="user.restore", resource_type=RESOURCE, resource_id=ident)
