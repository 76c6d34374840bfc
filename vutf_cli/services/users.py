"""User administration, the work behind ``vutf users``: primitives in, frozen views out.

Every function takes a :class:`~vutf_cli.services.runtime.Runtime` and
plain values.  Reads run in one read-only unit of work; every mutation runs
through :func:`~vutf_cli.services.audit_trail.mutate`, so the change and its
``success`` audit row commit together and a refusal (conflict, not found,
stale version) leaves a ``failure`` row.  Views are built inside the
transaction; no ORM object leaves it.  Passwords are hashed *before* a write
transaction opens (argon2 is slow on purpose; a transaction, and on SQLite
the database's write lock, should not wait for it).

Decisions where the issue left room (the command help refers here):

* Users are named by username, email (anything with ``@``) or id.  ``show``,
  ``delete`` and ``restore`` also find soft-deleted users (a live user of the
  same name wins; a deleted one is marked ``is_deleted``); every other
  command acts on live users only.
* ``create --if-not-exists`` matches on the username: an existing live user is
  returned unchanged (``created`` false, no audit row, no password shown) and
  the fields that differ from the request are listed, so the caller can warn.
  Another user holding the email is still a conflict.
* ``list`` pages by keyset: ``--sort`` is ``username``, ``email`` or
  ``created_at`` (default), ``-`` in front for descending; a page holds
  ``--limit`` rows (default 100, at most 10000) and the cursor of the next
  page is only valid with the same sort.  ``--deleted`` lists only deleted
  users, ``--all`` both.  ``--search`` is a case-insensitive substring of the
  username, email or full name in which ``%`` and ``_`` are literal.
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
* ``check_password`` reads only: it writes no audit row and does not record a
  login.  An unknown (or deleted) user costs one argon2 verify against a
  dummy hash, like a wrong password, and raises the same Denied message.
* ``export`` streams keyset pages of 500 rows, each read in its own
  read-only unit of work, so memory stays constant; its rows are the same
  views (and field names) as ``list``.  With ``include_hashes`` each row also
  carries ``password_hash``.
* ``import`` (formats and columns: :mod:`vutf_cli.services.user_import`) is
  all-or-nothing: every problem of every row is collected (invalid values,
  weak passwords, duplicates inside the file, clashes with existing users)
  and, unless ``skip_invalid``, any problem refuses the whole file with
  nothing written (exit 2, or 4 when the only problems are clashes with
  existing users, which also leaves a ``failure`` audit row).
  ``skip_existing`` leaves users whose username exists alone.  Plaintext
  passwords are hashed in a process pool before the write transaction; the
  rows are then written in ONE transaction with one ``user.create`` audit row
  each plus one ``user.import`` summary row.  The availability check is a few
  ``lower(...) IN (...)`` queries, and users and audit rows go in as bulk
  INSERTs of 1000 rows, so ten thousand users take seconds, not minutes.
  ``dry_run`` validates everything, the clash check included, and writes
  nothing at all.
"""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Final

from vutf_cli.db.models import User
from vutf_cli.db.types import utcnow
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.user_view import UserView
from vutf_cli.domain.validation import normalize_email, validate_full_name, validate_username
from vutf_cli.errors import Conflict, InvalidInput, StaleVersion
from vutf_cli.services.audit_trail import mutate, record_failure
from vutf_cli.services.runtime import Runtime

if TYPE_CHECKING:
    from sqlalchemy import Row

    from vutf_cli.domain.user_results import (
        CreatedUser,
        DeletedUser,
        UserChange,
        UserDetail,
        UserExport,
    )

    # Imported where used: reading users (`vutf users list`) never loads the
    # import machinery (multiprocessing, file formats, password hashing).
    from vutf_cli.services.user_import import ImportRow, ProgressFactory, RowProblem

__all__ = [
    "DEFAULT_LIMIT",
    "DELETED_SCOPES",
    "GENERATED_PASSWORD_LENGTH",
    "MAX_LIMIT",
    "SORT_FIELDS",
    "USER_FIELDS",
    "CreatedUser",
    "DeletedUser",
    "ImportReport",
    "UserChange",
    "UserDetail",
    "UserExport",
    "UserPage",
    "activate_user",
    "check_password",
    "create_user",
    "deactivate_user",
    "delete_user",
    "export_users",
    "generate_password",
    "import_users",
    "list_users",
    "parse_sort",
    "restore_user",
    "set_password",
    "show_user",
    "update_user",
    "verify_user",
]

SORT_FIELDS: Final = ("username", "email", "created_at")
DELETED_SCOPES: Final = ("live", "deleted", "all")
DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 10_000
EXPORT_BATCH: Final = 500
# Users (and their audit rows) per bulk INSERT of an import.
_WRITE_CHUNK: Final = 1000
GENERATED_PASSWORD_LENGTH: Final = 24
_PASSWORD_ALPHABET: Final = string.ascii_letters + string.digits
USER_FIELDS: Final = tuple(f.name for f in fields(UserView))
_RESOURCE: Final = "user"

MAX_SEARCH_LENGTH = 254  # the longest searchable column (email)


# -- results ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class UserPage:
    items: tuple[UserView, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ImportReport:
    format: str
    rows: int
    to_create: int
    created: int
    skipped: int
    invalid: int
    dry_run: bool
    problems: tuple[RowProblem, ...] = ()


def __getattr__(name: str) -> Any:
    # The results are created on first use (see vutf_cli.domain.user_results),
    # and stay importable from here.
    if name in ("CreatedUser", "DeletedUser", "UserChange", "UserDetail", "UserExport"):
        from vutf_cli.domain import user_results

        return getattr(user_results, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- helpers ---------------------------------------------------------------------
def generate_password(min_length: int) -> str:
    """A random password of letters and digits from ``secrets``: 24 characters, or more
    when the configured minimum asks for more."""
    import secrets  # here: listing users never needs it (nor hmac and OpenSSL)

    length = max(GENERATED_PASSWORD_LENGTH, min_length)
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(length))


def parse_sort(spec: str) -> tuple[str, bool]:
    """``username`` -> (``username``, ascending); ``-created_at`` -> descending."""
    text = spec.strip()
    descending = text.startswith("-")
    name = text[1:] if descending else text
    if name not in SORT_FIELDS:
        raise InvalidInput(
            f"cannot sort users by {spec!r}",
            hint="use one of: " + ", ".join(SORT_FIELDS) + " (prefix - for descending)",
        )
    return name, descending


def _check_scope(deleted: str) -> None:
    if deleted not in DELETED_SCOPES:
        raise InvalidInput(f"unknown scope {deleted!r}; use one of: {', '.join(DELETED_SCOPES)}")


def _scope_arguments(deleted: str) -> tuple[dict[str, Any], bool]:
    """(filters, include_deleted) for live / deleted / all users."""
    _check_scope(deleted)
    if deleted == "deleted":
        return {"is_deleted": True}, True
    return {}, deleted == "all"


def _profile(user: User) -> dict[str, Any]:
    """What an audit row records about a user (never the hash)."""
    return {
        "username": user.username,
        "email": user.email,
        "full_name": user.full_name,
        "is_active": user.is_active,
        "is_superuser": user.is_superuser,
        "is_verified": user.is_verified,
    }


def _audit(uow: UnitOfWork, action: str, user: User, changes: dict[str, Any]) -> None:
    uow.audit.append(
        action=action,
        resource_type=_RESOURCE,
        resource_id=str(user.id),
        user_id=user.id,
        changes=changes,
    )


def _check_version(user: User, expected_version: int | None) -> None:
    if expected_version is not None and user.version != expected_version:
        raise StaleVersion(
            f"user '{user.username}' is at version {user.version}, not {expected_version}; "
            "nothing was written",
            hint="re-read it (vutf users show) and try again",
        )


# -- create ----------------------------------------------------------------------
def create_user(
    rt: Runtime,
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
    passwords = rt.db.passwords
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
        found = rt.db.run(existing, read_only=True)
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
        _audit(uow, "user.create", user, _profile(user))
        return CreatedUser(
            UserView.from_row(user), created=True, password=secret if generate else None
        )

    return mutate(
        rt.db, create, action="user.create", resource_type=_RESOURCE, resource_id=username
    )


# -- read ------------------------------------------------------------------------
def list_users(
    rt: Runtime,
    *,
    active: bool | None = None,
    superuser: bool | None = None,
    search: str | None = None,
    deleted: str = "live",
    sort: str = "created_at",
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> UserPage:
    """One keyset page of users; pass ``next_cursor`` back (same filters and sort) for more."""
    order_by, descending = parse_sort(sort)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"--limit must be between 1 and {MAX_LIMIT} (got {limit})")
    filters, include_deleted = _scope_arguments(deleted)
    if active is not None:
        filters["is_active"] = active
    if superuser is not None:
        filters["is_superuser"] = superuser
    text = (search or "").strip()
    if len(text) > MAX_SEARCH_LENGTH:
        # Longer than any searchable column; also keeps LIKE patterns sane.
        raise InvalidInput(f"--search text too long (at most {MAX_SEARCH_LENGTH} characters)")

    def read(uow: UnitOfWork) -> UserPage:
        # Rows, not ORM objects: only their values are copied into views.
        page = uow.users.keyset_rows(
            filters=filters,
            order_by=order_by,
            descending=descending,
            cursor=cursor,
            limit=limit,
            include_deleted=include_deleted,
            where=[uow.users.search_condition(text)] if text else [],
        )
        return UserPage(tuple(UserView.from_row(u) for u in page.items), page.next_cursor)

    return rt.db.run(read, read_only=True)


def show_user(rt: Runtime, ident: str, *, with_keys: bool = False) -> UserDetail:
    """One user by username, email or id, deleted ones included; optionally with their keys."""
    from vutf_cli.domain.user_results import UserDetail
    from vutf_cli.domain.views import ApiKeyView

    def read(uow: UnitOfWork) -> UserDetail:
        user = uow.users.require(ident, include_deleted=True)
        if not with_keys:
            return UserDetail(UserView.from_row(user))
        loaded = uow.users.get_or_raise(user.id, include_deleted=True, load=("api_keys",))
        now = utcnow()
        keys = sorted(
            (key for key in loaded.api_keys if not key.is_deleted),
            key=lambda key: (key.created_at, str(key.id)),
        )
        return UserDetail(
            UserView.from_row(loaded),
            tuple(ApiKeyView.from_row(key, username=loaded.username, now=now) for key in keys),
        )

    return rt.db.run(read, read_only=True)


def check_password(rt: Runtime, ident: str, password: str) -> UserView:
    """The user if ``password`` is theirs; Denied (same message, same cost) otherwise."""
    return rt.db.run(
        lambda uow: UserView.from_row(uow.users.check_password(ident, password)), read_only=True
    )


# -- change ----------------------------------------------------------------------
def update_user(
    rt: Runtime,
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
        _check_version(user, expected_version)
        changes = {name: value for name, value in wanted.items() if getattr(user, name) != value}
        if not changes:
            return UserChange(UserView.from_row(user), changed=False)
        before = {name: getattr(user, name) for name in changes}
        uow.users.update(user, **changes)
        _audit(
            uow,
            "user.update",
            user,
            {name: {"old": before[name], "new": value} for name, value in changes.items()},
        )
        return UserChange(UserView.from_row(user), changed=True, fields=tuple(changes))

    return mutate(rt.db, change, action="user.update", resource_type=_RESOURCE, resource_id=ident)


def set_password(
    rt: Runtime, ident: str, password: str, *, expected_version: int | None = None
) -> UserView:
    """Replace a live user's password (the policy applies)."""
    passwords = rt.db.passwords
    passwords.check_strength(password)
    password_hash = passwords.hash(password)

    def change(uow: UnitOfWork) -> UserView:
        user = uow.users.require(ident)
        _check_version(user, expected_version)
        uow.users.update(user, password_hash=password_hash)
        _audit(uow, "user.set_password", user, {"changed": ["password_hash"]})
        return UserView.from_row(user)

    return mutate(
        rt.db, change, action="user.set_password", resource_type=_RESOURCE, resource_id=ident
    )


def _set_flag(
    rt: Runtime, ident: str, action: str, apply: Callable[[UnitOfWork, User], bool]
) -> UserChange:
    from vutf_cli.domain.user_results import UserChange

    def change(uow: UnitOfWork) -> UserChange:
        user = uow.users.require(ident)
        before = _profile(user)
        if not apply(uow, user):
            return UserChange(UserView.from_row(user), changed=False)
        after = _profile(user)
        changed = {name: after[name] for name in after if after[name] != before[name]}
        _audit(uow, action, user, changed)
        return UserChange(UserView.from_row(user), changed=True, fields=tuple(changed))

    return mutate(rt.db, change, action=action, resource_type=_RESOURCE, resource_id=ident)


def _activation(active: bool) -> Callable[[UnitOfWork, User], bool]:
    def apply(uow: UnitOfWork, user: User) -> bool:
        if user.is_active == active:
            return False
        uow.users.set_active(user, active)
        return True

    return apply


def activate_user(rt: Runtime, ident: str) -> UserChange:
    return _set_flag(rt, ident, "user.activate", _activation(True))


def deactivate_user(rt: Runtime, ident: str) -> UserChange:
    return _set_flag(rt, ident, "user.deactivate", _activation(False))


def verify_user(rt: Runtime, ident: str) -> UserChange:
    def apply(uow: UnitOfWork, user: User) -> bool:
        if user.is_verified and user.verified_at is not None:
            return False
        uow.users.verify(user)
        return True

    return _set_flag(rt, ident, "user.verify", apply)


def delete_user(rt: Runtime, ident: str, *, hard: bool = False) -> DeletedUser:
    """Soft-delete a user and revoke their keys, or with ``hard`` remove the row."""
    from vutf_cli.domain.user_results import DeletedUser

    def remove(uow: UnitOfWork) -> DeletedUser:
        user = uow.users.require(ident, include_deleted=True)
        if hard:
            view = UserView.from_row(user)
            key_count = uow.keys.count(user_id=user.id, include_deleted=True)
            _audit(
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
        _audit(uow, "user.delete", user, {"hard": False, "revoked_api_keys": revoked})
        return DeletedUser(UserView.from_row(user), hard=False, api_keys=len(revoked))

    return mutate(rt.db, remove, action="user.delete", resource_type=_RESOURCE, resource_id=ident)


def restore_user(rt: Runtime, ident: str) -> UserView:
    """Undo a soft delete (its API keys stay revoked)."""

    def restore(uow: UnitOfWork) -> UserView:
        user = uow.users.require(ident, include_deleted=True)
        if not user.is_deleted:
            raise Conflict(f"user '{user.username}' is not deleted")
        uow.users.restore(user)
        _audit(uow, "user.restore", user, {"is_deleted": False})
        return UserView.from_row(user)

    return mutate(rt.db, restore, action="user.restore", resource_type=_RESOURCE, resource_id=ident)


# -- export ----------------------------------------------------------------------
def export_users(
    rt: Runtime,
    *,
    deleted: str = "live",
    include_hashes: bool = False,
    batch_size: int = EXPORT_BATCH,
) -> Iterator[UserView]:
    """Every user in (created_at, id) order, streamed in keyset pages.

    Arguments are checked now; rows are read as the iterator is consumed, a
    page at a time, each page in its own read-only unit of work.
    """
    from vutf_cli.domain.user_results import UserExport

    filters, include_deleted = _scope_arguments(deleted)
    if batch_size < 1:
        raise InvalidInput("the batch size must be at least 1")

    def view(user: Row[Any]) -> UserView:
        if not include_hashes:
            return UserView.from_row(user)
        values = {name: getattr(user, name) for name in USER_FIELDS}
        return UserExport(**values, password_hash=user.password_hash)

    def page(cursor: str | None) -> tuple[list[UserView], str | None]:
        def read(uow: UnitOfWork) -> tuple[list[UserView], str | None]:
            found = uow.users.keyset_rows(
                filters=filters,
                order_by="created_at",
                cursor=cursor,
                limit=batch_size,
                include_deleted=include_deleted,
            )
            return [view(user) for user in found.items], found.next_cursor

        return rt.db.run(read, read_only=True)

    def rows() -> Iterator[UserView]:
        cursor: str | None = None
        while True:
            items, cursor = page(cursor)
            yield from items
            if cursor is None:
                return

    return rows()


# -- import ----------------------------------------------------------------------
def _chunks(rows: Sequence[ImportRow], size: int) -> Iterator[Sequence[ImportRow]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _clashes(
    uow: UnitOfWork, rows: Sequence[ImportRow], skip_existing: bool
) -> tuple[set[int], list[RowProblem]]:
    """(rows to skip, problems) for rows whose username or email a live user holds."""
    holders = uow.users.holders_of((row.username for row in rows), (row.email for row in rows))
    taken_names = {username.lower(): username for username, _ in holders}
    taken_emails = {email.lower(): username for username, email in holders}
    skipped: set[int] = set()
    problems: list[RowProblem] = []
    for row in rows:
        holder = taken_names.get(row.username.lower())
        if holder is not None and skip_existing:
            skipped.add(row.row)
            continue
        if holder is not None:
            problems.append(row.problem(f"user {row.username!r} already exists"))
        email_holder = taken_emails.get(row.email)
        if email_holder is not None:
            problems.append(
                row.problem(f"email {row.email!r} already belongs to user {email_holder!r}")
            )
    return skipped, problems


def _write_import(
    uow: UnitOfWork,
    rows: Sequence[ImportRow],
    hashes: dict[int, str],
    summary: dict[str, Any],
    advance: Callable[[int], None],
) -> int:
    """Insert ``rows`` and their audit rows in bulk, a chunk at a time; how many."""
    now = utcnow()
    for chunk in _chunks(rows, _WRITE_CHUNK):
        profiles = [
            {
                "username": row.username,
                "email": row.email,
                "full_name": row.full_name,
                "is_active": row.is_active,
                "is_superuser": row.is_superuser,
                "is_verified": row.is_verified,
            }
            for row in chunk
        ]
        # Validated above exactly as create_user would; the unique indexes
        # still refuse a user registered meanwhile (Conflict, nothing written).
        ids = uow.users.create_many(
            [
                {
                    **profile,
                    "password_hash": hashes.get(row.row, row.password_hash),
                    "verified_at": now if row.is_verified else None,
                }
                for row, profile in zip(chunk, profiles, strict=True)
            ]
        )
        # The same user.create rows as create_user writes, one per user.
        uow.audit.append_many(
            [
                {
                    "action": "user.create",
                    "resource_type": _RESOURCE,
                    "resource_id": str(user_id),
                    "user_id": user_id,
                    "changes": {**profile, "source": "import"},
                }
                for user_id, profile in zip(ids, profiles, strict=True)
            ]
        )
        advance(len(chunk))
    uow.audit.append(action="user.import", resource_type=_RESOURCE, changes=summary)
    return len(rows)


def import_users(
    rt: Runtime,
    data: bytes,
    *,
    fmt: str | None = None,
    source: str | None = None,
    dry_run: bool = False,
    skip_existing: bool = False,
    skip_invalid: bool = False,
    progress: ProgressFactory | None = None,
    workers: int | None = None,
) -> ImportReport:
    """Register the users in ``data`` (json, jsonl or csv), all or nothing.

    ``progress`` is called as ``progress(total, description)`` and must
    return a context manager yielding ``advance(steps)`` (what
    ``Terminal.progress`` is); ``workers`` sizes the hashing pool (default:
    the number of CPUs).  The users and their audit rows are written with
    bulk INSERTs (a chunk of rows per statement), in one transaction.
    """
    from vutf_cli.services.user_import import (
        ImportConflict,
        ImportRejected,
        hash_passwords,
        parse_records,
        validate_records,
    )

    passwords = rt.db.passwords
    parsed = parse_records(data, fmt=fmt, source=source)
    rows, problems = validate_records(
        parsed.records,
        check_strength=passwords.check_strength,
        is_argon2id_hash=passwords.is_argon2id_hash,
    )
    invalid_rows = {problem.row for problem in problems}
    skipped, clashes = rt.db.run(lambda uow: _clashes(uow, rows, skip_existing), read_only=True)
    all_problems = sorted([*problems, *clashes], key=lambda problem: problem.row)
    if all_problems and not skip_invalid:
        if problems:
            raise ImportRejected(all_problems)
        conflict = ImportConflict(all_problems)
        if not dry_run:
            record_failure(
                rt.db,
                action="user.import",
                resource_type=_RESOURCE,
                resource_id=None,
                error=conflict,
            )
        raise conflict
    invalid_rows |= {problem.row for problem in clashes}
    to_create = [row for row in rows if row.row not in skipped and row.row not in invalid_rows]
    report = ImportReport(
        format=parsed.format,
        rows=len(parsed.records),
        to_create=len(to_create),
        created=0,
        skipped=len(skipped),
        invalid=len(invalid_rows),
        dry_run=dry_run,
        problems=tuple(all_problems),
    )
    if dry_run:
        return report

    def bar(total: int, description: str) -> AbstractContextManager[Callable[[int], None]]:
        if progress is None or total == 0:
            return nullcontext(lambda _steps=1: None)
        return progress(total, description)

    plaintext = [row for row in to_create if row.password is not None]
    hashed = hash_passwords(
        [row.password for row in plaintext if row.password is not None],
        profile=passwords.profile,
        min_length=passwords.min_length,
        workers=workers,
        progress=progress,
    )
    hashes = {row.row: digest for row, digest in zip(plaintext, hashed, strict=True)}
    summary = {
        "format": report.format,
        "source": source or "-",
        "rows": report.rows,
        "created": len(to_create),
        "skipped": report.skipped,
        "invalid": report.invalid,
    }

    with bar(len(to_create), "importing users") as advance:
        created = mutate(
            rt.db,
            lambda uow: _write_import(uow, to_create, hashes, summary, advance),
            action="user.import",
            resource_type=_RESOURCE,
        )
    return dataclasses.replace(report, created=created)
