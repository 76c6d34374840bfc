"""UserRepository: lookups, registration, updates and the password check.

Usernames and emails are unique case-insensitively among rows that are not
deleted.  Every such comparison is written ``lower(column) = :value`` (the
value lower-cased in Python) next to ``NOT is_deleted``, so the partial unique
indexes on ``lower(username)`` / ``lower(email)`` answer it on both dialects.
The availability checks give a friendly Conflict; the indexes stay the final
guard against a concurrent registration (an IntegrityError at flush, which
``Database.run`` turns into the same Conflict).

The password check never tells an unknown user from a wrong password: both
cost one argon2 verify and get the same message.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, cast

from sqlalchemy import (
    Insert,
    Select,
    String,
    Table,
    Text,
    bindparam,
    column,
    func,
    insert,
    literal,
    or_,
    select,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from vutf_cli.db.models import User
from vutf_cli.db.repositories.base import BaseRepository
from vutf_cli.db.types import utcnow
from vutf_cli.domain.validation import normalize_email, validate_full_name, validate_username
from vutf_cli.errors import Conflict, Denied, InvalidInput, NotFound

if TYPE_CHECKING:
    from vutf_cli.security.passwords import Passwords

__all__ = ["LOOKUP_CHUNK", "UserRepository", "escape_like"]

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
# What Database.run says when psycopg2 refuses text holding NUL.
_NUL_REFUSED: Final = "text with a NUL character cannot be stored or looked up"
# A \u0000 escape in JSON text: preceded by an even number of backslashes.
_JSON_NUL: Final = re.compile(r"(?:^|[^\\])(?:\\\\)*\\u0000")


def _json_value(value: Any) -> Any:
    """How create_many's JSON payload spells what the json module cannot."""
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


@functools.cache
def _json_insert_statement(given: tuple[str, ...]) -> Insert:
    """``INSERT INTO users ... SELECT`` the elements of the JSON array ``:rows``.

    Each element is ``[*given values, id, created_at]``; ``:actor`` fills
    ``created_by`` and ``updated_by``.  Cached: one statement per column set.
    """
    from sqlalchemy.dialects.postgresql import JSONB  # not for every SQLite command

    rows = func.jsonb_array_elements(sql_cast(bindparam("rows", type_=Text), JSONB))
    element = rows.table_valued(column("value", JSONB)).alias("entry").c.value

    def item(index: int, name: str) -> ColumnElement[Any]:
        text = element[index].astext
        # Text is assigned to varchar(n) as is, which refuses an over-long
        # value (a CAST would silently cut it); other types need the CAST.
        target = _USERS_TABLE.c[name]
        return text if isinstance(target.type, String) else sql_cast(text, target.type)

    created_at = item(len(given) + 1, "created_at")
    actor = bindparam("actor", type_=String)
    selected = {
        **{name: item(index, name) for index, name in enumerate(given)},
        "id": item(len(given), "id"),
        "created_at": created_at,
        "updated_at": created_at,
        "created_by": actor,
        "updated_by": actor,
        "version": literal(1),
    }
    return insert(_USERS_TABLE).from_select(
        list(selected), select(*selected.values()), include_defaults=False
    )


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
        """The row whose ``lower(column)`` equals ``value.lower()``.

        With ``include_deleted`` the live row wins; failing that, the most
        recently deleted one (a name can have been registered several times).
        """
        statement = self._select(include_deleted).where(func.lower(column) == value.lower())
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
        return self._by_lower(User.email, email.strip(), include_deleted=include_deleted)

    def get_by_identifier(self, ident: str, *, include_deleted: bool = False) -> User | None:
        """Look a user up by id (UUID text), email (contains ``@``) or username.

        A username may itself look like a UUID (36 characters of hex and
        dashes are a valid username), so a UUID that matches no id is tried
        as a username too.
        """
        ident = ident.strip()
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
        """Whether a live row other than ``exclude`` holds ``value`` case-insensitively."""
        statement: Select[Any] = self._select().where(func.lower(column) == value.lower())
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
            (User.username, sorted({name.lower() for name in usernames})),
            (User.email, sorted({email.strip().lower() for email in emails})),
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
    ) -> User:
        """Validate and register a user; give exactly one of ``password``/``password_hash``."""
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
        if self._taken(User.username, username):
            raise Conflict(USERNAME_TAKEN)
        if self._taken(User.email, email):
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
        """Insert users already vetted by the caller in one bulk INSERT; their ids, in order.

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
        if self.session.get_bind().dialect.name == "postgresql":
            self._insert_from_json(given, values, ids, stamps)
        else:
            # SQLite could store NUL; refused all the same, so both dialects agree.
            if any(isinstance(value, str) and "\x00" in value for row in values for value in row):
                raise InvalidInput(_NUL_REFUSED)
            constant = {"created_by": self.actor, "updated_by": self.actor, "version": 1}
            self.session.execute(
                insert(_USERS_TABLE),
                [
                    {
                        **dict(zip(given, row_values, strict=True)),
                        **constant,
                        "id": user_id,
                        "created_at": stamp,
                        "updated_at": stamp,
                    }
                    for row_values, user_id, stamp in zip(values, ids, stamps, strict=True)
                ],
            )
        return ids

    def _insert_from_json(
        self,
        given: tuple[str, ...],
        values: list[list[Any]],
        ids: list[uuid.UUID],
        stamps: list[datetime],
    ) -> None:
        """PostgreSQL: all ``values`` as ONE JSON parameter, unpacked by the server.

        A JSON array of row arrays is encoded in C by the json module and sent
        as one string literal, where a multi-row VALUES (psycopg2's
        execute_values, SQLAlchemy's insertmanyvalues) adapts each of the
        ~15 values of every row separately; for ten thousand users this is
        several times faster, close to COPY (which vutf's psycopg2 wait
        callback rules out).  ``jsonb``, not ``json``: each row is parsed once,
        where ``json ->> n`` would scan the row's text again for every column
        (twice as slow).  Values keep their column types: the server casts
        each one, and text goes through the usual assignment to
        ``varchar(n)``, so an over-long value is an error, not truncated.
        """
        payload = _json_text(
            [
                [*row_values, str(user_id), stamp.isoformat()]
                for row_values, user_id, stamp in zip(values, ids, stamps, strict=True)
            ]
        )
        self.session.execute(
            _json_insert_statement(given),
            {"rows": payload, "actor": self.actor},
        )

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

    # -- passwords ----------------------------------------------------------------
    def check_password(self, identifier: str, password: str) -> User:
        """The live user ``identifier`` if ``password`` is theirs, else Denied.

        Records nothing and ignores ``is_active``.  An unknown (or deleted)
        user costs one dummy verify, like a wrong password, and gets the same
        message.
        """
        user = self.get_by_identifier(identifier)
        if user is None:
            self.passwords.verify_dummy(password)
            raise Denied(INVALID_CREDENTIALS)
        if not self.passwords.verify(user.password_hash, password):
            raise Denied(INVALID_CREDENTIALS)
        return user

    # -- state --------------------------------------------------------------------
    def set_active(self, user: User, active: bool) -> User:
        return self.update(user, is_active=active)

    def verify(self, user: User) -> User:
        """Mark the user verified (idempotent: an already verified user is unchanged)."""
        if user.is_verified and user.verified_at is not None:
            return user
        return self.update(user, is_verified=True, verified_at=user.verified_at or utcnow())
