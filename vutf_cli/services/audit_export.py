"""`vutf audit export`: every matching entry, ascending, from one read-only snapshot.

An export runs in ONE read-only transaction (PostgreSQL: ``REPEATABLE
READ``, so every batch sees the same snapshot; SQLite: a WAL read
transaction, a snapshot too), in keyset batches of ``db.audit_sql``'s
statements, so memory stays constant whatever the row count.

:func:`open_export` gives entries (for csv and the other formats).
:func:`open_json_lines_export` is ``-o jsonl``: the lines are rendered by the
database (PostgreSQL ``COPY`` of ``row_to_json``, SQLite ``json_object``),
byte for byte what ``audit list -o jsonl`` prints; PostgreSQL's lines are
finished as they arrive (``services.audit_export_lines``), and the few lines
that cannot be finished exactly are rendered by Python.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, cast

from sqlalchemy import Select, select, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from vutf_cli.db.audit_sql import (
    AUDIT,
    filter_conditions,
    postgres_lines_statement,
    sqlite_lines_statement,
)
from vutf_cli.db.copy_out import copy_rows
from vutf_cli.db.database import Database, translate_error
from vutf_cli.db.resilience import ErrorKind, classify, describe
from vutf_cli.db.types import read_stored_json
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.views import AuditEntry
from vutf_cli.errors import DatabaseUnavailable, InvalidInput, VutfError
from vutf_cli.services.audit import (
    AuditQuery,
    ResolvedFilters,
    entry_from_row,
    fetch_entries,
    resolve_filters,
)
from vutf_cli.services.audit_export_lines import (
    any_unreadable_number,
    finish_postgres_line,
    holds_unreadable_number,
    seq_of_line,
)

__all__ = [
    "EXPORT_BATCH",
    "POSTGRES_COPY_BATCH",
    "SQLITE_LINES_BATCH",
    "ExportStream",
    "JsonLinePart",
    "JsonLinesExport",
    "open_export",
    "open_json_lines_export",
]

EXPORT_BATCH: Final = 1000


@dataclass(frozen=True, slots=True)
class ExportStream:
    """Entries in ascending seq, read lazily from one snapshot.

    ``head_seq`` is the last seq in the snapshot (0 when empty): how far the
    walk goes, for a progress bar that advances by seq.
    """

    entries: Iterator[AuditEntry]
    head_seq: int


def _unavailable(db: Database, exc: SQLAlchemyError) -> VutfError:
    if classify(exc) is ErrorKind.CONNECTION:
        return DatabaseUnavailable(
            f"database unavailable at {db.settings.masked_url}: {describe(exc)}"
        )
    translated = translate_error(exc)
    return translated if translated is not None else DatabaseUnavailable(describe(exc))


def _begin_snapshot(uow: UnitOfWork) -> None:
    if uow.dialect == "postgresql":
        # Must be the transaction's first statement: from here on every batch
        # reads the same snapshot, whatever is appended meanwhile.
        uow.session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))


@contextmanager
def _export_snapshot(
    db: Database, query: AuditQuery
) -> Iterator[tuple[UnitOfWork, ResolvedFilters, int]]:
    """The read-only snapshot an export reads: its unit of work, filters and head seq.

    Database errors become vutf errors (a lost connection:
    DatabaseUnavailable).  An export is not retried half-way: what was
    written would be written twice.
    """
    try:
        with db.unit_of_work(read_only=True) as uow:
            _begin_snapshot(uow)
            filters = resolve_filters(uow, query)
            found = uow.audit.head()
            yield uow, filters, 0 if found is None else found[0]
            uow.commit()
    except SQLAlchemyError as exc:
        raise _unavailable(db, exc) from exc


@contextmanager
def open_export(
    db: Database, query: AuditQuery, *, batch_size: int = EXPORT_BATCH
) -> Iterator[ExportStream]:
    """Stream every matching entry, ascending, from one read-only snapshot.

    The transaction stays open until the ``with`` block ends; consume
    ``entries`` inside it.
    """
    if batch_size < 1:
        raise InvalidInput("the batch size must be at least 1")
    with _export_snapshot(db, query) as (uow, filters, head_seq):

        def entries() -> Iterator[AuditEntry]:
            after_seq: int | None = None
            while True:
                batch = fetch_entries(
                    uow, filters, descending=False, after_seq=after_seq, limit=batch_size
                )
                yield from batch
                if len(batch) < batch_size:
                    return
                after_seq = batch[-1].seq

        yield ExportStream(entries(), head_seq)


JsonLinePart = bytes | AuditEntry | dict[str, Any]
"""What a JSON-lines export hands its writer: finished text (UTF-8 bytes of one
or more lines, each newline-terminated), or one entry to render like ``list``
does (an AuditEntry, or the JSON object of one)."""


@dataclass(frozen=True, slots=True)
class JsonLinesExport:
    """A started ``-o jsonl`` export (see :func:`open_json_lines_export`)."""

    uow: UnitOfWork
    filters: ResolvedFilters
    head_seq: int
    batch_size: int

    def write(self, emit: Callable[[JsonLinePart], None], advance: Callable[[int], None]) -> int:
        """Send every matching row to ``emit``, in seq order; return how many.

        ``advance(seqs)`` is called as the walk goes forward (for a progress bar).
        """
        if self.uow.dialect == "postgresql":
            return _copy_json_lines(self, emit, advance)
        return _fetch_json_lines(self, emit, advance)


# Rows per statement of a JSON-lines export; the text of a batch is held in
# memory (under 1 KiB a row) until it is written.
POSTGRES_COPY_BATCH: Final = 10_000
SQLITE_LINES_BATCH: Final = 5000


@contextmanager
def open_json_lines_export(
    db: Database, query: AuditQuery, *, batch_size: int | None = None
) -> Iterator[JsonLinesExport]:
    """:func:`open_export` for ``-o jsonl``, with the rows rendered by the database.

    The text is byte for byte what rendering the same entries in Python gives
    (``vutf_cli.db.audit_sql`` says how, and which rows it leaves to Python).
    Call ``write`` inside the ``with`` block.
    """
    if batch_size is not None and batch_size < 1:
        raise InvalidInput("the batch size must be at least 1")
    with _export_snapshot(db, query) as (uow, filters, head_seq):
        default = POSTGRES_COPY_BATCH if uow.dialect == "postgresql" else SQLITE_LINES_BATCH
        yield JsonLinesExport(uow, filters, head_seq, batch_size or default)


def _copy_json_lines(
    export: JsonLinesExport, emit: Callable[[JsonLinePart], None], advance: Callable[[int], None]
) -> int:
    conditions = filter_conditions(export.filters, "postgresql")
    connection = export.uow.session.connection()
    count = 0
    after_seq = 0
    while True:
        statement = postgres_lines_statement(
            conditions, after_seq=after_seq, limit=export.batch_size
        )
        # The rows are finished while the server renders the next ones (no
        # per-row work is left to the server), but written only once the COPY
        # is over: a slow reader (| less) must not hold a statement open
        # (statement timeout), nor look like a stalled server to copy_rows.
        finished: list[JsonLinePart] = []
        rows, last = copy_rows(connection, statement, _finishing_into(finished))
        _emit_joined(finished, emit)
        count += rows
        if last is None or rows < export.batch_size:
            advance(export.head_seq - after_seq)
            return count
        reached = seq_of_line(last)
        advance(reached - after_seq)
        after_seq = reached


def _finishing_into(finished: list[JsonLinePart]) -> Callable[[bytes], None]:
    def finish(line: bytes) -> None:
        finished.append(finish_postgres_line(line))

    return finish


def _emit_joined(parts: list[JsonLinePart], emit: Callable[[JsonLinePart], None]) -> None:
    """Emit ``parts`` in order, each run of finished text as one bytes."""
    if not parts:
        return
    try:
        text = b"".join(cast(list[bytes], parts))  # the common case: every line finished
    except TypeError:  # a part for Python to render
        pass
    else:
        emit(text)
        return
    run: list[bytes] = []
    for part in parts:
        if type(part) is bytes:
            run.append(part)
            continue
        if run:
            emit(b"".join(run))
            run = []
        emit(part)
    if run:
        emit(b"".join(run))


def _fetch_json_lines(
    export: JsonLinesExport, emit: Callable[[JsonLinePart], None], advance: Callable[[int], None]
) -> int:
    uow = export.uow
    conditions = filter_conditions(export.filters, uow.dialect)
    count = 0
    after_seq = 0
    while True:
        statement = sqlite_lines_statement(conditions, after_seq=after_seq, limit=export.batch_size)
        rows = _sqlite_lines(uow, statement)
        if rows is None or _any_undecodable(rows):
            # SQLite's json() refuses a malformed value, or a text is not UTF-8
            # (the file was edited by hand): this batch goes the Python way,
            # which reports it as `audit list` does.
            entries = fetch_entries(
                uow, export.filters, descending=False, after_seq=after_seq, limit=export.batch_size
            )
            rows = [(entry.seq, None) for entry in entries]
            unrendered = {entry.seq: entry for entry in entries}
        else:
            unrendered = _entries_of_unrendered(uow, rows)
        if rows:
            _emit_sqlite_lines(rows, unrendered, emit)
            count += len(rows)
        if len(rows) < export.batch_size:
            advance(export.head_seq - after_seq)
            return count
        reached = rows[-1][0]
        advance(reached - after_seq)
        after_seq = reached


def _sqlite_lines(uow: UnitOfWork, statement: Select[Any]) -> list[tuple[int, bytes | None]] | None:
    """The ``(seq, line)`` rows of ``statement``, or None when SQLite could not render them."""
    connection = uow.session.connection()
    raw: Any = connection.connection.dbapi_connection
    # Lines as UTF-8 bytes, as they are written: no decoding and re-encoding.
    raw.text_factory = bytes
    try:
        result = connection.execute(statement)
        # Straight from the driver's cursor: Row objects would cost more than
        # the rendering saves.
        rows: list[tuple[int, bytes | None]] = list(result.cursor.fetchall())
        result.close()
    except OperationalError:
        return None
    finally:
        raw.text_factory = str
    return rows


def _any_undecodable(rows: list[tuple[int, bytes | None]]) -> bool:
    """Whether a line is not UTF-8 (SQLite stores whatever bytes it is given)."""
    text = b"".join([line for _seq, line in rows if line is not None])
    if text.isascii():  # nearly always: a C loop, no decoding
        return False
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _emit_sqlite_lines(
    rows: list[tuple[int, bytes | None]],
    unrendered: dict[int, AuditEntry],
    emit: Callable[[JsonLinePart], None],
) -> None:
    lines = [line for _seq, line in rows]
    if None not in lines:
        finished = cast(list[bytes], lines)
        text = b"\n".join([*finished, b""])  # with the last newline
        if b"\\" not in text and not any_unreadable_number(finished):
            # The common case: the whole batch as one text.
            emit(text)
            return
    for seq, line in rows:
        if line is None:
            emit(unrendered[seq])
        elif b"\\" in line or holds_unreadable_number(line):
            # An escape sequence is kept as stored by json(); parsed, the line
            # gives the values Python's reading of the stored text gives (or
            # fails as list fails).
            emit(cast(dict[str, Any], read_stored_json(line.decode("utf-8"))))
        else:
            emit(line + b"\n")


def _entries_of_unrendered(
    uow: UnitOfWork, rows: list[tuple[int, bytes | None]]
) -> dict[int, AuditEntry]:
    seqs = [seq for seq, line in rows if line is None]
    if not seqs:
        return {}
    found = uow.session.execute(select(AUDIT).where(AUDIT.c.seq.in_(seqs)))
    return {entry.seq: entry for entry in map(entry_from_row, found)}
