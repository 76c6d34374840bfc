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
* A state change that already holds is not an error, in every group:
  ``activate``, ``deactivate`` and ``verify`` of a user already so, a soft
  ``delete`` of a deleted user and a ``restore`` of a live one return the
  user unchanged (``changed`` false, no audit row); the command says so on
  stderr and exits 0, so a re-run script passes.
* ``if_exists`` (``--if-exists`` of ``delete``, ``restore`` and
  ``deactivate``): a user that does not exist is not a refusal either; the
  function returns None and writes nothing, not even a failure row (nothing
  was refused: the caller asked for "if it exists").  Without it a missing
  user is NotFound (exit 3) with its failure row, as before.
* ``delete`` soft-deletes and revokes the user's API keys in the same
  transaction (one ``user.delete`` row listing the revoked key ids).
  ``hard`` removes the row, the database cascades to the keys, and also
  purges a soft-deleted user.  ``restore`` undoes a soft delete (a name or
  email registered again meanwhile is a Conflict); revoked keys stay
  revoked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, overload

from vutf_cli.db.database import Database
from vutf_cli.db.models import User
from vutf_cli.db.types import utcnow
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.user_view import UserView
from vutf_cli.domain.validation import normalize_email, validate_full_name, validate_username
from vutf_cli.errors import InvalidInput
from vutf_cli.services import audit_trail
from vutf_cli.services.audit_trail import mutate
from vutf_cli.services.user_changes import (
    RESOURCE,
    append_change,
    change_row,
    check_version,
    profile,
)
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
    "create_user_in",
    "deactivate_user",
    "delete_user",
    "existing_user",
    "restore_user",
    "set_active_in",
    "update_user",
    "update_user_in",
    "verify_user",
    "verify_user_in",
]


def __getattr__(name: str) -> Any:
    # The results are created on first use (see vutf_cli.domain.user_results),
    # and stay importable from here.
    if name in ("CreatedUser", "DeletedUser", "UserChange", "UserDetail", "UserExport"):
        from vutf_cli.domain import user_results

        return getattr(user_results, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- the changes inside a caller's transaction ---------------------------------------
# Each makes one change in ``uow`` and returns its audit row (the keyword
# arguments of ``audit_trail.append``), or None when nothing changed; the
# commands below append it, ``vutf apply`` collects it for one bulk append.
def create_user_in(
    uow: UnitOfWork,
    *,
    username: str,
    email: str,
    password_hash: str,
    full_name: str | None,
    is_superuser: bool,
    is_verified: bool,
    is_active: bool = True,
    known_free: bool = False,
) -> tuple[User, dict[str, Any]]:
    """Register a user whose password is already hashed; the user and its ``user.create`` row.

    ``known_free``: see :meth:`UserRepository.create_user`.
    """
    user = uow.users.create_user(
        username=username,
        email=email,
        password_hash=password_hash,
        full_name=full_name,
        is_superuser=is_superuser,
        is_verified=is_verified,
        is_active=is_active,
        known_free=known_free,
    )
    return user, change_row("user.create", user, profile(user))


def update_user_in(uow: UnitOfWork, user: User, changes: dict[str, Any]) -> dict[str, Any]:
    """Set ``changes`` (field -> value, each differing from now); the ``user.update`` row."""
    before = {name: getattr(user, name) for name in changes}
    uow.users.update(user, **changes)
    return change_row(
        "user.update",
        user,
        {name: {"old": before[name], "new": getattr(user, name)} for name in changes},
    )


def _flag_row(action: str, user: User, before: dict[str, Any]) -> dict[str, Any]:
    after = profile(user)
    return change_row(action, user, {k: after[k] for k in after if after[k] != before[k]})


def set_active_in(uow: UnitOfWork, user: User, active: bool) -> dict[str, Any] | None:
    """Activate or deactivate ``user``; its row, None if it already was so."""
    if user.is_active == active:
        return None
    before = profile(user)
    uow.users.set_active(user, active)
    return _flag_row("user.activate" if active else "user.deactivate", user, before)


def verify_user_in(uow: UnitOfWork, user: User) -> dict[str, Any] | None:
    """Mark ``user`` verified; its ``user.verify`` row, None if it already was."""
    if user.is_verified and user.verified_at is not None:
        return None
    before = profile(user)
    uow.users.verify(user)
    return _flag_row("user.verify", user, before)


# -- create ----------------------------------------------------------------------
def _existing_in(uow: UnitOfWork, username: str, requested: dict[str, Any]) -> CreatedUser | None:
    """The user ``username`` as ``create --if-not-exists`` reports it, with what differs."""
    from vutf_cli.domain.user_results import CreatedUser

    user = uow.users.get_by_username(username)
    if user is None:
        return None
    differences = tuple(name for name, value in requested.items() if getattr(user, name) != value)
    return CreatedUser(UserView.from_row(user), created=False, differences=differences)


def existing_user(
    db: Database,
    *,
    username: str,
    email: str,
    full_name: str | None = None,
    is_superuser: bool = False,
    is_verified: bool = False,
) -> CreatedUser | None:
    """``create_user(..., if_not_exists=True)``'s answer for a user that exists, or None.

    Read before any password is asked for or read (``users create
    --if-not-exists``): re-running the command must not make an operator
    type a password for a user that is already there, nor fail in a script
    that has no password to give.  The request is validated as create does.
    """
    requested = {
        "email": normalize_email(email),
        "full_name": validate_full_name(full_name),
        "is_superuser": is_superuser,
        "is_verified": is_verified,
    }
    name = validate_username(username)
    return db.run(lambda uow: _existing_in(uow, name, requested), read_only=True)


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
        return _existing_in(uow, username, requested)

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
        user, row = create_user_in(
            uow,
            username=username,
            email=email,
            password_hash=password_hash,
            full_name=full_name,
            is_superuser=is_superuser,
            is_verified=is_verified,
        )
        audit_trail.append(uow, **row)
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
        audit_trail.append(uow, **update_user_in(uow, user, changes))
        return UserChange(UserView.from_row(user), changed=True, fields=tuple(changes))

    return mutate(db, change, action="user.update", resource_type=RESOURCE, resource_id=ident)


def _find(uow: UnitOfWork, ident: str, *, if_exists: bool, include_deleted: bool) -> User | None:
    """The user named ``ident``; None if there is none and ``if_exists``, else NotFound."""
    if if_exists:
        return uow.users.get_by_identifier(ident, include_deleted=include_deleted)
    return uow.users.require(ident, include_deleted=include_deleted)


def _set_flag(
    db: Database,
    ident: str,
    action: str,
    apply: Callable[[UnitOfWork, User], dict[str, Any] | None],
    *,
    if_exists: bool = False,
) -> UserChange | None:
    from vutf_cli.domain.user_results import UserChange

    def change(uow: UnitOfWork) -> UserChange | None:
        user = _find(uow, ident, if_exists=if_exists, include_deleted=False)
        if user is None:
            return None
        row = apply(uow, user)
        if row is None:
            return UserChange(UserView.from_row(user), changed=False)
        audit_trail.append(uow, **row)
        return UserChange(UserView.from_row(user), changed=True, fields=tuple(row["changes"]))

    return mutate(db, change, action=action, resource_type=RESOURCE, resource_id=ident)


def _activation(active: bool) -> Callable[[UnitOfWork, User], dict[str, Any] | None]:
    def apply(uow: UnitOfWork, user: User) -> dict[str, Any] | None:
        return set_active_in(uow, user, active)

    return apply


def activate_user(db: Database, ident: str) -> UserChange:
    result = _set_flag(db, ident, "user.activate", _activation(True))
    assert result is not None  # without if_exists a missing user is NotFound
    return result


@overload
def deactivate_user(db: Database, ident: str) -> UserChange: ...
@overload
def deactivate_user(db: Database, ident: str, *, if_exists: Literal[False]) -> UserChange: ...
@overload
def deactivate_user(db: Database, ident: str, *, if_exists: bool) -> UserChange | None: ...
def deactivate_user(db: Database, ident: str, *, if_exists: bool = False) -> UserChange | None:
    """Deactivate a live user; with ``if_exists``, None (nothing written) if there is none."""
    return _set_flag(db, ident, "user.deactivate", _activation(False), if_exists=if_exists)


def verify_user(db: Database, ident: str) -> UserChange:
    result = _set_flag(db, ident, "user.verify", verify_user_in)
    assert result is not None  # without if_exists a missing user is NotFound
    return result


@overload
def delete_user(db: Database, ident: str, *, hard: bool = False) -> DeletedUser: ...
@overload
def delete_user(
    db: Database, ident: str, *, hard: bool = False, if_exists: Literal[False]
) -> DeletedUser: ...
@overload
def delete_user(
    db: Database, ident: str, *, hard: bool = False, if_exists: bool
) -> DeletedUser | None: ...
def delete_user(
    db: Database, ident: str, *, hard: bool = False, if_exists: bool = False
) -> DeletedUser | None:
    """Soft-delete a user and revoke their keys, or with ``hard`` remove the row.

    A soft delete of a deleted user changes nothing (``changed`` false); with
    ``if_exists``, a user that does not exist is None and nothing is written.
    """
    from vutf_cli.domain.user_results import DeletedUser

    def remove(uow: UnitOfWork) -> DeletedUser | None:
        user = _find(uow, ident, if_exists=if_exists, include_deleted=True)
        if user is None:
            return None
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
            return DeletedUser(UserView.from_row(user), hard=False, api_keys=0, changed=False)
        now = utcnow()
        keys = uow.keys.list_for_user(user.id)
        revoked = [str(key.id) for key in keys if key.revoked_at is None]
        uow.keys.revoke_many(keys, now=now)
        uow.users.delete(user)
        append_change(uow, "user.delete", user, {"hard": False, "revoked_api_keys": revoked})
        return DeletedUser(UserView.from_row(user), hard=False, api_keys=len(revoked))

    return mutate(db, remove, action="user.delete", resource_type=RESOURCE, resource_id=ident)


@overload
def restore_user(db: Database, ident: str) -> UserChange: ...
@overload
def restore_user(db: Database, ident: str, *, if_exists: Literal[False]) -> UserChange: ...
@overload
def restore_user(db: Database, ident: str, *, if_exists: bool) -> UserChange | None: ...
def restore_user(db: Database, ident: str, *, if_exists: bool = False) -> UserChange | None:
    """Undo a soft delete (its API keys stay revoked).

    A live user is returned unchanged (``changed`` false); with ``if_exists``,
    a user that does not exist is None and nothing is written.
    """
    from vutf_cli.domain.user_results import UserChange

    def restore(uow: UnitOfWork) -> UserChange | None:
        user = _find(uow, ident, if_exists=if_exists, include_deleted=True)
        if user is None:
            return None
        if not user.is_deleted:
            return UserChange(UserView.from_row(user), changed=False)
        uow.users.restore(user)
        append_change(uow, "user.restore", user, {"is_deleted": False})
        return UserChange(UserView.from_row(user), changed=True, fields=("is_deleted",))

    return mutate(db, restore, action="user.restore", resource_type=RESOURCE, resource_id=ident)
