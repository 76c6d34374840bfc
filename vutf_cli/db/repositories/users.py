"""UserRepository: lookups, registration, updates and the lockout counters.

Usernames and emails are unique case-insensitively among rows that are not
deleted.  Every such comparison is written ``lower(column) = :value`` (the
value lower-cased in Python) next to ``NOT is_deleted``, so the partial unique
indexes on ``lower(username)`` / ``lower(email)`` answer it on both dialects.
The availability checks give a friendly Conflict; the indexes stay the final
guard against a concurrent registration (an IntegrityError at flush, which
``Database.run`` turns into the same Conflict).

The password check itself is the service's
(:mod:`vutf_cli.services.user_passwords`); the lockout statements here are
each ONE atomic UPDATE guarded by the lock's state at that instant, so
concurrent attempts from many processes are counted exactly on both
dialects (the decisions are in :mod:`vutf_cli.services.lockout`).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, NamedTuple, cast

from sqlalchemy import (
    Select,
    Table,
    Text,
    and_,
    case,
    func,
    literal,
    null,
    or_,
    select,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from vutf_cli.db.copy_in import NULL, copy_text, insert_many
from vutf_cli.db.models import User
from vutf_cli.db.repositories.base import BaseRepository
from vutf_cli.db.types import UTCDateTime, utcnow
from vutf_cli.domain.validation import (
    identity_key,
    normalize_email,
    validate_full_name,
    validate_username,
)
from vutf_cli.errors import Conflict, InvalidInput, NotFound

if TYPE_CHECKING:
    from vutf_cli.security.passwords import Passwords

__all__ = ["LOOKUP_CHUNK", "FailedLogins", "UserRepository", "escape_like"]

INVALID_CREDENTIALS: Final = "invalid username or password"
USERNAME_TAKEN: Final = "a user with that username already exists"
EMAIL_TAKEN: Final = "a user with that email already exists"
LIKE_ESCAPE: Final = "\\"
# Values per IN list in holders_of (far below every driver's parameter limit).
LOOKUP_CHUNK: Final = 1000
_USERS_TABLE: Final = cast(Table, User.__table__)
# What create_many fills in when no row gives a value (as the ORM defaults do);
# a nullable column that no row gives is left out of the INSERT (NULL).
_BULK_DEFAULTS: Final[Mapping[str, Any]] = {
    "is_active": True,
    "is_superuser": False,
    "is_verified": False,
    "is_deleted": False,
}
# Columns create_many assigns itself.
_BULK_ASSIGNED: Final = frozenset(
    {
        "id",
        "created_at",
        "created_by",
        "updated_at",
        "updated_by",
        "version",
        "is_deleted",
        "deleted_at",
        "deleted_by",
    }
)
_BULK_REQUIRED: Final = frozenset({"username", "email", "password_hash"})
_MICROSECOND: Final = timedelta(microseconds=1)
# The login bookkeeping statements keep updated_at (the column's onupdate would set
# it): it says when an operator last changed the user, as updated_by says who.
_UNTOUCHED: Final[Mapping[str, Any]] = {"updated_at": _USERS_TABLE.c.updated_at}
# What Database.run says when psycopg2 refuses text holding NUL.
_NUL_REFUSED: Final = "text with a NUL character cannot be stored or looked up"
# A \u0000 escape in JSON text: preceded by an even number of backslashes.
_JSON_NUL: Final = re.compile(r"(?:^|[^\\])(?:\\\\)*\\u0000")


def _json_value(value: Any) -> Any:
    """How a JSON parameter (holders_of's) spells what the json module cannot."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:  # as UTCDateTime refuses it
            raise ValueError("naive datetime given to a UTC column")
        return value.isoformat()
    raise TypeError(f"cannot store a {type(value).__name__} in a user column")


def _json_text(value: Any) -> str:
    """``value`` as compact JSON text, to be sent to PostgreSQL as one parameter.

    Text holding NUL is refused here with the message psycopg2's refusal gets
    elsewhere (see ``Database.run``), since PostgreSQL text cannot hold it.
    """
    encoded = json.dumps(
        value, default=_json_value, ensure_ascii=False, separators=(",", ":"), check_circular=False
    )
    # JSON spells NUL \u0000; the cheap test also hits an escaped backslash
    # followed by "u0000", so a hit is confirmed by counting the backslashes.
    if "\\u0000" in encoded and _JSON_NUL.search(encoded):
        raise InvalidInput(_NUL_REFUSED)
    return encoded


def _json_parameter(values: Any) -> ColumnElement[Any]:
    """``CAST(:param AS JSONB)``, ``values`` sent as JSON text (PostgreSQL only)."""
    from sqlalchemy.dialects.postgresql import JSONB  # not for every SQLite command

    return sql_cast(literal(_json_text(values), Text), JSONB)


def _copy_field(value: Any) -> str:
    """A user column's value in COPY's text format (create_many's PostgreSQL path)."""
    kind = type(value)
    if kind is str:
        return copy_text(value)
    if value is None:
        return NULL
    if kind is bool:
        return "t" if value else "f"
    if kind is int or kind is uuid.UUID:
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:  # as UTCDateTime refuses it
            raise ValueError("naive datetime given to a UTC column")
        return value.isoformat()
    raise TypeError(f"cannot store a {type(value).__name__} in a user column")


class FailedLogins(NamedTuple):
    """A user's lockout counters right after a failed attempt was counted."""

    failures: int
    locked_until: datetime | None


def escape_like(text: str, escape: str = LIKE_ESCAPE) -> str:
    """``text`` with LIKE's wildcards (and the escape character itself) made literal."""
    return text.replace(escape, escape * 2).replace("%", escape + "%").replace("_", escape + "_")


class UserRepository(BaseRepository[User]):
    model = User
    label = "user"

    def __init__(self, session: Session, *, passwords: Passwords, actor: str | None = None) -> None:
        super().__init__(session, actor=actor)
        self.passwords = passwords

    # -- lookups ----------------------------------------------------------------
    def _by_lower(self, column: Any, value: str, *, include_deleted: bool) -> User | None:
        """The row whose ``lower(column)`` equals ``identity_key(value)`` (NFKC, lower case).

        With ``include_deleted`` the live row wins; failing that, the most
        recently deleted one (a name can have been registered several times).
        """
        wanted = identity_key(value)
        statement = self._select(include_deleted).where(func.lower(column) == wanted)
        if include_deleted:
            statement = statement.order_by(
                User.is_deleted.asc(),
                User.deleted_at.desc().nulls_first(),
                User.created_at.desc(),
            )
        return self.session.scalars(statement.limit(1)).first()

    def get_by_username(self, username: str, *, include_deleted: bool = False) -> User | None:
        return self._by_lower(User.username, username, include_deleted=include_deleted)

    def get_by_email(self, email: str, *, include_deleted: bool = False) -> User | None:
        return self._by_lower(User.email, email, include_deleted=include_deleted)

    def get_by_identifier(self, ident: str, *, include_deleted: bool = False) -> User | None:
        """Look a user up by id (UUID text), email (contains ``@``) or username.

        A username may itself look like a UUID (36 characters of hex and
        dashes are a valid username), so a UUID that matches no id is tried
        as a username too.
        """
        ident = identity_key(ident)  # a full-width at sign (U+FF20) is "@" too
        if "@" in ident:
            return self.get_by_email(ident, include_deleted=include_deleted)
        try:
            user_id = uuid.UUID(ident)
        except ValueError:
            pass
        else:
            user = self.get(user_id, include_deleted=include_deleted)
            if user is not None:
                return user
        return self.get_by_username(ident, include_deleted=include_deleted)

    def require(self, ident: str, *, include_deleted: bool = False) -> User:
        user = self.get_by_identifier(ident, include_deleted=include_deleted)
        if user is None:
            shown = ident if len(ident) <= 60 else ident[:60] + "…"
            raise NotFound(f"user {shown!r} not found")
        return user

    def search_condition(self, text: str) -> ColumnElement[bool]:
        """Case-insensitive substring match on username, email or full name.

        LIKE's ``%`` and ``_`` in ``text`` match only themselves.
        """
        pattern = f"%{escape_like(text.lower())}%"
        return or_(
            *(
                func.lower(column).like(pattern, escape=LIKE_ESCAPE)
                for column in (User.username, User.email, User.full_name)
            )
        )

    def _taken(self, column: Any, value: str, *, exclude: uuid.UUID | None = None) -> bool:
        """Whether a live row other than ``exclude`` holds ``value`` (compared by identity_key)."""
        wanted = identity_key(value)
        statement: Select[Any] = self._select().where(func.lower(column) == wanted)
        if exclude is not None:
            statement = statement.where(User.id != exclude)
        return self.session.scalars(statement.limit(1)).first() is not None

    def holders_of(self, usernames: Iterable[str], emails: Iterable[str]) -> list[tuple[str, str]]:
        """``(username, email)`` of every live user holding one of ``usernames`` or ``emails``.

        Compared case-insensitively (``lower(col) IN (...)``, which the
        partial unique indexes answer), many values per query, so checking ten
        thousand rows of an import costs a handful of queries, not one each.
        On PostgreSQL each column's values go as ONE JSON array parameter (one
        query per column, cheap to send and to parse however many values);
        elsewhere as IN lists of :data:`LOOKUP_CHUNK` parameters.
        """
        wanted = [
            (User.username, sorted({identity_key(name) for name in usernames})),
            (User.email, sorted({identity_key(email) for email in emails})),
        ]
        as_json = self.session.get_bind().dialect.name == "postgresql"
        found: dict[str, str] = {}
        for held, values in wanted:
            chunk_size = max(len(values), 1) if as_json else LOOKUP_CHUNK
            for start in range(0, len(values), chunk_size):
                chunk = values[start : start + chunk_size]
                listed: Any = (
                    select(func.jsonb_array_elements_text(_json_parameter(chunk)))
                    if as_json
                    else chunk
                )
                statement = (
                    select(User.username, User.email)
                    .where(self._live_condition())
                    .where(func.lower(held).in_(listed))
                )
                for username, email in self.session.execute(statement):
                    found[username] = email
        return sorted(found.items())

    # -- writes -------------------------------------------------------------------
    def _check_password_hash(self, password_hash: str) -> None:
        if not self.passwords.is_argon2id_hash(password_hash):
            raise InvalidInput(
                "password hash must be an argon2id PHC string "
                "($argon2id$v=19$m=...,t=...,p=...$salt$hash) with sane parameters"
            )

    def create_user(
        self,
        *,
        username: str,
        email: str,
        password: str | None = None,
        password_hash: str | None = None,
        full_name: str | None = None,
        is_superuser: bool = False,
        is_verified: bool = False,
        is_active: bool = True,
        known_free: bool = False,
    ) -> User:
        """Validate and register a user; give exactly one of ``password``/``password_hash``.

        ``known_free``: the caller read, in this transaction, that no live user
        holds the username or the email (``vutf apply``'s plan), so they are
        not queried again one user at a time; the unique indexes still guard.
        """
        if (password is None) == (password_hash is None):
            raise InvalidInput("give exactly one of a password or a password hash")
        username = validate_username(username)
        email = normalize_email(email)
        full_name = validate_full_name(full_name)
        if password is not None:
            self.passwords.check_strength(password)
        else:
            assert password_hash is not None
            self._check_password_hash(password_hash)
        # Checked before the (expensive) hash; the unique indexes remain the
        # final guard against a concurrent registration.
        if not known_free and self._taken(User.username, username):
            raise Conflict(USERNAME_TAKEN)
        if not known_free and self._taken(User.email, email):
            raise Conflict(EMAIL_TAKEN)
        if password is not None:
            password_hash = self.passwords.hash(password)
        return self.create(
            username=username,
            email=email,
            password_hash=password_hash,
            full_name=full_name,
            is_superuser=is_superuser,
            is_verified=is_verified,
            verified_at=utcnow() if is_verified else None,
            is_active=is_active,
        )

    def create_many(self, rows: Sequence[Mapping[str, Any]]) -> list[uuid.UUID]:
        """Insert users already vetted by the caller in one statement; their ids, in order.

        PostgreSQL: one ``COPY users FROM STDIN`` (``db.copy_in``); SQLite:
        one driver-level executemany.

        For imports: no ORM objects are built and no per-row checks run
        (validate with create_user's rules first).  Each row needs
        ``username``, ``email`` (lower-case) and ``password_hash``; the other
        columns default as in :meth:`create`, and the id, timestamps,
        ``created_by``/``updated_by`` and ``version`` are assigned here.
        ``created_at`` strictly increases along ``rows``, so listing by
        creation keeps their order.  The unique indexes still refuse a taken
        name (IntegrityError, which ``Database.run`` turns into Conflict).
        """
        if not rows:
            return []
        names = set().union(*(row.keys() for row in rows))
        missing = _BULK_REQUIRED - names
        if missing:
            raise InvalidInput("missing user column(s): " + ", ".join(sorted(missing)))
        self._check_columns(dict.fromkeys(names))
        assigned = names & _BULK_ASSIGNED
        if assigned:
            raise InvalidInput("cannot give user column(s): " + ", ".join(sorted(assigned)))
        # Every row gets every given column (as an executemany needs), in a
        # fixed order so the statement is the same from one call to the next.
        given = tuple(sorted(names | _BULK_DEFAULTS.keys()))
        defaults = [_BULK_DEFAULTS.get(name) for name in given]
        ids: list[uuid.UUID] = []
        stamps: list[datetime] = []
        values: list[list[Any]] = []
        now = utcnow() - _MICROSECOND
        for row in rows:
            # The clock, or a microsecond after the previous row when it has
            # not moved on since.
            now = max(utcnow(), now + _MICROSECOND)
            ids.append(uuid.uuid4())
            stamps.append(now)
            values.append(
                [row.get(name, default) for name, default in zip(given, defaults, strict=True)]
            )
        # Neither dialect stores NUL (PostgreSQL text cannot hold it; SQLite is
        # refused all the same, so both agree).
        if any(isinstance(value, str) and "\x00" in value for row in values for value in row):
            raise InvalidInput(_NUL_REFUSED)
        if self.session.get_bind().dialect.name == "postgresql":
            self._copy_users(given, values, ids, stamps)
        else:
            # One driver-level executemany (each column's bind processor applied).
            columns = (*given, "id", "created_at", "updated_at", "created_by", "updated_by")
            tail = (self.actor, self.actor, 1)
            insert_many(
                self.session.connection(),
                _USERS_TABLE,
                (*columns, "version"),
                [
                    (*row_values, user_id, stamp, stamp, *tail)
                    for row_values, user_id, stamp in zip(values, ids, stamps, strict=True)
                ],
            )
        return ids

    def _copy_users(
        self,
        given: tuple[str, ...],
        values: list[list[Any]],
        ids: list[uuid.UUID],
        stamps: list[datetime],
    ) -> None:
        """PostgreSQL: every row in one ``COPY users FROM STDIN`` (``db.copy_in``).

        Values keep their column types: the server parses each field with
        its column's input function, so an over-long ``varchar(n)`` value is
        an error, not truncated, exactly as for an INSERT.
        """
        from vutf_cli.db.copy_in import copy_in

        actor = copy_text(self.actor)
        columns = (*given, "id", "created_at", "updated_at", "created_by", "updated_by", "version")
        tail = f"\t{actor}\t{actor}\t1"
        lines = (
            "\t".join(map(_copy_field, row_values))
            + f"\t{user_id}\t{stamp.isoformat()}\t{stamp.isoformat()}{tail}"
            for row_values, user_id, stamp in zip(values, ids, stamps, strict=True)
        )
        copy_in(self.session.connection(), _USERS_TABLE.name, columns, lines)

    def update(self, obj: User, *, expected_version: int | None = None, **values: Any) -> User:
        """As BaseRepository.update, with usernames, emails and hashes vetted and kept unique."""
        if "username" in values:
            values["username"] = validate_username(values["username"])
            if self._taken(User.username, values["username"], exclude=obj.id):
                raise Conflict(USERNAME_TAKEN)
        if "email" in values:
            values["email"] = normalize_email(values["email"])
            if self._taken(User.email, values["email"], exclude=obj.id):
                raise Conflict(EMAIL_TAKEN)
        if "full_name" in values:
            values["full_name"] = validate_full_name(values["full_name"])
        if "password_hash" in values:
            self._check_password_hash(values["password_hash"])
        return super().update(obj, expected_version=expected_version, **values)

    def restore(self, obj: User) -> User:
        """Undo a soft delete, unless the name or email has been registered again since."""
        if obj.is_deleted:
            if self._taken(User.username, obj.username):
                raise Conflict(USERNAME_TAKEN, hint="the name was registered again after deletion")
            if self._taken(User.email, obj.email):
                raise Conflict(EMAIL_TAKEN, hint="the email was registered again after deletion")
        return super().restore(obj)

    # -- lockout ------------------------------------------------------------------
    # Each is one UPDATE whose WHERE decides against the row as it is at that instant
    # (PostgreSQL re-checks it after waiting for a concurrent writer; SQLite writers
    # are serialized): no read-modify-write, so no increment is lost.  None of them
    # bumps ``version``: that is the optimistic lock of administrative changes, and
    # login attempts -- which anyone may make -- must not make an operator's
    # ``--expected-version`` stale or conflict with one another.
    def _locked_at(self, now: datetime) -> ColumnElement[bool]:
        return and_(_USERS_TABLE.c.locked_until.is_not(None), _USERS_TABLE.c.locked_until > now)

    def count_locked_attempt(self, user_id: uuid.UUID, now: datetime) -> FailedLogins | None:
        """Count an attempt on a user locked at ``now`` (the lock is not extended);
        None when the user is not locked."""
        users = _USERS_TABLE
        statement = (
            update(users)
            .where(users.c.id == user_id, self._locked_at(now))
            .values(
                failed_login_count=users.c.failed_login_count + 1,
                last_failed_login_at=now,
                **_UNTOUCHED,
            )
            .returning(users.c.failed_login_count, users.c.locked_until)
        )
        found = self.session.execute(statement).first()
        return None if found is None else FailedLogins(found[0], found[1])

    def count_failure(
        self,
        user_id: uuid.UUID,
        now: datetime,
        *,
        window_start: datetime,
        threshold: int,
        lock_end: datetime,
    ) -> FailedLogins | None:
        """Count a failed attempt on a user NOT locked at ``now``; None when it is.

        The count restarts at 1 when the previous failure is older than
        ``window_start`` (or there is none, or a lock has run out); reaching
        ``threshold`` (> 0) sets ``locked_until = lock_end``.
        """
        users = _USERS_TABLE
        fresh = or_(
            users.c.last_failed_login_at.is_(None),
            users.c.last_failed_login_at <= window_start,
            users.c.locked_until.is_not(None),  # not locked now, so a lock that ran out
        )
        count = case((fresh, 1), else_=users.c.failed_login_count + 1)
        locked_until: ColumnElement[Any] = (
            case((count >= threshold, literal(lock_end, UTCDateTime())), else_=null())
            if threshold > 0
            else null()
        )
        statement = (
            update(users)
            .where(users.c.id == user_id, ~self._locked_at(now))
            .values(
                failed_login_count=count,
                last_failed_login_at=now,
                locked_until=locked_until,
                **_UNTOUCHED,
            )
            .returning(users.c.failed_login_count, users.c.locked_until)
        )
        found = self.session.execute(statement).first()
        return None if found is None else FailedLogins(found[0], found[1])

    def clear_failures(self, user_id: uuid.UUID, now: datetime) -> bool:
        """A successful login: the count starts again; False (nothing changed) if locked."""
        users = _USERS_TABLE
        statement = (
            update(users)
            .where(users.c.id == user_id, ~self._locked_at(now))
            .values(failed_login_count=0, locked_until=None, **_UNTOUCHED)
            .returning(users.c.id)
        )
        return self.session.execute(statement).first() is not None

    def replace_password_hash(self, user_id: uuid.UUID, old: str, new: str) -> bool:
        """Rehash on login: store ``new`` only if the hash is still ``old`` (a password
        set meanwhile wins); whether it was stored."""
        self._check_password_hash(new)
        users = _USERS_TABLE
        statement = (
            update(users)
            .where(users.c.id == user_id, users.c.password_hash == old)
            .values(password_hash=new, **_UNTOUCHED)
            .returning(users.c.id)
        )
        return self.session.execute(statement).first() is not None

    # -- state --------------------------------------------------------------------
    def set_active(self, user: User, active: bool) -> User:
        return self.update(user, is_active=active)

    def verify(self, user: User) -> User:
        """Mark the user verified (idempotent: an already verified user is unchanged)."""
        if user.is_verified and user.verified_at is not None:
            return user
        return self.update(user, is_verified=True, verified_at=user.verified_at or utcnow())
