"""Which database failures are transient: error classification (docs/architecture.md §4).

:func:`classify` sorts an exception into one :class:`ErrorKind`; only
``CONNECTION`` and ``CONTENTION`` are retried (by :mod:`vutf_cli.db.retry`,
re-running a whole transaction) and only ``CONNECTION`` counts against the
circuit breaker (:mod:`vutf_cli.db.breaker`).  :func:`describe` gives the
one-line reason that is safe to show.

:func:`storage_failure` names, among the permanent failures, those of the
database's storage rather than of the command: a file that is not a
database, corrupt, read-only, on a full disk, failing I/O, or that cannot
be opened (and the PostgreSQL equivalents).  Retrying cannot help them, and
they are the operator's to fix, so they are exit 7 with what to do, never an
internal error.

The module knows SQLAlchemy's exception wrappers but is driver-agnostic: the
SQLSTATE is read with ``getattr`` (``pgcode`` for psycopg2, ``sqlstate`` for
psycopg 3) and libpq's connect-time messages are matched as text, because
psycopg2 leaves ``pgcode`` empty for every error raised while connecting.
"""

from __future__ import annotations

import re
import sqlite3
from enum import Enum

from sqlalchemy import exc as sa_exc

__all__ = [
    "RETRYABLE",
    "ErrorKind",
    "StorageFailure",
    "classify",
    "describe",
    "explain_storage",
    "storage_failure",
]


class ErrorKind(Enum):
    """How a failure should be handled."""

    CONNECTION = "connection"  # transient: the server is unreachable or dropped us
    CONTENTION = "contention"  # transient: serialization failure, deadlock, SQLite busy
    CREDENTIALS = "credentials"  # the server answered "no": retrying cannot help
    PERMANENT = "permanent"  # everything else, re-raised untouched


# The kinds worth running the whole unit of work again for.
RETRYABLE = frozenset({ErrorKind.CONNECTION, ErrorKind.CONTENTION})

# SQLSTATEs (see the PostgreSQL "Error Codes" appendix).
_CONNECTION_STATES = frozenset(
    {
        "57P01",  # admin_shutdown (pg_terminate_backend, fast shutdown)
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up, in recovery)
        "53300",  # too_many_connections
    }
)
_CONTENTION_STATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected

# libpq reports connect-time failures without a SQLSTATE, so the message is
# all there is.  Checked (lower-cased) only for database errors without one.
_CREDENTIAL_PATTERNS = (
    re.compile(r"password authentication failed"),
    re.compile(r"\b(?:peer|ident|sspi|gss|cert|radius|ldap|pam) authentication failed"),
    re.compile(r'role ".*" does not exist'),
    re.compile(r"no pg_hba\.conf entry"),
    re.compile(r"no password supplied"),
)
_CONNECTION_MARKERS = (
    "could not connect",
    "connection refused",
    "server closed the connection unexpectedly",
    "timeout expired",
    "could not translate host name",  # DNS can fail transiently
    "ssl connection has been closed",
    "ssl connection closed",
    "ssl syscall error",
    "terminating connection",
    "could not receive data from server",
    "could not send data to server",
    "no connection to the server",
    "connection already closed",
    "connection reset by peer",
    "connection timed out",
    "network is unreachable",
    "no route to host",
    # Connect-time forms of 57P03 and 53300, which arrive without a pgcode.
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "the database system is not accepting connections",
    "too many clients already",
    "too many connections for role",
    "remaining connection slots are reserved",
)
_SQLITE_BUSY_MARKERS = ("database is locked", "database is busy", "database table is locked")


class StorageFailure(Enum):
    """What is wrong with the database's storage (see :func:`storage_failure`)."""

    NOT_A_DATABASE = "not_a_database"
    CORRUPT = "corrupt"
    READ_ONLY = "read_only"
    DISK_FULL = "disk_full"
    IO_ERROR = "io_error"
    CANNOT_OPEN = "cannot_open"


# SQLite's primary result codes (the low byte of an extended code).
_SQLITE_STORAGE_CODES = {
    26: StorageFailure.NOT_A_DATABASE,  # SQLITE_NOTADB
    11: StorageFailure.CORRUPT,  # SQLITE_CORRUPT
    8: StorageFailure.READ_ONLY,  # SQLITE_READONLY (file, folder or file system)
    13: StorageFailure.DISK_FULL,  # SQLITE_FULL
    10: StorageFailure.IO_ERROR,  # SQLITE_IOERR
    14: StorageFailure.CANNOT_OPEN,  # SQLITE_CANTOPEN
    3: StorageFailure.CANNOT_OPEN,  # SQLITE_PERM
}
# Their messages, for a driver that does not expose the code.
_SQLITE_STORAGE_MESSAGES = (
    ("file is not a database", StorageFailure.NOT_A_DATABASE),
    ("database disk image is malformed", StorageFailure.CORRUPT),
    ("attempt to write a readonly database", StorageFailure.READ_ONLY),
    ("database or disk is full", StorageFailure.DISK_FULL),
    ("disk i/o error", StorageFailure.IO_ERROR),
    ("unable to open database file", StorageFailure.CANNOT_OPEN),
)
_PG_STORAGE_STATES = {
    "53100": StorageFailure.DISK_FULL,  # disk_full
    "25006": StorageFailure.READ_ONLY,  # read_only_sql_transaction (a standby)
    "XX001": StorageFailure.CORRUPT,  # data_corrupted
    "XX002": StorageFailure.CORRUPT,  # index_corrupted
    "58030": StorageFailure.IO_ERROR,  # io_error
}

_MAX_REASON = 300


def _driver_error(exc: BaseException) -> BaseException:
    """The exception SQLAlchemy wrapped (a DB-API error, or e.g. a TypeError), or ``exc``."""
    # StatementError.__str__ appends the SQL (and parameters unless hidden).
    if isinstance(exc, sa_exc.StatementError) and isinstance(exc.orig, BaseException):
        return exc.orig
    return exc


def _sqlstate(err: BaseException) -> str | None:
    for attr in ("pgcode", "sqlstate"):
        value = getattr(err, attr, None)
        if isinstance(value, str) and value:
            return value.upper()
    return None


def _is_database_error(exc: BaseException, err: BaseException) -> bool:
    # psycopg2 errors always carry a (possibly None) ``pgcode`` attribute.
    return (
        isinstance(exc, sa_exc.DBAPIError)
        or isinstance(err, sqlite3.Error)
        or hasattr(err, "pgcode")
        or hasattr(err, "sqlstate")
    )


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return " ".join(line.split())
    return ""


def classify(exc: BaseException) -> ErrorKind:
    """Sort ``exc`` into the kind of failure it represents (see :class:`ErrorKind`)."""
    if isinstance(exc, sa_exc.DisconnectionError):
        return ErrorKind.CONNECTION
    err = _driver_error(exc)
    if not _is_database_error(exc, err):
        return ErrorKind.PERMANENT

    state = _sqlstate(err)
    if state is not None:
        if state.startswith("08") or state in _CONNECTION_STATES:
            return ErrorKind.CONNECTION
        if state in _CONTENTION_STATES:
            return ErrorKind.CONTENTION
        if state.startswith("28"):
            return ErrorKind.CREDENTIALS
        # 57014 (statement timeout), VU001 (audit trigger), 23xxx, 22xxx, 42xxx ...
        return ErrorKind.PERMANENT

    # SQLAlchemy's dialect already recognised a disconnect.
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return ErrorKind.CONNECTION

    if isinstance(err, sqlite3.Error):
        name = getattr(err, "sqlite_errorname", "") or ""
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return ErrorKind.CONTENTION

    message = str(err).lower()
    if any(marker in message for marker in _SQLITE_BUSY_MARKERS):
        return ErrorKind.CONTENTION
    # Credentials first: libpq prefixes them with 'connection to server ... failed'.
    if any(pattern.search(message) for pattern in _CREDENTIAL_PATTERNS):
        return ErrorKind.CREDENTIALS
    if any(marker in message for marker in _CONNECTION_MARKERS):
        return ErrorKind.CONNECTION
    return ErrorKind.PERMANENT


def storage_failure(exc: BaseException) -> StorageFailure | None:
    """What is wrong with the database's storage, if that is what ``exc`` reports.

    ``classify`` calls all of these PERMANENT (never retried); this says
    which, so that the message can name the file and what to do.
    """
    err = _driver_error(exc)
    if isinstance(err, sqlite3.Error):
        code = getattr(err, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF in _SQLITE_STORAGE_CODES:
            return _SQLITE_STORAGE_CODES[code & 0xFF]
        message = str(err).lower()
        for marker, failure in _SQLITE_STORAGE_MESSAGES:
            if marker in message:
                return failure
        return None
    state = _sqlstate(err)
    return _PG_STORAGE_STATES.get(state) if state is not None else None


def describe(exc: BaseException) -> str:
    """A one-line reason for ``exc`` that is safe to show.

    Only the driver's own message is used (never ``str()`` of a SQLAlchemy
    wrapper, which appends the SQL and possibly its parameters), cut to its
    first line so DETAIL lines such as ``Key (email)=(...)`` are dropped.
    """
    err = _driver_error(exc)
    reason = _first_line(str(err))
    state = _sqlstate(err)
    if state is not None and state.startswith("22"):
        # Data exceptions quote the offending input value, which may be a secret.
        reason = re.sub(r'"[^"]*"', '"…"', reason)
    if not reason:
        reason = type(err).__name__
    if len(reason) > _MAX_REASON:
        reason = reason[: _MAX_REASON - 1] + "…"
    return reason


_WAL_FILES = "SQLite also writes FILE-wal and FILE-shm beside it"


def explain_storage(failure: StorageFailure, where: str, *, is_file: bool) -> tuple[str, str]:
    """``(message, hint)`` for a storage failure of ``where`` (a SQLite file, or a masked URL)."""
    if not is_file:
        server = f"the database at {where}"
        return {
            StorageFailure.DISK_FULL: (
                f"{server} is out of disk space",
                "free space on the database server; nothing was written",
            ),
            StorageFailure.READ_ONLY: (
                f"{server} is read-only (a standby, or default_transaction_read_only)",
                "connect to the primary server to change anything",
            ),
            StorageFailure.CORRUPT: (
                f"{server} reports corrupt data",
                "ask its administrator to check the server; restore from a backup",
            ),
        }.get(
            failure, (f"{server} reports an I/O error", "ask its administrator to check the server")
        )
    return {
        StorageFailure.NOT_A_DATABASE: (
            f"{where} is not a SQLite database",
            "check the path, or restore the file from a backup",
        ),
        StorageFailure.CORRUPT: (
            f"the database file {where} is corrupt",
            "restore it from a backup (`sqlite3 FILE .recover` may salvage its rows)",
        ),
        StorageFailure.READ_ONLY: (
            f"the database file {where} is read-only",
            f"make the file and its folder writable ({_WAL_FILES}), or work on a writable copy",
        ),
        StorageFailure.DISK_FULL: (
            f"no space left on the disk of the database file {where}",
            "free disk space, then run the command again; nothing was written",
        ),
        StorageFailure.IO_ERROR: (
            f"disk I/O error on the database file {where}",
            "check the disk and its free space, then run the command again",
        ),
        StorageFailure.CANNOT_OPEN: (
            f"cannot open the database file {where}",
            f"check that the file and its folder exist and may be read and written ({_WAL_FILES})",
        ),
    }[failure]
