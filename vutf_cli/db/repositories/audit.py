"""The audit log: append-only, hash-chained, read in seq order (DESIGN.md section 2).

Writing
    :meth:`AuditLogRepository.append` (one row) and
    :meth:`~AuditLogRepository.append_many` (many rows in one bulk INSERT,
    for imports) are the only writes, with the same checks and hashing.
    On PostgreSQL append_many sends the rows as one JSON parameter made of
    the very canonical JSON each row was hashed from, which the server
    unpacks into the columns.
    Writers are serialized so the chain stays linear: on PostgreSQL the
    transaction first takes a transaction-level advisory lock
    (:data:`AUDIT_APPEND_LOCK_ID`, held until COMMIT or ROLLBACK) and only
    then reads the head; on SQLite the unit of work already began with
    ``BEGIN IMMEDIATE``, so there is one writer at a time.  The head is read
    with a fresh statement after the lock is taken, which under READ
    COMMITTED (the default) sees every earlier writer's row.

    What is hashed is exactly what the database gives back later: ``changes``
    and ``metadata`` are stored in the form they come back in from ``jsonb``
    (see :func:`stored_json`), timestamps keep their microseconds on both
    dialects, and UUIDs are normalized.  So ``row_hash`` can be recomputed
    from the row as read back, on either dialect.

Reading
    Every listing is a keyset walk over ``seq`` (never OFFSET), so a page or a
    streamed export costs the same at any depth, and :meth:`iterate` expunges
    each batch from the session so memory stays constant.

Verifying
    :meth:`AuditLogRepository.verify_chain` walks the rows in ascending seq and
    reports the FIRST problem, checking each row in this order:

    1. ``reordered``: the row's ``prev_hash`` is not its predecessor's
       ``row_hash`` but is the ``row_hash`` of a row with a LARGER seq, i.e. the
       row was written after that one and moved in front of it.
    2. ``edited``: the row's own hash, recomputed from its content and its
       stored ``prev_hash``, differs from its stored ``row_hash``: the content
       changed after it was written (or ``VUTF_AUDIT_KEY`` is not the key the
       row was written with, in which case row 1 is reported).
    3. ``missing``: the seq jumps (row 6 follows row 4).  Reported at the
       first missing seq (5), so a deleted row is pinpointed by its own seq.
    4. ``inserted``: the seq is contiguous and the row's own hash is valid,
       but its ``prev_hash`` is not its predecessor's ``row_hash`` (or the first
       row does not start from :data:`GENESIS_HASH`): a row whose hash was
       forged consistently was spliced in.  Reported at the row whose link is
       broken; when a forger replaced row N by a row that links correctly
       backwards, that is row N+1 (the forged row is N or N+1, the detail
       names both).
    5. ``anchor``: the row at the anchor's seq is absent (the log was
       truncated) or has another ``row_hash`` (the chain was rewritten
       wholesale).  Without an anchor, removing the LAST rows, or rewriting
       every hash, cannot be detected: a chain is only as strong as a head
       hash kept somewhere else.

    Rows are read straight from the driver, with their canonical JSON
    rendered from the plain values (on PostgreSQL partly by the server), the
    way :func:`~vutf_cli.security.audit_chain.canonical_json` writes it.  A
    row that cannot be rendered exactly, or whose hash does not match, is
    read again as a Core row and checked the exact way, so every problem
    reported is the exact way's.
"""

from __future__ import annotations

import functools
import getpass
import math
import os
import re
import socket
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final, NoReturn, cast

from sqlalchemy import (
    ColumnElement,
    Insert,
    Row,
    Select,
    Table,
    bindparam,
    column,
    func,
    insert,
    literal,
    literal_column,
    select,
    text,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session
from sqlalchemy.types import String, Text

from vutf_cli import __version__
from vutf_cli.db.models import AUDIT_STATUSES, AuditLog
from vutf_cli.db.types import JSONType, utcnow
from vutf_cli.domain.views import AuditEntry, ChainReport
from vutf_cli.errors import IntegrityFailure, InvalidInput
from vutf_cli.security.audit_chain import (
    GENESIS_HASH,
    HASHED_FIELDS,
    canonical_text_of_json_row,
    canonical_text_of_plain_row,
    hash_canonical,
    jsonable,
    row_hasher,
)
from vutf_cli.settings import mask_url

__all__ = [
    "AUDIT_APPEND_LOCK_ID",
    "STATS_DIMENSIONS",
    "AuditLogRepository",
    "hash_content",
    "scrub_secrets",
    "stored_json",
]

# Key of the PostgreSQL advisory lock that serializes audit writers: the
# ASCII bytes of "vutfaudt" as a (positive) signed 64-bit integer.
AUDIT_APPEND_LOCK_ID: Final = 0x7675_7466_6175_6474

STATS_DIMENSIONS: Final = ("action", "actor", "resource_type", "status", "day")

# How far back exists_request looks: a retry follows its failed attempt
# within seconds, and created_at bounds the scan through its index.
REQUEST_LOOKBACK: Final = timedelta(hours=1)

_ACTION_PATTERN = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+")
_HASH_PATTERN = re.compile(r"[0-9a-f]{64}")
_SECRET_KEY_PARTS = ("password", "secret", "token", "key_hash")

# append_many inserts through the table (column names: ``metadata``); append
# builds an ORM row (attribute names: ``meta``).
_AUDIT_TABLE: Final = cast(Table, AuditLog.__table__)
_ATTRIBUTE_NAMES: Final = {"metadata": "meta"}
_APPEND_ARGUMENTS: Final = frozenset(
    {
        "action",
        "resource_type",
        "resource_id",
        "status",
        "user_id",
        "changes",
        "metadata",
        "error_message",
        "duration_ms",
        "ip_address",
        "user_agent",
        "actor",
    }
)

_MAX_LENGTHS: Final = {
    "action": 100,
    "actor": 255,
    "resource_type": 50,
    "resource_id": 255,
    "ip_address": 45,
    "user_agent": 255,
}


# -- what is stored and hashed ------------------------------------------------
@lru_cache(maxsize=4096)
def _is_secret_key(name: str) -> bool:
    # Cached: the same few keys come back in every row of a bulk append.
    lowered = name.lower()
    return lowered == "key" or any(part in lowered for part in _SECRET_KEY_PARTS)


@lru_cache(maxsize=4096)
def _is_kept_key(name: str) -> bool:
    """Whether scrub_secrets keeps the key ``name``; a kept key must be storable text.

    Cached like _is_secret_key.  A refused key raises InvalidInput (never cached).
    """
    if _is_secret_key(name):
        return False
    _stored_text(name)
    return True


def scrub_secrets(value: Any) -> Any:
    """``value`` without any mapping entry whose key names a secret, at any depth.

    A key is a secret's when, lower-cased, it contains ``password``,
    ``secret``, ``token`` or ``key_hash``, or is exactly ``key``.
    """
    if isinstance(value, Mapping):
        return {
            key: scrub_secrets(item)
            for key, item in value.items()
            if not (isinstance(key, str) and _is_secret_key(key))
        }
    if isinstance(value, list | tuple):
        return [scrub_secrets(item) for item in value]
    return value


def _stored_number(value: float) -> float | int:
    if not math.isfinite(value):
        raise InvalidInput(f"audit data cannot hold the number {value!r}")
    if value == 0:
        return 0.0  # jsonb's numeric has no negative zero
    spelled = repr(value)
    if "e" in spelled and int(spelled.partition("e")[2]) >= 0:
        # jsonb keeps the decimal digits it was given and prints them without
        # an exponent: 1e+20 comes back as the integer 100000000000000000000
        # (the digits of repr, not the float's exact binary value).
        return int(Decimal(spelled))
    return value


def _stored_text(value: str) -> str:
    if "\x00" in value:
        raise InvalidInput("audit data cannot hold a NUL character")
    if value.isascii():  # no surrogates, nothing to encode
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("audit data must be valid Unicode (lone surrogate found)") from None
    return value


def stored_json(value: Any) -> Any:
    """``value`` in the exact form the database returns it, on both dialects.

    Datetimes, dates and UUIDs become strings (:func:`jsonable`); floats take
    the value ``jsonb`` gives back (no exponent form, no negative zero); NaN,
    infinities, NUL characters and lone surrogates are refused, since ``jsonb``
    refuses them (SQLite gets the same rule, so both dialects store the same).
    """
    return _stored_form(jsonable(value))


def _stored_form(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return _stored_number(value)
    if isinstance(value, str):
        return _stored_text(value)
    if isinstance(value, dict):
        return {_stored_text(key): _stored_form(item) for key, item in value.items()}
    # jsonable only returns lists beyond this point.
    return [_stored_form(item) for item in value]


def stored_without_secrets(value: Any) -> Any:
    """``stored_json(scrub_secrets(value))``, in one walk instead of three.

    The result is the same whenever those succeed.  When the walk meets
    anything refused, the three walks run again, so the error raised is
    theirs (each of them reports the first problem it meets, in its turn).
    """
    try:
        return _scrubbed_stored_form(value)
    except (InvalidInput, TypeError, RecursionError):
        pass
    return stored_json(scrub_secrets(value))


def _scrubbed_stored_form(value: Any) -> Any:
    kind = type(value)
    # Exact types first (the common case), as the three walks pass them on.
    if kind is str:
        return _stored_text(value)
    if kind is bool or kind is int or value is None:
        return value
    # Containers as scrub_secrets rebuilds them, with jsonable's rule on keys.
    if isinstance(value, Mapping):
        stored: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError("not a string key")  # jsonable refuses it
            if _is_kept_key(key):
                # The commonest values inline (as the top of this function).
                item_kind = type(item)
                if item_kind is str:
                    stored[key] = _stored_text(item)
                elif item_kind is bool or item_kind is int or item is None:
                    stored[key] = item
                else:
                    stored[key] = _scrubbed_stored_form(item)
        return stored
    if isinstance(value, list | tuple):
        return [_scrubbed_stored_form(item) for item in value]
    # Anything else scrub_secrets leaves as it is.
    return _stored_form(jsonable(value))


def hash_content(row: AuditLog | Row[Any] | Mapping[str, Any]) -> dict[str, Any]:
    """The hashed fields of an audit row, keyed by column name (``metadata``, not ``meta``).

    Accepts an ORM row, a Core row of the ``audit_log`` table, or a mapping
    keyed by column names.
    """
    if isinstance(row, AuditLog):
        return {
            name: getattr(row, "meta" if name == "metadata" else name) for name in HASHED_FIELDS
        }
    if isinstance(row, Row):
        return {name: row._mapping[name] for name in HASHED_FIELDS}
    return {name: row[name] for name in HASHED_FIELDS}


def _normalized_uuid(value: uuid.UUID | None) -> uuid.UUID | None:
    """``value`` as a plain UUID (whatever was passed: text, a subclass), or None."""
    if value is None or type(value) is uuid.UUID:
        return value
    return uuid.UUID(str(value))


@functools.cache
def _json_insert_statement() -> Insert:
    """``INSERT INTO audit_log ... SELECT`` the elements of the JSON array ``:rows``.

    Each element is a row's canonical JSON object (see ``_chain``) with its
    ``prev_hash`` and ``row_hash`` added.  PostgreSQL only; built once.
    """
    from sqlalchemy.dialects.postgresql import JSONB  # not for every SQLite command

    rows = func.jsonb_array_elements(sql_cast(bindparam("rows", type_=Text), JSONB))
    element = rows.table_valued(column("value", JSONB)).alias("entry").c.value
    json_null = sql_cast(literal_column("'null'"), JSONB)

    def field(name: str) -> ColumnElement[Any]:
        target = _AUDIT_TABLE.c[name]
        if isinstance(target.type, JSONType):
            # A JSON null stands for SQL NULL, as the JSONB bind of append stores it.
            return func.nullif(element[name], json_null)
        text = element[name].astext
        # Text is assigned to varchar(n) as is, which refuses an over-long
        # value (a CAST would silently cut it); other types need the CAST.
        return text if isinstance(target.type, String) else sql_cast(text, target.type)

    names = [*HASHED_FIELDS, "prev_hash", "row_hash"]
    return insert(_AUDIT_TABLE).from_select(
        names, select(*(field(name) for name in names)), include_defaults=False
    )


_ERROR_MESSAGE_TYPES: Final = frozenset({str, type(None)})
_MAX_DURATION_MS: Final = 2**31 - 1  # the integer column's


def _sent_as_json_alike(values: Mapping[str, Any]) -> bool:
    """Whether the JSON insert stores, or refuses, exactly as a bound insert of ``values``.

    The checks of ``_new_row_values`` leave three columns loose: an
    error_message need only support ``in``, a status compare equal to one,
    a duration be any non-negative int.  Anything but the plain value goes
    through the bound insert, which stores it or refuses it as it always
    did (the JSON text would store its JSON spelling, or refuse an
    over-large duration with another message).
    """
    duration = values["duration_ms"]
    return (
        type(values["status"]) is str
        and type(values["error_message"]) in _ERROR_MESSAGE_TYPES
        and (duration is None or (type(duration) is int and duration <= _MAX_DURATION_MS))
    )


# -- verification: rows as plain driver values ---------------------------------------
_PLAIN_PREV_HASH: Final = len(HASHED_FIELDS)
_PLAIN_ROW_HASH: Final = _PLAIN_PREV_HASH + 1
# The spelling str(uuid.UUID(text)) gives: a text already in it is its own canonical form.
_CANONICAL_UUID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# format_timestamp's spelling, rendered by PostgreSQL for the years Python's
# datetime holds (outside them, NULL: the Core way, which fails as it did).
_POSTGRESQL_CANONICAL_CREATED_AT: Final = (
    "CASE WHEN audit_log.created_at >= '0001-01-01 00:00:00+00' "
    "AND audit_log.created_at < '10000-01-01 00:00:00+00' "
    "THEN to_char(audit_log.created_at AT TIME ZONE 'UTC', "
    '\'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\') END'
)


@functools.cache
def _plain_chain_select(dialect: str) -> Select[Any]:
    """The hashed columns, then prev_hash and row_hash, of the rows with seq > :after.

    The statement of ``_table_batch`` (same WHERE, ORDER BY and LIMIT), read
    straight from the driver.  On PostgreSQL the UUIDs, the timestamp and the
    JSON come as text in the spelling hashing needs (uuid's and jsonb's
    output functions, the timestamp by ``to_char``), so Python converts
    nothing but the JSON, which it parses as psycopg2 would.
    """
    table = _AUDIT_TABLE
    columns: list[ColumnElement[Any]] = [
        table.c[name] for name in (*HASHED_FIELDS, "prev_hash", "row_hash")
    ]
    if dialect == "postgresql":
        for name in ("id", "user_id", "changes", "metadata"):
            columns[HASHED_FIELDS.index(name)] = sql_cast(table.c[name], Text)
        columns[HASHED_FIELDS.index("created_at")] = literal_column(
            _POSTGRESQL_CANONICAL_CREATED_AT
        )
    return (
        select(*columns)
        .where(table.c.seq > bindparam("after"))
        .order_by(table.c.seq)
        .limit(bindparam("limit"))
    )


def _plain_canonical_postgresql(values: Sequence[Any]) -> str | None:
    """The canonical text of a row of ``_plain_chain_select`` on PostgreSQL, or None."""
    created_at = values[2]
    if created_at is None:
        return None
    return canonical_text_of_plain_row(values, values[0], created_at, values[4])


def _plain_canonical_sqlite(values: Sequence[Any]) -> str | None:
    """The canonical text of a row of ``_plain_chain_select`` on SQLite, or None.

    SQLite gives the stored values as they are, so each is checked: a UUID
    must already be in its canonical spelling (what GUID's str(UUID(text))
    gives back), and the timestamp is read as the
    Core way reads it (``datetime.fromisoformat``, SQLAlchemy's SQLite
    DATETIME reader) and spelled as format_timestamp spells a naive (UTC)
    one.  Anything else is left to the Core way.
    """
    id_text, created_at, user_id = values[0], values[2], values[4]
    if (
        type(id_text) is not str
        or _CANONICAL_UUID.fullmatch(id_text) is None
        or type(created_at) is not str
    ):
        return None
    if user_id is not None and (
        type(user_id) is not str or _CANONICAL_UUID.fullmatch(user_id) is None
    ):
        return None
    try:
        moment = datetime.fromisoformat(created_at)
    except ValueError:
        return None
    if moment.tzinfo is not None:
        return None
    # SQLite keeps the canonical text vutf stored: hashed as it is (a row
    # spelled otherwise does not match and is checked the Core way).
    return canonical_text_of_plain_row(
        values,
        id_text,
        moment.isoformat(timespec="microseconds") + "Z",
        user_id,
        json_as_stored=True,
    )


def _without_null_columns(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` without the columns that are NULL in every one of them.

    A bulk INSERT then sends fewer values; the columns left out have no
    default, so they are NULL all the same.
    """
    used = [name for name in rows[0] if any(row[name] is not None for row in rows)]
    if len(used) == len(rows[0]):
        return list(rows)
    return [{name: row[name] for name in used} for row in rows]


# -- default metadata ---------------------------------------------------------
@lru_cache(maxsize=1)
def _host_and_user() -> tuple[str, str]:
    try:
        os_user = getpass.getuser()
    except (KeyError, OSError):
        os_user = "unknown"
    return socket.gethostname(), os_user


def _mask_argument(argument: str) -> str:
    """A command-line argument with any database password masked."""
    if "://" not in argument:
        return argument
    if argument.startswith("-") and "=" in argument:
        flag, _, value = argument.partition("=")
        return f"{flag}={mask_url(value)}"
    return mask_url(argument)


def command_line(argv: Sequence[str]) -> str:
    """The command as typed: argv[0] reduced to its basename, URL passwords masked."""
    if not argv:
        return ""
    return " ".join([os.path.basename(argv[0]), *(_mask_argument(a) for a in argv[1:])])


def _default_metadata(request_id: str | None) -> dict[str, Any]:
    host, os_user = _host_and_user()
    return {
        "host": host,
        "os_user": os_user,
        "vutf_version": __version__,
        "command": command_line(sys.argv),
        "request_id": request_id,
    }


# -- input checks ---------------------------------------------------------------
def _checked_text(field: str, value: str | None) -> str | None:
    """``value`` if it fits its column (None passes), else InvalidInput."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"audit {field} must be text")
    limit = _MAX_LENGTHS[field]
    if len(value) > limit:
        raise InvalidInput(f"audit {field} is longer than {limit} characters")
    if "\x00" in value:
        raise InvalidInput(f"audit {field} cannot hold a NUL character")
    return value


def _required_text(field: str, value: str | None) -> str:
    checked = _checked_text(field, value)
    if not checked:
        raise InvalidInput(f"audit {field} must not be empty")
    return checked


def _aware(name: str, value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidInput(f"{name} must be a timezone-aware datetime")
    return value


def glob_to_like(pattern: str) -> str:
    """``user.*`` -> ``user.%`` (``?`` -> ``_``), literal ``%``/``_``/``\\`` escaped with ``\\``."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


class AuditLogRepository:
    """Appends to, reads and verifies the audit log through one session (never commits)."""

    def __init__(
        self,
        session: Session,
        *,
        hmac_key: str | None = None,
        request_id: str | None = None,
        actor: str = "unknown",
    ) -> None:
        self._session = session
        self._hmac_key = hmac_key
        self._request_id = request_id
        self._actor = actor

    @property
    def dialect(self) -> str:
        return str(self._session.get_bind().dialect.name)

    # -- writing -------------------------------------------------------------
    def append(
        self,
        *,
        action: str,
        resource_type: str,
        resource_id: str | None = None,
        status: str = "success",
        user_id: uuid.UUID | None = None,
        changes: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        error_message: str | None = None,
        duration_ms: int | None = None,
        ip_address: str | None = None,
        user_agent: str | None = None,
        actor: str | None = None,
    ) -> AuditLog:
        """Append one row at the head of the chain (flushed, not committed) and return it."""
        values = self._new_row_values(
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            status=status,
            user_id=user_id,
            changes=changes,
            metadata=metadata,
            error_message=error_message,
            duration_ms=duration_ms,
            ip_address=ip_address,
            user_agent=user_agent,
            actor=actor,
            default_metadata=stored_json(_default_metadata(self._request_id)),
        )
        self._lock_head()
        self._chain([values], self.head())
        row = AuditLog(
            **{_ATTRIBUTE_NAMES.get(name, name): value for name, value in values.items()}
        )
        self._session.add(row)
        self._session.flush()
        return row

    def append_many(self, entries: Sequence[Mapping[str, Any]]) -> range:
        """Append ``entries`` in order at the head of the chain, in one bulk INSERT.

        Each entry holds the keyword arguments of :meth:`append`; every entry
        is checked before anything is written.  The rows are exactly what
        ``append`` would write one by one (same checks, metadata, hashing
        and chaining), but the lock is taken and the head read once and the
        rows go in as one statement, without ORM objects.  Returns the seqs
        written (flushed, not committed).
        """
        # Stored form computed once: every row carries the same defaults.
        defaults = stored_json(_default_metadata(self._request_id))
        rows = []
        for entry in entries:
            unknown = set(entry) - _APPEND_ARGUMENTS
            if unknown:
                raise InvalidInput("unknown audit field(s): " + ", ".join(sorted(unknown)))
            rows.append(self._new_row_values(**entry, default_metadata=defaults))
        if not rows:
            return range(0)
        self._lock_head()
        canonical_texts = self._chain(rows, self.head())
        if self.dialect == "postgresql" and all(map(_sent_as_json_alike, rows)):
            self._insert_from_json(rows, canonical_texts)
        else:
            self._session.execute(insert(_AUDIT_TABLE), _without_null_columns(rows))
        first = int(rows[0]["seq"])
        return range(first, first + len(rows))

    def _insert_from_json(self, rows: Sequence[dict[str, Any]], canonical_texts: list[str]) -> None:
        """PostgreSQL: every row as ONE JSON parameter, unpacked by the server.

        Each row is sent as the canonical JSON it was hashed from, with its
        two hashes added: no second encoding, and what is stored is by
        construction what was hashed.  A multi-row INSERT would adapt the 17
        values of every row one by one in Python, several times slower.
        """
        elements = []
        for canonical, values in zip(canonical_texts, rows, strict=True):
            # The canonical text is a non-empty JSON object ("{...}"), and
            # prev_hash/row_hash (hex digits) are not among its keys.
            hashes = f'"prev_hash":"{values["prev_hash"]}","row_hash":"{values["row_hash"]}"'
            elements.append(f"{canonical[:-1]},{hashes}}}")
        self._session.execute(_json_insert_statement(), {"rows": f"[{','.join(elements)}]"})

    def _new_row_values(
        self,
        *,
        action: str,
        resource_type: str,
        resource_id: str | None = None,
        status: str = "success",
        user_id: uuid.UUID | None = None,
        changes: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        error_message: str | None = None,
        duration_ms: int | None = None,
        ip_address: str | None = None,
        user_agent: str | None = None,
        actor: str | None = None,
        default_metadata: Mapping[str, Any],
    ) -> dict[str, Any]:
        """The checked columns of a new row, keyed by column name, without seq and hashes.

        ``default_metadata`` is the stored form (:func:`stored_json`) of what
        every row's metadata starts from; ``metadata`` is merged over it.
        """
        if not isinstance(action, str) or not _ACTION_PATTERN.fullmatch(action):
            raise InvalidInput(
                f"invalid audit action {action!r}",
                hint="use dotted lower-case words, such as user.create",
            )
        _checked_text("action", action)
        if status not in AUDIT_STATUSES:
            raise InvalidInput(
                f"invalid audit status {status!r}", hint="use one of: " + ", ".join(AUDIT_STATUSES)
            )
        if duration_ms is not None and (
            isinstance(duration_ms, bool) or not isinstance(duration_ms, int) or duration_ms < 0
        ):
            raise InvalidInput("audit duration_ms must be a non-negative integer")
        if error_message is not None and "\x00" in error_message:
            raise InvalidInput("audit error_message cannot hold a NUL character")

        # default_metadata is in stored form already; stored_json works key by
        # key, so this equals stored_json of the merged mapping.
        merged_metadata = (
            {**default_metadata, **stored_without_secrets(metadata)}
            if metadata
            else dict(default_metadata)
        )
        return {
            "id": uuid.uuid4(),
            "created_at": utcnow(),
            "actor": _required_text("actor", self._actor if actor is None else actor),
            # Normalized so the hashed spelling is the one the database returns.
            "user_id": _normalized_uuid(user_id),
            "action": action,
            "resource_type": _required_text("resource_type", resource_type),
            "resource_id": _checked_text("resource_id", resource_id),
            "status": status,
            "changes": None if changes is None else stored_without_secrets(changes),
            "metadata": merged_metadata,
            "error_message": error_message,
            "duration_ms": duration_ms,
            "ip_address": _checked_text("ip_address", ip_address),
            "user_agent": _checked_text("user_agent", user_agent),
        }

    def _chain(self, rows: Sequence[dict[str, Any]], head: tuple[int, str] | None) -> list[str]:
        """Give ``rows`` their seq, prev_hash and row_hash after ``head``.

        Returns the canonical JSON text each row was hashed from.  Its
        ``changes`` and ``metadata`` are in stored form (plain JSON values),
        so the hashed text is :func:`canonical_json`'s without walking them
        again.
        """
        seq, prev_hash = (1, GENESIS_HASH) if head is None else (head[0] + 1, head[1])
        key = self._hmac_key
        texts = []
        for values in rows:
            values["seq"] = seq
            values["prev_hash"] = prev_hash
            canonical = canonical_text_of_json_row(values)
            prev_hash = values["row_hash"] = hash_canonical(
                prev_hash, canonical.encode("utf-8"), key
            )
            texts.append(canonical)
            seq += 1
        return texts

    def _lock_head(self) -> None:
        """Serialize writers until this transaction ends (PostgreSQL only).

        SQLite needs nothing: the unit of work began with BEGIN IMMEDIATE.
        """
        if self.dialect == "postgresql":
            self._session.execute(
                text("SELECT pg_advisory_xact_lock(:lock_id)"), {"lock_id": AUDIT_APPEND_LOCK_ID}
            )

    def update(self, *args: object, **kwargs: object) -> NoReturn:
        raise IntegrityFailure("the audit log is append-only")

    def delete(self, *args: object, **kwargs: object) -> NoReturn:
        raise IntegrityFailure("the audit log is append-only")

    # -- single rows -----------------------------------------------------------
    def head(self) -> tuple[int, str] | None:
        """``(seq, row_hash)`` of the last row, or None for an empty log."""
        last = self._session.execute(
            select(AuditLog.seq, AuditLog.row_hash).order_by(AuditLog.seq.desc()).limit(1)
        ).first()
        return None if last is None else (int(last.seq), str(last.row_hash))

    def get(self, seq_or_id: str) -> AuditLog | None:
        """The row with that seq (all digits) or that id (a UUID), or None."""
        key = seq_or_id.strip()
        condition: ColumnElement[bool]
        if key.isdigit():
            condition = AuditLog.seq == int(key)
        else:
            try:
                condition = AuditLog.id == uuid.UUID(key)
            except ValueError:
                raise InvalidInput(
                    f"{seq_or_id!r} is neither an audit sequence number nor a UUID"
                ) from None
        return self._session.scalars(select(AuditLog).where(condition)).first()

    def exists_request(self, request_id: str) -> bool:
        """Whether a row written in the last hour carries ``request_id`` in its metadata."""
        carried: ColumnElement[Any]
        if self.dialect == "postgresql":
            carried = AuditLog.meta.op("->>", return_type=String())(literal("request_id", String()))
        else:
            carried = func.json_extract(AuditLog.meta, literal("$.request_id", String()))
        found = self._session.execute(
            select(literal(1))
            .where(AuditLog.created_at >= utcnow() - REQUEST_LOOKBACK)
            .where(carried == literal(request_id, String()))
            .limit(1)
        ).first()
        return found is not None

    # -- listing ----------------------------------------------------------------
    def filter_conditions(
        self,
        *,
        actor: str | None = None,
        user_id: uuid.UUID | None = None,
        action: str | None = None,
        resource_type: str | None = None,
        resource_id: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[ColumnElement[bool]]:
        """WHERE conditions for the given filters (None = no filter).

        ``action`` may be a glob (``user.*``, ``*.create``, ``?`` for one
        character); ``since`` is inclusive and ``until`` exclusive.
        """
        conditions: list[ColumnElement[bool]] = []
        if actor is not None:
            conditions.append(AuditLog.actor == actor)
        if user_id is not None:
            conditions.append(AuditLog.user_id == user_id)
        if action is not None:
            if "*" in action or "?" in action:
                conditions.append(AuditLog.action.like(glob_to_like(action), escape="\\"))
            else:
                conditions.append(AuditLog.action == action)
        if resource_type is not None:
            conditions.append(AuditLog.resource_type == resource_type)
        if resource_id is not None:
            conditions.append(AuditLog.resource_id == resource_id)
        if status is not None:
            conditions.append(AuditLog.status == status)
        if _aware("since", since) is not None:
            conditions.append(AuditLog.created_at >= since)
        if _aware("until", until) is not None:
            conditions.append(AuditLog.created_at < until)
        return conditions

    @staticmethod
    def _page(
        conditions: Sequence[ColumnElement[bool]],
        *,
        descending: bool,
        after_seq: int | None,
        limit: int,
    ) -> Select[AuditLog]:
        statement = select(AuditLog).where(*conditions)
        if after_seq is not None:
            statement = statement.where(
                AuditLog.seq < after_seq if descending else AuditLog.seq > after_seq
            )
        order = AuditLog.seq.desc() if descending else AuditLog.seq.asc()
        return statement.order_by(order).limit(limit)

    def query(
        self,
        *,
        descending: bool = True,
        after_seq: int | None = None,
        limit: int = 50,
        **filters: Any,
    ) -> tuple[list[AuditLog], int | None]:
        """One keyset page: ``(rows, cursor)``; pass ``cursor`` as ``after_seq`` for the next.

        The cursor is None on the last page.
        """
        if limit < 1:
            raise InvalidInput("the page size must be at least 1")
        conditions = self.filter_conditions(**filters)
        rows = list(
            self._session.scalars(
                self._page(conditions, descending=descending, after_seq=after_seq, limit=limit + 1)
            )
        )
        if len(rows) > limit:
            rows = rows[:limit]
            return rows, rows[-1].seq
        return rows, None

    def iterate(
        self,
        *,
        batch_size: int = 1000,
        descending: bool = False,
        since_seq: int | None = None,
        **filters: Any,
    ) -> Iterator[AuditLog]:
        """Every matching row in seq order, in constant memory.

        Rows are read in keyset batches and expunged from the session (they
        stay readable, detached).  ``since_seq`` is where to start, inclusive:
        the lowest seq ascending, the highest descending.
        """
        if batch_size < 1:
            raise InvalidInput("the batch size must be at least 1")
        conditions = self.filter_conditions(**filters)
        after_seq: int | None = None
        if since_seq is not None:
            after_seq = since_seq + 1 if descending else since_seq - 1
        while True:
            batch = list(
                self._session.scalars(
                    self._page(
                        conditions, descending=descending, after_seq=after_seq, limit=batch_size
                    )
                )
            )
            for row in batch:
                self._session.expunge(row)
            yield from batch
            if len(batch) < batch_size:
                return
            after_seq = batch[-1].seq

    def stats(
        self, *, by: str, since: datetime | None = None, until: datetime | None = None
    ) -> list[tuple[str, int]]:
        """Row counts grouped by one dimension, most frequent first (ties by key).

        ``day`` groups by the UTC date, spelled ``YYYY-MM-DD``.
        """
        key: ColumnElement[Any]
        if by == "day":
            if self.dialect == "postgresql":
                key = func.to_char(
                    func.timezone(literal_column("'UTC'"), AuditLog.created_at),
                    literal_column("'YYYY-MM-DD'"),
                )
            else:
                # SQLite stores the naive UTC instant as text: date() is its UTC date.
                key = func.date(AuditLog.created_at)
        elif by in STATS_DIMENSIONS:
            key = getattr(AuditLog, by)
        else:
            raise InvalidInput(
                f"cannot group the audit log by {by!r}",
                hint="use one of: " + ", ".join(STATS_DIMENSIONS),
            )
        count = func.count()
        statement = (
            select(key.label("key"), count.label("n"))
            .where(*self.filter_conditions(since=since, until=until))
            .group_by(key)
        )
        counts = [(str(key), int(n)) for key, n in self._session.execute(statement)]
        # Sorted here rather than in SQL: collations differ between the dialects.
        return sorted(counts, key=lambda item: (-item[1], item[0]))

    # -- verification --------------------------------------------------------------
    def _table_batch(self, after: Any, limit: int) -> Sequence[Row[Any]]:
        """Core rows (no identity map) with seq > after, ascending, at most ``limit``."""
        table = _AUDIT_TABLE
        return self._session.execute(
            select(table).where(table.c.seq > after).order_by(table.c.seq).limit(limit)
        ).all()

    def _plain_batch(self, after: Any, limit: int) -> list[tuple[Any, ...]] | None:
        """The rows of :meth:`_table_batch` as the driver's tuples (``_plain_chain_select``).

        None when SQLite's driver refuses a value (a file edited by hand, e.g.
        text that is not UTF-8): that batch goes the Core way, which reports
        it as it always did.
        """
        connection = self._session.connection()
        statement = _plain_chain_select(self.dialect)
        parameters = {"after": after, "limit": limit}
        if self.dialect != "sqlite":
            # A failed statement would abort the PostgreSQL transaction: no retry there.
            with connection.execute(statement, parameters) as result:
                # Straight from the DBAPI cursor: Row objects and the column
                # types' result processors cost more than the hashing.
                return list(result.cursor.fetchall())
        try:
            with connection.execute(statement, parameters) as result:
                return list(result.cursor.fetchall())
        except Exception:  # whatever it was, the Core way reports it
            return None

    def _chain_rows(
        self, start_seq: int, batch_size: int
    ) -> Iterator[tuple[Any, Any, Any, Row[Any] | None]]:
        """``(seq, prev_hash, row_hash, row)`` with seq >= start_seq, ascending, in batches.

        ``row`` is None when the row's hash was recomputed from its plain
        values and matches (nearly always), else the Core row, to be hashed
        the exact way (:func:`hash_content`).  From a row that the plain way
        cannot render, or whose plain hash does not match (so an "edited"
        report always comes from the exact way), the rest of its batch is
        read again as Core rows: the same statement, so the same rows in the
        same order (the log only grows, at its end, and LIMIT keeps the new
        rows out).
        """
        render = (
            _plain_canonical_postgresql if self.dialect == "postgresql" else _plain_canonical_sqlite
        )
        hash_text = row_hasher(self._hmac_key)
        after: Any = start_seq - 1
        while True:
            plain = self._plain_batch(after, batch_size)
            if plain is None:
                rows = self._table_batch(after, batch_size)
                for row in rows:
                    yield row.seq, row.prev_hash, row.row_hash, row
                if len(rows) < batch_size:
                    return
                after = rows[-1].seq
                continue
            for index, values in enumerate(plain):
                canonical = render(values)
                prev_hash = values[_PLAIN_PREV_HASH]
                row_hash = values[_PLAIN_ROW_HASH]
                if (
                    canonical is None
                    or type(prev_hash) is not str  # hash_text needs str
                    or hash_text(prev_hash, canonical) != row_hash
                ):
                    for row in self._table_batch(after, len(plain))[index:]:
                        yield row.seq, row.prev_hash, row.row_hash, row
                    break
                yield values[1], prev_hash, row_hash, None
            if len(plain) < batch_size:
                return
            after = plain[-1][1]

    def _later_row_with_hash(self, row_hash: str, seq: int) -> int | None:
        later = self._session.execute(
            select(AuditLog.seq)
            .where(AuditLog.row_hash == row_hash, AuditLog.seq > seq)
            .order_by(AuditLog.seq)
            .limit(1)
        ).scalar()
        return None if later is None else int(later)

    def verify_chain(
        self,
        *,
        since_seq: int | None = None,
        anchor: tuple[int, str] | None = None,
        batch_size: int = 2000,
    ) -> ChainReport:
        """Recompute the chain in ascending seq and report the first problem.

        The rules (reordered, edited, missing, inserted, anchor) are in the
        module docstring.  With ``since_seq`` the walk starts there and links
        to the row before it, which must exist.  ``anchor`` is a ``(seq,
        row_hash)`` recorded earlier (e.g. the head at some point): that row
        must still exist with that hash.
        """
        if batch_size < 1:
            raise InvalidInput("the batch size must be at least 1")
        if anchor is not None:
            anchor_seq, anchor_hash = anchor
            if anchor_seq < 1 or not _HASH_PATTERN.fullmatch(anchor_hash):
                raise InvalidInput("an anchor is a positive seq and a 64-hex-digit row hash")
        checked = 0
        first_seq: int | None = None
        last_seq: int | None = None
        last_hash: str | None = None

        def problem(kind: str, seq: int, detail: str) -> ChainReport:
            return ChainReport(
                ok=False,
                checked=checked,
                first_seq=first_seq,
                last_seq=last_seq,
                head_hash=last_hash,
                bad_seq=seq,
                problem=kind,
                detail=detail,
            )

        start_seq = 1
        expected_seq = 1
        expected_prev = GENESIS_HASH
        if since_seq is not None and since_seq > 1:
            start_seq = expected_seq = since_seq
            before = self._session.execute(
                select(AuditLog.row_hash).where(AuditLog.seq == since_seq - 1)
            ).scalar()
            if before is not None:
                expected_prev = str(before)
            else:
                head = self.head()
                if head is not None and head[0] >= since_seq:
                    return problem(
                        "missing",
                        since_seq - 1,
                        f"row {since_seq - 1} is missing, so row {since_seq} cannot be linked",
                    )

        anchor_seen = False
        key = self._hmac_key
        for seq_value, prev_hash, row_hash, core_row in self._chain_rows(start_seq, batch_size):
            seq = int(seq_value)
            linked = prev_hash == expected_prev
            if not linked:
                later = self._later_row_with_hash(prev_hash, seq)
                if later is not None:
                    return problem(
                        "reordered",
                        seq,
                        f"row {seq} links to row {later}, which comes after it: "
                        "rows were moved out of order",
                    )
            if core_row is None:
                recomputed = row_hash  # recomputed from the plain values, and it matched
            else:
                # changes/metadata come back from the driver's JSON parser: JSON
                # values, which canonical_text_of_json_row hashes as canonical_json would.
                canonical = canonical_text_of_json_row(hash_content(core_row))
                recomputed = hash_canonical(prev_hash, canonical.encode("utf-8"), key)
            if recomputed != row_hash:
                return problem(
                    "edited",
                    seq,
                    f"row {seq} no longer matches its hash: its content was changed "
                    "(or VUTF_AUDIT_KEY differs from the key it was written with)",
                )
            if seq != expected_seq:
                span = (
                    f"row {expected_seq}"
                    if seq - expected_seq == 1
                    else (f"rows {expected_seq}-{seq - 1}")
                )
                return problem(
                    "missing",
                    expected_seq,
                    f"{span} missing: row {seq} follows row {expected_seq - 1}",
                )
            if not linked:
                if expected_prev == GENESIS_HASH:
                    detail = f"row {seq} is the first row but does not start from the genesis hash"
                else:
                    detail = (
                        f"row {seq} does not link to row {seq - 1} although both hash correctly: "
                        f"a forged row was spliced in (row {seq - 1} or row {seq})"
                    )
                return problem("inserted", seq, detail)
            if anchor is not None and seq == anchor[0]:
                anchor_seen = True
                if row_hash != anchor[1]:
                    return problem(
                        "anchor",
                        seq,
                        f"row {seq} has another hash than the anchor: the chain was rewritten",
                    )
            checked += 1
            first_seq = seq if first_seq is None else first_seq
            last_seq = seq
            last_hash = str(row_hash)
            expected_seq = seq + 1
            expected_prev = last_hash

        if anchor is not None and not anchor_seen:
            anchored = self._session.execute(
                select(AuditLog.row_hash).where(AuditLog.seq == anchor[0])
            ).scalar()
            if anchored is None:
                return problem(
                    "anchor",
                    anchor[0],
                    f"row {anchor[0]} named by the anchor does not exist: the log was truncated",
                )
            if anchored != anchor[1]:
                return problem(
                    "anchor",
                    anchor[0],
                    f"row {anchor[0]} has another hash than the anchor: the chain was rewritten",
                )
        return ChainReport(
            ok=True, checked=checked, first_seq=first_seq, last_seq=last_seq, head_hash=last_hash
        )

    # -- views ------------------------------------------------------------------
    @staticmethod
    def to_entry(row: AuditLog) -> AuditEntry:
        return AuditEntry(
            id=row.id,
            seq=row.seq,
            created_at=row.created_at,
            actor=row.actor,
            user_id=row.user_id,
            action=row.action,
            resource_type=row.resource_type,
            resource_id=row.resource_id,
            status=row.status,
            changes=row.changes,
            metadata=row.meta,
            error_message=row.error_message,
            duration_ms=row.duration_ms,
            ip_address=row.ip_address,
            user_agent=row.user_agent,
            prev_hash=row.prev_hash,
            row_hash=row.row_hash,
        )
