"""The audit log's writes, and its single-row reads (docs/architecture.md §3).

:meth:`AuditLogRepository.append` (one row) and
:meth:`~AuditLogRepository.append_many` (many rows in one bulk INSERT, for
imports) are the only writes, with the same checks and hashing.  On
PostgreSQL append_many sends the rows as one JSON parameter made of the very
canonical text each row was hashed from, which the server unpacks into the
columns.

Writers are serialized so the chain stays linear: on PostgreSQL the
transaction first takes a transaction-level advisory lock
(:data:`AUDIT_APPEND_LOCK_ID`, held until COMMIT or ROLLBACK) and only then
reads the head; on SQLite the unit of work already began with ``BEGIN
IMMEDIATE``, so there is one writer at a time.

What is hashed is exactly what the database gives back later: ``changes``
and ``metadata`` are stored in the form they come back in from ``jsonb``
(see :func:`stored_json`) and in their canonical text on SQLite, timestamps
keep their microseconds, and UUIDs are normalized.  The statements live in
``db.audit_sql``; verification in ``db.audit_verify``.

What goes into a row is decided above this module: the services drop
secrets from ``changes`` and ``metadata`` (``services.audit_trail``) and the
unit of work hands over the metadata every row starts from.  This module
checks types and sizes, stores what it is given and hashes it.
"""

from __future__ import annotations

import functools
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final, NoReturn, cast

from sqlalchemy import (
    ColumnElement,
    Insert,
    Row,
    Table,
    bindparam,
    case,
    column,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session
from sqlalchemy.types import Integer, String, Text

from vutf_cli.db.audit_sql import (
    STATS_DIMENSIONS,
    get_statement,
    glob_to_like,
    head_statement,
    request_statement,
    stats_statement,
)
from vutf_cli.db.audit_verify import verify_chain
from vutf_cli.db.models import AUDIT_STATUSES, AuditLog
from vutf_cli.db.types import JSONType, utcnow
from vutf_cli.domain.validation import identity_key
from vutf_cli.domain.views import AuditEntry, ChainReport
from vutf_cli.errors import IntegrityFailure, InvalidInput
from vutf_cli.security.audit_chain import (
    GENESIS_HASH,
    canonical_text_of_json_row,
    hash_canonical,
    jsonable,
)
from vutf_cli.security.audit_fields import CHAIN_FIELDS, HASHED_FIELDS

__all__ = [
    "AUDIT_APPEND_LOCK_ID",
    "STATS_DIMENSIONS",
    "AuditLogRepository",
    "glob_to_like",
    "hash_content",
    "stored_json",
]

# Key of the PostgreSQL advisory lock that serializes audit writers: the
# ASCII bytes of "vutfaudt" as a (positive) signed 64-bit integer.
AUDIT_APPEND_LOCK_ID: Final = 0x7675_7466_6175_6474

# How far back exists_request looks: a retry follows its failed attempt
# within seconds, and created_at bounds the scan through its index.
REQUEST_LOOKBACK: Final = timedelta(hours=1)

_ACTION_PATTERN = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+")

# append_many inserts through the table (column names: ``metadata``); append
# builds an ORM row (attribute names: ``meta``).
_AUDIT_TABLE: Final = cast(Table, AuditLog.__table__)
# The rows whose changes name a user (username, email): user_ids_named.
_NAMING_ACTIONS: Final = ("user.create", "user.update", "user.delete")
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

    names = [*HASHED_FIELDS, *CHAIN_FIELDS]
    return insert(_AUDIT_TABLE).from_select(
        names, select(*(field(name) for name in names)), include_defaults=False
    )


# The append's own statements, built once (every audited call runs them).
# PostgreSQL: lock, then read the head as a statement of its own (see _locked_head).
_LOCKED_HEAD_STATEMENT: Final = text(
    f"SELECT pg_advisory_xact_lock({AUDIT_APPEND_LOCK_ID}); "
    "SELECT seq, row_hash FROM audit_log ORDER BY seq DESC LIMIT 1"
).columns(seq=Integer, row_hash=String)
_head_statement: Final = functools.cache(head_statement)


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


def _without_null_columns(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` without the columns that are NULL in every one of them.

    A bulk INSERT then sends fewer values; the columns left out have no
    default, so they are NULL all the same.
    """
    used = [name for name in rows[0] if any(row[name] is not None for row in rows)]
    if len(used) == len(rows[0]):
        return list(rows)
    return [{name: row[name] for name in used} for row in rows]


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


class AuditLogRepository:
    """Appends to, reads and verifies the audit log through one session (never commits).

    ``default_metadata`` is what every row's ``metadata`` starts from (the
    unit of work's: the process, the invocation, the request id); a row's
    own ``metadata`` is merged over it.  What goes into either is decided by
    the caller: this class stores what it is given, in stored form.
    """

    def __init__(
        self,
        session: Session,
        *,
        hmac_key: str | None = None,
        default_metadata: Mapping[str, Any] | None = None,
        actor: str = "unknown",
    ) -> None:
        self._session = session
        self._hmac_key = hmac_key
        # In stored form once: every row of this transaction carries it.
        self._default_metadata: dict[str, Any] = stored_json(dict(default_metadata or {}))
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
        )
        self._chain([values], self._locked_head())
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
        rows = []
        for entry in entries:
            unknown = set(entry) - _APPEND_ARGUMENTS
            if unknown:
                raise InvalidInput("unknown audit field(s): " + ", ".join(sorted(unknown)))
            rows.append(self._new_row_values(**entry))
        if not rows:
            return range(0)
        canonical_texts = self._chain(rows, self._locked_head())
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
    ) -> dict[str, Any]:
        """The checked columns of a new row, keyed by column name, without seq and hashes.

        ``changes`` and ``metadata`` are stored as given (in stored form,
        :func:`stored_json`); ``metadata`` is merged over the defaults.
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

        # The defaults are in stored form already; stored_json works key by
        # key, so this equals stored_json of the merged mapping.
        defaults = self._default_metadata
        merged_metadata = {**defaults, **stored_json(metadata)} if metadata else dict(defaults)
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
            "changes": None if changes is None else stored_json(changes),
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

    def _locked_head(self) -> tuple[int, str] | None:
        """Serialize writers until this transaction ends, then :meth:`head`.

        PostgreSQL: the advisory lock and the head read go in one round trip
        (two statements of one simple query; under READ COMMITTED each takes
        its own snapshot, so the read sees every row committed before the
        lock was granted), which shortens the time the lock is held.  SQLite
        needs no lock: the unit of work began with BEGIN IMMEDIATE.
        """
        if self.dialect != "postgresql":
            return self.head()
        last = self._session.execute(_LOCKED_HEAD_STATEMENT).first()
        return None if last is None else (int(last.seq), str(last.row_hash))

    def update(self, *args: object, **kwargs: object) -> NoReturn:
        raise IntegrityFailure("the audit log is append-only")

    def delete(self, *args: object, **kwargs: object) -> NoReturn:
        raise IntegrityFailure("the audit log is append-only")

    # -- single rows -----------------------------------------------------------
    def head(self) -> tuple[int, str] | None:
        """``(seq, row_hash)`` of the last row, or None for an empty log."""
        last = self._session.execute(_head_statement()).first()
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
        return self._session.scalars(get_statement(condition)).first()

    def user_ids_named(self, name: str) -> list[uuid.UUID]:
        """Ids of the users the log shows holding ``name``, first named first.

        For a user row that no longer exists (hard-deleted): ``name`` is a
        username (any case) when it has no ``@``, else an email, and is
        matched against the ``changes`` of successful ``user.create`` rows
        (also those of an import), ``user.update`` rows (an email's old and
        new value) and ``user.delete`` rows.  Several ids mean the name
        changed hands over time.
        """
        # The one identity rule (NFKC: a full-width name or at sign counts too).
        wanted = identity_key(name)
        paths = (
            [("email",), ("email", "old"), ("email", "new")] if "@" in wanted else [("username",)]
        )
        changes = _AUDIT_TABLE.c.changes
        values: list[ColumnElement[Any]]
        if self.dialect == "postgresql":
            values = [func.jsonb_extract_path_text(changes, *path) for path in paths]
        else:
            # json_extract raises on text that is not JSON (a row edited by
            # hand); json_valid keeps such a row from failing the lookup.
            values = [
                case(
                    (
                        func.json_valid(changes) == 1,
                        func.json_extract(changes, "$." + ".".join(path)),
                    )
                )
                for path in paths
            ]
        first_seq = func.min(_AUDIT_TABLE.c.seq)
        statement = (
            select(_AUDIT_TABLE.c.user_id, first_seq)
            .where(
                _AUDIT_TABLE.c.action.in_(_NAMING_ACTIONS),
                _AUDIT_TABLE.c.status == "success",
                _AUDIT_TABLE.c.user_id.is_not(None),
                or_(*(func.lower(value) == wanted for value in values)),
            )
            .group_by(_AUDIT_TABLE.c.user_id)
            .order_by(first_seq)
        )
        return [row.user_id for row in self._session.execute(statement)]

    def exists_request(self, request_id: str) -> bool:
        """Whether a row written in the last hour carries ``request_id`` in its metadata."""
        statement = request_statement(self.dialect, request_id, utcnow() - REQUEST_LOOKBACK)
        return self._session.execute(statement).first() is not None

    def stats(
        self, *, by: str, since: datetime | None = None, until: datetime | None = None
    ) -> list[tuple[str, int]]:
        """Row counts grouped by one dimension, most frequent first (ties by key).

        ``day`` groups by the UTC date, spelled ``YYYY-MM-DD``.
        """
        if by not in STATS_DIMENSIONS:
            raise InvalidInput(
                f"cannot group the audit log by {by!r}",
                hint="use one of: " + ", ".join(STATS_DIMENSIONS),
            )
        for name, value in (("since", since), ("until", until)):
            if value is not None and value.tzinfo is None:
                raise InvalidInput(f"{name} must be a timezone-aware datetime")
        statement = stats_statement(by, self.dialect, since=since, until=until)
        counts = [(str(key), int(n)) for key, n in self._session.execute(statement)]
        # Sorted here rather than in SQL: collations differ between the dialects.
        return sorted(counts, key=lambda item: (-item[1], item[0]))

    def verify_chain(
        self,
        *,
        since_seq: int | None = None,
        anchor: tuple[int, str] | None = None,
        batch_size: int = 2000,
    ) -> ChainReport:
        """The chain check of :func:`vutf_cli.db.audit_verify.verify_chain`, with this key."""
        return verify_chain(
            self._session,
            key=self._hmac_key,
            since_seq=since_seq,
            anchor=anchor,
            batch_size=batch_size,
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
