"""Many rows into one table in one statement: ``COPY ... FROM STDIN`` or an executemany.

:func:`copy_in` is PostgreSQL's (text format); :func:`insert_many` is one
driver-level executemany, SQLite's.

Why COPY: the server parses one stream of rows, where a multi-row INSERT
has every value adapted and quoted one by one, or a JSON parameter unpacked
by a set-returning function.  It runs inside the connection's current
transaction, so it commits or rolls back with everything else the unit of
work wrote.  Row triggers fire for every row, in order (a table with BEFORE
ROW triggers is copied one row at a time), so the audit log's chain trigger
checks each row just as it checks an INSERT.

The COPY runs through :func:`vutf_cli.db.copy_session.run_copy`, as
``db.copy_out``'s does (the wait callback lifted, a watchdog for stalls and
Ctrl-C).  A server error (a unique index, the chain trigger, an
over-long value) ends the COPY normally and is raised as the SQLAlchemy
error of its class, so ``Database.run`` maps it as it maps an INSERT's; only
a COPY cut off in the middle invalidates the connection.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from sqlalchemy import Connection, Table

__all__ = ["NULL", "copy_in", "copy_text", "insert_many"]

# The text format's NULL, and the characters its fields must escape.
NULL: Final = "\\N"
_ESCAPES: Final = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(value: str | None) -> str:
    """``value`` as one field of COPY's text format (None: NULL)."""
    if value is None:
        return NULL
    # Four scans in C cost less than one translate of a value that needs none.
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_ESCAPES)
    return value


def copy_in(
    connection: Connection, table: str, columns: Sequence[str], lines: Iterable[str]
) -> None:
    """``COPY table (columns) FROM STDIN`` of ``lines`` (each a row: fields joined by tabs).

    Each line's fields must already be spelled with :func:`copy_text` (or be
    text that needs no escaping: digits, ``t``/``f``, hex).  ``table`` and
    ``columns`` are vutf's own identifiers, never input.
    """
    # Here, not at the top: the repositories import this module for copy_text,
    # and a short command needs none of COPY's machinery.
    from vutf_cli.db.copy_session import CopyProgress, client_codec, run_copy

    raw: Any = connection.connection.dbapi_connection
    try:
        payload = ("\n".join(lines) + "\n").encode(client_codec(raw))
    except UnicodeEncodeError:
        from vutf_cli.errors import InvalidInput

        raise InvalidInput("text must be valid Unicode (lone surrogate found)") from None
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    run_copy(connection, statement, io.BytesIO(payload), CopyProgress(), invalidate_on_error=False)


def insert_many(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    as_is: frozenset[str] = frozenset(),
) -> None:
    """``INSERT INTO table (columns) VALUES (...)`` of every row in ONE driver executemany.

    Each value goes through its column type's bind processor (what
    SQLAlchemy's own executemany applies), except the ``as_is`` columns,
    whose values are already in stored form (e.g. JSON text); what is left
    out is SQLAlchemy's per-row parameter dictionaries.  ``table`` and
    ``columns`` are vutf's own, never input.
    """
    dialect = connection.dialect
    processors: list[Callable[[Any], Any] | None] = [
        None if name in as_is else table.c[name].type.bind_processor(dialect) for name in columns
    ]
    marks = ", ".join(["?" if dialect.paramstyle == "qmark" else "%s"] * len(columns))
    statement = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})"
    # Column by column: a column without a processor (text, integers) costs
    # nothing per value; the others are one map() each.
    values = list(zip(*rows, strict=True)) if rows else []
    if not values:
        return
    processed = [
        column if processor is None else list(map(processor, column))
        for column, processor in zip(values, processors, strict=True)
    ]
    connection.exec_driver_sql(statement, list(zip(*processed, strict=True)))
