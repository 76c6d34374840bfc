"""Audit rows rendered as vutf's JSON lines by the database, for `vutf audit export`.

Turning a row into JSON in Python (driver values -> AuditEntry -> dict ->
``json.dumps``) costs tens of microseconds; the database's own C functions
do most of it for a fraction of that.  The text must be *byte for byte* what
the Python path prints (``audit list -o jsonl`` of the same rows), so the
SQL follows vutf's rules (DESIGN.md section 5): compact separators, keys in
AuditEntry order, UTC timestamps with six fractional digits and ``Z``,
canonical lower-case UUIDs, strings escaped as ``json.dumps(...,
ensure_ascii=False)`` escapes them (both databases escape exactly ``"``,
``\\``, and the control characters below U+0020, with the same spellings).

What the SQL cannot promise is left to Python, row by row:

PostgreSQL (:func:`postgres_lines_statement`, :func:`finish_postgres_line`)
    ``row_to_json`` writes the row compactly, but ``changes``/``metadata`` are
    ``jsonb``, whose text form is spaced (``{"a": 1, "b": [1, 2]}``) and has
    no compact variant.  Two byte replacements (``, "`` -> ``,"`` and
    ``": `` -> ``":``) compact it, exactly so when the line holds no
    backslash (a quote inside a string is always escaped, so without one
    neither pattern can occur inside a string) and every remaining ``, ``
    is inside a string (it can only be a separator in an array of
    non-strings, so lines with a ``[`` are checked).  Decimal numbers are
    marked by the SQL (a leading ``#``): ``jsonb`` prints 1e-07 as
    ``0.0000001`` while the list path prints Python's float.  Any line not
    finished as text is parsed back, which gives exactly the values the
    driver gives the list path (psycopg2 parses the same ``jsonb`` text),
    and is rendered by Python.  A timestamp Python cannot hold (a BC date,
    edited by hand) ends the export with an error, as it ends ``list``.
SQLite (:func:`sqlite_line_column`)
    ``json_object`` writes the row compactly and ``json()`` minifies the
    stored ``changes``/``metadata`` (which vutf stores compact already).  A
    row whose ids or timestamp are not in the form vutf stores (edited by
    hand) gets NULL and is rendered by Python from its entry.

The Python renderer applies one more rule, escaping terminal-unsafe
characters (``output.serialize``); it is a per-character rewrite that the
output layer applies to this text as well.
"""

from __future__ import annotations

import json
from typing import Any, Final, cast

from sqlalchemy import ColumnElement, Select, Table, literal_column, select
from sqlalchemy.types import Text

from vutf_cli.db.models import AuditLog
from vutf_cli.errors import InternalError

__all__ = [
    "finish_postgres_line",
    "postgres_lines_statement",
    "seq_of_line",
    "sqlite_line_column",
]

AUDIT: Final = cast(Table, AuditLog.__table__)

# -- PostgreSQL ---------------------------------------------------------------------------
# psycopg2 reads +-infinity as datetime.max/min, so `list` shows them so; any
# other time outside the years 1-9999 (a BC date) Python cannot hold: NULL,
# and such a row (edited by hand) ends the export (see below).
_PG_TIMESTAMP: Final = (
    "CASE WHEN audit_log.created_at = 'infinity' THEN '9999-12-31T23:59:59.999999Z' "
    "WHEN audit_log.created_at = '-infinity' THEN '0001-01-01T00:00:00.000000Z' "
    "WHEN audit_log.created_at >= '0001-01-01 00:00:00+00' "
    "AND audit_log.created_at < '10000-01-01 00:00:00+00' "
    "THEN to_char(audit_log.created_at AT TIME ZONE 'UTC', "
    '\'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\') END'
)
DECIMAL_MARK: Final = b"#"[0]
UNREADABLE_MARK: Final = b"!"[0]


def _pg_without_decimals(column: str) -> str:
    # Integers print alike in jsonb and Python.  The text test runs only for
    # the rare value that holds a number at all (jsonb never prints an
    # exponent, so a decimal always shows as digit.digit); a string such as
    # "1.2" next to an integer merely sends the row to Python.
    value = f"rendered.{column}"
    return (
        f"CASE WHEN {value} IS NULL THEN true "
        f"WHEN jsonb_path_exists({value}, 'strict $.** ? (@.type() == \"number\")') "
        f"THEN {value}::text !~ '[0-9][.][0-9]' ELSE true END"
    )


_PG_LINE: Final = (
    "CASE WHEN rendered.created_at IS NULL THEN '!' || rendered.seq "
    f"WHEN {_pg_without_decimals('changes')} AND {_pg_without_decimals('metadata')} "
    "THEN row_to_json(rendered)::text ELSE '#' || row_to_json(rendered)::text END"
)


def postgres_lines_statement(
    conditions: list[ColumnElement[bool]], *, after_seq: int, limit: int
) -> Select[Any]:
    """One text column: the JSON line of each matching row after ``after_seq``, in seq order.

    A line starting with ``#`` holds a decimal number: :func:`finish_postgres_line`
    leaves it to Python; ``!`` and a seq mark a row whose timestamp Python
    cannot hold.
    """
    columns = [
        literal_column(_PG_TIMESTAMP).label("created_at") if column.name == "created_at" else column
        for column in AUDIT.columns
    ]
    rendered = (
        select(*columns)
        .where(*conditions, AUDIT.c.seq > after_seq)
        .order_by(AUDIT.c.seq)
        .limit(limit)
        .subquery("rendered")
    )
    return select(literal_column(_PG_LINE, Text())).select_from(rendered)


def finish_postgres_line(line: bytes) -> bytes | dict[str, Any]:
    """A COPY row of :func:`postgres_lines_statement` as its final JSON line.

    Returns the line's bytes (newline-terminated, as COPY sent them), or,
    when the text cannot be finished exactly, the row parsed back into the
    JSON object that Python renders (see the module docstring).
    """
    if line[0] == DECIMAL_MARK:
        return cast(dict[str, Any], json.loads(line[1:]))
    if line[0] == UNREADABLE_MARK:
        seq = int(line[1:])
        raise InternalError(
            f"audit entry {seq}: created_at is outside the years 1 to 9999 "
            "(the row was edited outside vutf)",
            hint="`vutf audit verify` checks the log",
        )
    if b"\\" in line:
        return cast(dict[str, Any], json.loads(line))
    compact = line.replace(b', "', b',"').replace(b'": ', b'":')
    if b"[" in compact and b", " in compact:
        return cast(dict[str, Any], json.loads(line))
    return compact


def seq_of_line(line: bytes) -> int:
    """The seq of a rendered line (``"seq":`` is its second key)."""
    start = line.index(b'"seq":') + 6
    return int(line[start : line.index(b",", start)])


# -- SQLite -------------------------------------------------------------------------------
# Cheap look-alike tests of the forms vutf stores (they run on every row and
# cost ~1 s per million rows; exact GLOB patterns cost twice that): a hand
# edit that keeps the length and case (moved hyphens, a "+01" offset in a
# 26-character time) is exported as stored (see the README).
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

_SQLITE_LINE: Final = (
    f"CASE WHEN {_SQLITE_GUARDS} THEN json_object("
    "'id', audit_log.id, 'seq', audit_log.seq, "
    "'created_at', substr(audit_log.created_at, 1, 10) || 'T' "
    "|| substr(audit_log.created_at, 12) || 'Z', "
    "'actor', audit_log.actor, 'user_id', audit_log.user_id, 'action', audit_log.action, "
    "'resource_type', audit_log.resource_type, 'resource_id', audit_log.resource_id, "
    "'status', audit_log.status, "
    "'changes', json(audit_log.changes), 'metadata', json(audit_log.metadata), "
    "'error_message', audit_log.error_message, 'duration_ms', audit_log.duration_ms, "
    "'ip_address', audit_log.ip_address, 'user_agent', audit_log.user_agent, "
    "'prev_hash', audit_log.prev_hash, 'row_hash', audit_log.row_hash) END"
)


def sqlite_line_column() -> ColumnElement[Any]:
    """The SELECT column rendering an ``audit_log`` row as its JSON line (NULL: use Python)."""
    return literal_column(_SQLITE_LINE, Text()).label("line")
