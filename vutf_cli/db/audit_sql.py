"""Every SQL statement that reads the audit log: filters, keyset pages, stats, export, verify.

Filters
    :func:`filter_conditions` shapes each filter so that it leads one of the
    schema's ``(column, seq)`` indexes.  Two filters cannot lead an index on
    their own and are rewritten: an action glob (``LIKE`` is not
    index-served under a linguistic collation) enumerates the few distinct
    actions with a loose index scan (a recursive CTE hopping through
    ``ix_audit_log_action_seq``), matches the glob against those and fetches
    the rows with ``action IN (...)`` (``= ANY(ARRAY)`` on PostgreSQL);
    ``--resource-id`` without ``--resource-type`` enumerates the resource
    types the same way.
Pages
    Every listing is :func:`page_statement`: the filters, a keyset bound on
    ``seq`` (never OFFSET), ``ORDER BY seq``, ``LIMIT``.
Export
    The JSON lines of ``audit export`` are rendered by the database, byte for
    byte what ``audit list -o jsonl`` prints (docs/architecture.md §5):
    compact separators, keys in :data:`ENTRY_FIELDS` order, UTC timestamps
    with six fractional digits and ``Z``, lower-case UUIDs, strings escaped
    as ``json.dumps(..., ensure_ascii=False)`` escapes them (both databases
    escape exactly ``"``, ``\\``, and the control characters below U+0020,
    with the same spellings).  What SQL cannot promise is marked for
    Python (``services.audit_export`` finishes the lines):

    * PostgreSQL (:func:`postgres_lines_statement`, sent through COPY):
      ``row_to_json`` writes the row compactly, but ``jsonb`` text is spaced,
      a decimal in ``jsonb`` is printed as stored (1e-07 as ``0.0000001``,
      where Python prints its float) and the timestamp as PostgreSQL spells
      it; the client finishes each line (no per-row guard on the server), and
      a timestamp Python cannot hold (a BC date, edited by hand) is NULL.
    * SQLite (:func:`sqlite_lines_statement`): ``json_object`` writes the row
      and ``json()`` minifies the stored JSON; a row whose ids or timestamp
      are not in the form vutf stores (edited by hand) gets NULL.
Verify
    :func:`verify_batch_statement` reads each row's hashed fields as their
    stored text, for ``db.audit_verify``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import (
    CTE,
    ColumnElement,
    Select,
    Table,
    any_,
    bindparam,
    func,
    literal,
    literal_column,
    select,
    type_coerce,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.types import String, Text

from vutf_cli.db.models import AuditLog
from vutf_cli.security.audit_fields import CHAIN_FIELDS, ENTRY_FIELDS, HASHED_FIELDS

__all__ = [
    "AUDIT",
    "STATS_DIMENSIONS",
    "AuditFilters",
    "filter_conditions",
    "get_statement",
    "glob_to_like",
    "head_statement",
    "page_statement",
    "postgres_lines_statement",
    "request_statement",
    "sqlite_lines_statement",
    "stats_statement",
    "verify_batch_statement",
]

AUDIT: Final = cast(Table, AuditLog.__table__)
STATS_DIMENSIONS: Final = ("action", "actor", "resource_type", "status", "day")


@dataclass(frozen=True, slots=True)
class AuditFilters:
    """The filters as the SQL takes them (None = no filter); ``since`` inclusive, ``until`` not."""

    actor: str | None = None
    user_id: Any = None  # uuid.UUID
    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    since_seq: int | None = None  # inclusive, like since

    @property
    def action_is_glob(self) -> bool:
        return self.action is not None and ("*" in self.action or "?" in self.action)


def glob_to_like(pattern: str) -> str:
    """``user.*`` -> ``user.%`` (``?`` -> ``_``), literal ``%``/``_``/``\\`` escaped with ``\\``."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


# -- filters and pages ------------------------------------------------------------------
def _distinct_values(column_name: str) -> CTE:
    """Every distinct value of an indexed column, one index descent each (NULL ends it)."""
    column = AUDIT.c[column_name]
    first = select(select(column).order_by(column).limit(1).scalar_subquery().label("value"))
    values = first.cte(f"audit_{column_name}_values", recursive=True)
    following = select(
        select(column)
        .where(column > values.c.value)
        .order_by(column)
        .limit(1)
        .scalar_subquery()
        .label("value")
    ).where(values.c.value.is_not(None))
    return values.union_all(following)


def _in_values(column_name: str, values: Select[Any], dialect: str) -> ColumnElement[bool]:
    """``column IN (values)``, in the form each planner turns into index lookups."""
    column = AUDIT.c[column_name]
    if dialect == "postgresql":
        # = ANY(ARRAY(subquery)) is an InitPlan whose result is an index
        # condition; IN (subquery) is planned as a join, possibly over a Seq Scan.
        return column == any_(func.array(values.scalar_subquery()))
    return column.in_(values)


def filter_conditions(filters: AuditFilters, dialect: str) -> list[ColumnElement[bool]]:
    """WHERE conditions for ``filters``, each index-served (module docstring)."""
    conditions: list[ColumnElement[bool]] = []
    if filters.actor is not None:
        conditions.append(AUDIT.c.actor == filters.actor)
    if filters.user_id is not None:
        conditions.append(AUDIT.c.user_id == filters.user_id)
    if filters.action is not None:
        if filters.action_is_glob:
            actions = _distinct_values("action")
            value = actions.c.value
            matches = (
                value.like(glob_to_like(filters.action), escape="\\")
                if dialect == "postgresql"
                # SQLite's LIKE ignores case; GLOB does not (and the action
                # filter holds no GLOB metacharacter but * and ?).
                else value.op("GLOB")(filters.action)
            )
            known = select(value).where(value.is_not(None), matches)
            conditions.append(_in_values("action", known, dialect))
        else:
            conditions.append(AUDIT.c.action == filters.action)
    if filters.resource_type is not None:
        conditions.append(AUDIT.c.resource_type == filters.resource_type)
    if filters.resource_id is not None:
        if filters.resource_type is None:
            types = _distinct_values("resource_type")
            known = select(types.c.value).where(types.c.value.is_not(None))
            conditions.append(_in_values("resource_type", known, dialect))
        conditions.append(AUDIT.c.resource_id == filters.resource_id)
    if filters.status is not None:
        conditions.append(AUDIT.c.status == filters.status)
    if filters.since is not None:
        conditions.append(AUDIT.c.created_at >= filters.since)
    if filters.until is not None:
        conditions.append(AUDIT.c.created_at < filters.until)
    if filters.since_seq is not None:
        conditions.append(AUDIT.c.seq >= filters.since_seq)
    return conditions


def page_statement(
    filters: AuditFilters, dialect: str, *, descending: bool, after_seq: int | None, limit: int
) -> Select[Any]:
    """The one statement every listing runs: filters, keyset bound, seq order, limit."""
    statement = select(*(AUDIT.c[name] for name in ENTRY_FIELDS)).where(
        *filter_conditions(filters, dialect)
    )
    if after_seq is not None:
        statement = statement.where(
            AUDIT.c.seq < after_seq if descending else AUDIT.c.seq > after_seq
        )
    order = AUDIT.c.seq.desc() if descending else AUDIT.c.seq.asc()
    return statement.order_by(order).limit(limit)


# -- single rows, stats -------------------------------------------------------------------
def head_statement() -> Select[Any]:
    """``(seq, row_hash)`` of the last row."""
    return select(AUDIT.c.seq, AUDIT.c.row_hash).order_by(AUDIT.c.seq.desc()).limit(1)


def get_statement(condition: ColumnElement[bool]) -> Select[Any]:
    return select(AuditLog).where(condition)


def request_statement(dialect: str, request_id: str, since: datetime) -> Select[Any]:
    """A row written since ``since`` that carries ``request_id`` in its metadata."""
    carried: ColumnElement[Any]
    if dialect == "postgresql":
        carried = AUDIT.c.metadata.op("->>", return_type=String())(literal("request_id", String()))
    else:
        carried = func.json_extract(AUDIT.c.metadata, literal("$.request_id", String()))
    return (
        select(literal(1))
        .where(AUDIT.c.created_at >= since)
        .where(carried == literal(request_id, String()))
        .limit(1)
    )


def stats_statement(
    by: str, dialect: str, *, since: datetime | None, until: datetime | None
) -> Select[Any]:
    """``(key, n)`` row counts grouped by one of :data:`STATS_DIMENSIONS` (``day``: UTC date)."""
    key: ColumnElement[Any]
    if by == "day":
        if dialect == "postgresql":
            key = func.to_char(
                func.timezone(literal_column("'UTC'"), AUDIT.c.created_at),
                literal_column("'YYYY-MM-DD'"),
            )
        else:
            # SQLite stores the naive UTC instant as text: date() is its UTC date.
            key = func.date(AUDIT.c.created_at)
    else:
        key = AUDIT.c[by]
    conditions = filter_conditions(AuditFilters(since=since, until=until), dialect)
    return select(key.label("key"), func.count().label("n")).where(*conditions).group_by(key)


# -- export: PostgreSQL ---------------------------------------------------------------------
# row_to_json prints the instant itself, in the session's time zone (UTC, set
# by every transaction): 'YYYY-MM-DDTHH:MM:SS[.f…]+00:00'.  The only work left
# to the server is a few comparisons: psycopg2 reads +-infinity as
# datetime.max/min, so `list` shows them so; any other time outside the years
# 1-9999 (a BC date, edited by hand) Python cannot hold: NULL, an error.
_PG_TIMESTAMP: Final = (
    "CASE WHEN audit_log.created_at = 'infinity' "
    "THEN timestamptz '9999-12-31 23:59:59.999999+00' "
    "WHEN audit_log.created_at = '-infinity' THEN timestamptz '0001-01-01 00:00:00+00' "
    "WHEN audit_log.created_at >= '0001-01-01 00:00:00+00' "
    "AND audit_log.created_at < '10000-01-01 00:00:00+00' THEN audit_log.created_at END"
)


def postgres_lines_statement(
    conditions: list[ColumnElement[bool]], *, after_seq: int, limit: int
) -> Select[Any]:
    """One text column: ``row_to_json`` of each matching row after ``after_seq``, in seq order.

    What the server would check per row (a decimal in ``jsonb``, the
    timestamp's spelling) is left to the client, which finishes each line
    while the server renders the next ones (``services.audit_export_lines``).
    """
    columns = [
        literal_column(_PG_TIMESTAMP).label("created_at") if name == "created_at" else AUDIT.c[name]
        for name in ENTRY_FIELDS
    ]
    rendered = (
        select(*columns)
        .where(*conditions, AUDIT.c.seq > after_seq)
        .order_by(AUDIT.c.seq)
        .limit(limit)
        .subquery("rendered")
    )
    return select(literal_column("row_to_json(rendered)::text", Text())).select_from(rendered)


# -- export: SQLite -------------------------------------------------------------------------
# Cheap look-alike tests of the forms vutf stores (they run on every row;
# exact GLOB patterns cost twice as much): a hand edit that keeps the length
# and case is exported as stored (`audit verify` reports it).
def _sqlite_uuid(column: str) -> str:
    value = f"audit_log.{column}"
    return f"(length({value}) = 36 AND lower({value}) = {value})"


_SQLITE_GUARDS: Final = " AND ".join(
    [
        _sqlite_uuid("id"),
        f"(audit_log.user_id IS NULL OR {_sqlite_uuid('user_id')})",
        # SQLAlchemy's storage form: 'YYYY-MM-DD HH:MM:SS.ffffff'.
        "length(audit_log.created_at) = 26 AND substr(audit_log.created_at, 11, 1) = ' '",
        "typeof(audit_log.seq) = 'integer'",
        "typeof(audit_log.duration_ms) IN ('integer', 'null')",
    ]
)


def _sqlite_value(name: str) -> str:
    if name == "created_at":
        return (
            "substr(audit_log.created_at, 1, 10) || 'T' || substr(audit_log.created_at, 12) || 'Z'"
        )
    if name in ("changes", "metadata"):
        return f"json(audit_log.{name})"
    return f"audit_log.{name}"


_SQLITE_LINE: Final = (
    f"CASE WHEN {_SQLITE_GUARDS} THEN json_object("
    + ", ".join(f"'{name}', {_sqlite_value(name)}" for name in ENTRY_FIELDS)
    + ") END"
)


def sqlite_lines_statement(
    conditions: list[ColumnElement[bool]], *, after_seq: int, limit: int
) -> Select[Any]:
    """``(seq, line)`` of each matching row after ``after_seq``; line NULL: render in Python."""
    return (
        select(AUDIT.c.seq, literal_column(_SQLITE_LINE, Text()).label("line"))
        .where(*conditions, AUDIT.c.seq > after_seq)
        .order_by(AUDIT.c.seq)
        .limit(limit)
    )


# -- verify ---------------------------------------------------------------------------------
# format_timestamp's spelling, for the years Python's datetime holds
# (outside them NULL: a row vutf never wrote).
_PG_CANONICAL_CREATED_AT: Final = (
    "CASE WHEN audit_log.created_at >= '0001-01-01 00:00:00+00' "
    "AND audit_log.created_at < '10000-01-01 00:00:00+00' "
    "THEN to_char(audit_log.created_at AT TIME ZONE 'UTC', "
    '\'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\') END'
)


@functools.cache
def verify_batch_statement(dialect: str) -> Select[Any]:
    """The hashed fields, then prev_hash and row_hash, of the rows with seq > :after, :limit.

    Every value comes as the driver gives the stored value, no type
    converting it: on SQLite the stored text itself (for an exact check of
    its spelling); on PostgreSQL, whose types keep no spelling, the output
    text of ``uuid`` and ``jsonb`` and the canonical timestamp.
    """
    columns: list[ColumnElement[Any]] = []
    for name in (*HASHED_FIELDS, *CHAIN_FIELDS):
        column: ColumnElement[Any] = AUDIT.c[name]
        if name == "created_at" and dialect == "postgresql":
            column = literal_column(_PG_CANONICAL_CREATED_AT, Text())
        elif name in ("id", "user_id", "changes", "metadata", "created_at"):
            column = (
                sql_cast(column, Text) if dialect == "postgresql" else type_coerce(column, Text)
            )
        columns.append(column.label(name))
    return (
        select(*columns)
        .where(AUDIT.c.seq > bindparam("after"))
        .order_by(AUDIT.c.seq)
        .limit(bindparam("limit"))
    )
