"""Stream a SELECT's rows from PostgreSQL with ``COPY (...) TO STDOUT``.

Why COPY: the server sends rows as fast as it makes them while this process
works on the ones already received, so a long export costs about the slower
of the two instead of their sum.  A cursor fetch alternates between them.

COPY takes no bind parameters, so the statement is compiled by SQLAlchemy
(bind processors applied) and its values are inlined by psycopg2's own
quoting (``cursor.mogrify``).  The COPY itself runs through
:func:`vutf_cli.db.copy_session.run_copy` (the wait callback lifted, a
watchdog for stalls and Ctrl-C); one that ends abnormally leaves the
connection unusable, so it is invalidated.

The sink runs while the COPY is open and should be quick (callers buffer
and write afterwards: a slow reader must not keep a statement open).
Rows are written in CSV format with quote and delimiter characters that
never appear unescaped in JSON text (``\\x01``, ``\\x02``), so a one-column
text row arrives exactly as the server rendered it, newline-terminated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from sqlalchemy import Connection, Select

from vutf_cli.db.copy_session import CopyProgress, client_codec, run_copy

__all__ = ["copy_rows", "inline_statement"]

_COPY_OPTIONS: Final = "FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02'"


def inline_statement(connection: Connection, statement: Select[Any]) -> str:
    """``statement`` as SQL text with its parameters inlined (for COPY, which takes none)."""
    dialect = connection.dialect
    compiled = statement.compile(dialect=dialect)
    params = compiled.construct_params()
    for name, bind in compiled.binds.items():
        processor = bind.type.bind_processor(dialect)
        if processor is not None and name in params:
            params[name] = processor(params[name])
    raw: Any = connection.connection.dbapi_connection
    cursor = raw.cursor()
    try:
        inlined: bytes = cursor.mogrify(compiled.string, params)
    finally:
        cursor.close()
    return inlined.decode(client_codec(raw))  # mogrify encodes in the client encoding


class _Writer:
    """The file psycopg2 writes each COPY row to (one ``write`` per row)."""

    __slots__ = ("last", "progress", "sink")

    def __init__(self, sink: Callable[[bytes], None], progress: CopyProgress) -> None:
        self.sink = sink
        self.progress = progress
        self.last: bytes | None = None

    def write(self, row: bytes) -> None:
        self.progress.rows += 1
        self.last = row
        self.sink(row)


def _utf8(raw: Any, sink: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """``sink`` fed UTF-8 whatever the connection's client_encoding (COPY sends that)."""
    codec = client_codec(raw)
    if codec.replace("-", "").replace("_", "").lower() == "utf8":
        return sink
    return lambda row: sink(row.decode(codec).encode("utf-8"))


def copy_rows(
    connection: Connection, statement: Select[Any], sink: Callable[[bytes], None]
) -> tuple[int, bytes | None]:
    """Send each row of a one-column ``statement`` to ``sink``; return the count and the last row.

    Runs inside the connection's current transaction (so it reads its
    snapshot); ``sink`` runs while the COPY is open, so it must not use the
    connection.  A driver error is raised as the SQLAlchemy error of its class
    (as a statement run by SQLAlchemy raises it); a stall as
    ``OperationalError``; Ctrl-C as KeyboardInterrupt.  When the COPY does not
    end normally the connection is invalidated (closed): the COPY cannot be
    resumed, and the transaction's rollback must not be sent into it.
    """
    raw: Any = connection.connection.dbapi_connection
    copy = f"COPY ({inline_statement(connection, statement)}) TO STDOUT WITH ({_COPY_OPTIONS})"
    progress = CopyProgress()
    writer = _Writer(_utf8(raw, sink), progress)
    run_copy(connection, copy, writer, progress, invalidate_on_error=True)
    return progress.rows, writer.last
