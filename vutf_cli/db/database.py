"""Database: the engine, the retry policy and the circuit breaker of one process.

``Database.run(fn)`` is how services touch the database: ``fn`` receives an
open UnitOfWork and the whole transaction is retried on transient errors.  A
COMMIT whose outcome is unknown (the connection died while committing) is not
blindly repeated: before retrying, the request id the audit rows carry is
looked up, and if it is found the work already landed.
``Database.run_operation`` is the same retries and circuit breaker for an
operation that opens its own transaction (Alembic's); it is the only code
that drives the breaker.

``audit_metadata`` is what every audit row written through this Database
starts its metadata from (besides the request id); the services decide it
(``services.audit_trail.process_metadata``).  A Database built without it
writes only the request id there.

Library exceptions are translated into vutf errors here, at the boundary
between the data layer and everything above it; a failure of the storage
itself (a SQLite file that is not a database, corrupt, read-only, on a full
disk) is exit 7 naming the file.  A SQLite file that cannot be written (or
whose folder cannot) is opened read-only, so that reading and verifying a
read-only copy work and a write says why it cannot.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import quote

from sqlalchemy import Engine
from sqlalchemy.exc import (
    DatabaseError,
    DataError,
    DBAPIError,
    IntegrityError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm.exc import StaleDataError

from vutf_cli.db.breaker import CircuitBreaker, CircuitOpenError
from vutf_cli.db.engine import io_deadline, make_engine, parse_database_url, sqlite_path
from vutf_cli.db.resilience import (
    ErrorKind,
    classify,
    describe,
    explain_storage,
    storage_failure,
)
from vutf_cli.db.retry import RetryPolicy, run_with_retry
from vutf_cli.db.schema_version import HEAD_REVISION
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.errors import (
    Conflict,
    DatabaseUnavailable,
    Denied,
    IntegrityFailure,
    InternalError,
    InvalidInput,
    SchemaOutdated,
    StaleVersion,
    VutfError,
)
from vutf_cli.settings import ENV_ACTOR, Settings

if TYPE_CHECKING:
    from vutf_cli.security.passwords import Passwords

T = TypeVar("T")

APPEND_ONLY_SQLSTATE = "VU001"

# Consecutive failed connection attempts that open the circuit.
BREAKER_THRESHOLD = 5

# libpq refuses a connection option before reaching any server, and says so
# without a SQLSTATE: 'invalid sslmode value: "x"', 'invalid port number: "x"',
# 'invalid connection option "x"', 'invalid integer value "x" for connection
# option "y"', '... in connection info string', 'invalid URI query parameter'
# (psycopg2's own parsing of the DSN prefixes them with 'invalid dsn: ').
_BAD_CONNECTION_OPTION = re.compile(
    r"^(?:invalid dsn: )?invalid [\w ]*(?:value|number|option)\b"
    r"|in connection info string|uri query parameter"
)
# 3D000 (invalid_catalog_name): at connect time libpq gives no SQLSTATE, only
# 'FATAL:  database "x" does not exist' (possibly after 'connection to server
# at ... failed:').
_MISSING_DATABASE = re.compile(r'(?:^|fatal: +)database ".*" does not exist')

# Constraint names (from the naming convention) → what a person should read.
_CONSTRAINT_MESSAGES = {
    "uq_users_username_live": "a user with that username already exists",
    "uq_users_email_live": "a user with that email already exists",
    "uq_api_keys_user_id_name_live": "that user already has an API key with that name",
    "uq_api_keys_key_hash": "an API key with that digest already exists",
    "uq_audit_log_seq": "audit sequence number taken (concurrent writer)",
}


def storage_error(exc: BaseException, settings: Settings) -> DatabaseUnavailable | None:
    """Exit 7 naming the SQLite file (or the masked URL) when ``exc`` is a storage failure."""
    failure = storage_failure(exc)
    if failure is None:
        return None
    path = _sqlite_file(settings)
    if path is None:
        message, hint = explain_storage(failure, settings.masked_url, is_file=False)
        return DatabaseUnavailable(f"{message}: {describe(exc)}", hint=hint)
    # SQLite's own words ("file is not a database") would only repeat the message.
    message, hint = explain_storage(failure, str(path), is_file=True)
    return DatabaseUnavailable(message, hint=hint)


def _sqlite_file(settings: Settings) -> Path | None:
    url = parse_database_url(settings.database_url)
    return sqlite_path(url) if url.get_backend_name() == "sqlite" else None


def _read_only_url(settings: Settings) -> str | None:
    """A read-only URI for a SQLite file that cannot be written, or None to open it as usual.

    Writable is asked of the file and its folder (SQLite keeps -wal and -shm
    there).  When the folder cannot be written and there is no pending -wal
    file, nothing can change the file under us, so it is opened immutable:
    otherwise SQLite could not read a WAL database without creating -shm.
    """
    path = _sqlite_file(settings)
    if path is None or not path.is_file():
        return None
    folder_writable = os.access(path.parent, os.W_OK)
    if folder_writable and os.access(path, os.W_OK):
        return None
    wal = path.with_name(path.name + "-wal")
    immutable = not folder_writable and (not wal.exists() or wal.stat().st_size == 0)
    options = "mode=ro" + ("&immutable=1" if immutable else "")
    return f"sqlite:///file:{quote(str(path.absolute()))}?{options}&uri=true"


def translate_error(exc: BaseException, masked_url: str = "the database") -> VutfError | None:
    """The vutf error for a SQLAlchemy/driver exception, or None if it is not one."""
    if isinstance(exc, VutfError):
        return exc
    if isinstance(exc, StaleDataError):
        return StaleVersion(
            "the record was changed by someone else meanwhile; nothing was written",
            hint="re-read it and try again",
        )
    if not isinstance(exc, SQLAlchemyError):
        return None
    reason = describe(exc)
    pgcode = getattr(getattr(exc, "orig", None), "pgcode", None)
    if pgcode == APPEND_ONLY_SQLSTATE or "append-only" in reason:
        return IntegrityFailure(f"refused by the database: {reason}")
    if isinstance(exc, IntegrityError):
        for name, message in _CONSTRAINT_MESSAGES.items():
            if name in str(exc.orig):
                return Conflict(message)
        lowered = str(exc.orig).lower()
        if "users.username" in lowered or "lower(username)" in lowered:
            return Conflict(_CONSTRAINT_MESSAGES["uq_users_username_live"])
        if "users.email" in lowered or "lower(email)" in lowered:
            return Conflict(_CONSTRAINT_MESSAGES["uq_users_email_live"])
        if "api_keys.user_id, api_keys.name" in lowered:
            return Conflict(_CONSTRAINT_MESSAGES["uq_api_keys_user_id_name_live"])
        return Conflict(f"refused by a database constraint: {reason}")
    lowered = reason.lower()
    if pgcode in (None, "3D000") and _MISSING_DATABASE.search(lowered):
        return DatabaseUnavailable(
            f"cannot use the database at {masked_url}: {reason}",
            hint="check the database name; or create the database, then run `vutf db upgrade`",
        )
    from_libpq = hasattr(getattr(exc, "orig", None), "pgcode")  # psycopg2 errors carry one
    if from_libpq and pgcode is None and _BAD_CONNECTION_OPTION.search(lowered):
        return InvalidInput(
            f"invalid database URL {masked_url}: {reason}",
            hint="check the port and the ?options of the URL (see libpq's connection parameters)",
        )
    if isinstance(exc, DataError):
        return InvalidInput(f"the database refused a value: {reason}")
    if pgcode == "42501":
        return Denied(
            f"the database role may not do this: {reason}",
            hint="an administrator can run `vutf db grant-runtime ROLE`",
        )
    if pgcode == "57014":
        return DatabaseUnavailable(
            f"statement timed out: {reason}", hint="raise VUTF_STATEMENT_TIMEOUT (milliseconds)"
        )
    if isinstance(exc, OperationalError | DatabaseError | DBAPIError):
        return InternalError(f"database error: {reason}")
    return InternalError(f"database error: {reason}")


class _PasswordsOnFirstUse:
    """Stands in for the database's ``Passwords`` so that reading users never imports argon2."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def __getattr__(self, name: str) -> Any:
        return getattr(self._database.passwords, name)


class Database:
    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine | None = None,
        passwords: Passwords | None = None,
        breaker: CircuitBreaker | None = None,
        create_missing: bool | None = None,
        audit_metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """``create_missing``: whether a missing SQLite file may be created (default:
        only for the embedded default database; see :meth:`allow_creating`).
        ``audit_metadata``: what every audit row's metadata starts from."""
        self.settings = settings
        self.audit_metadata: Mapping[str, Any] = dict(audit_metadata or {})
        self._engine = engine
        self._owns_engine = engine is None
        self.create_missing = (
            settings.is_default_database if create_missing is None else create_missing
        )
        self._passwords = passwords
        # Guards building the engine and the Passwords on first use (threads).
        self._build_lock = threading.Lock()
        # The cool-down is one deadline (1 to 30 s): while the database is
        # down, a long-running command probes it about as often as a single
        # command would keep retrying.
        self.breaker = breaker or CircuitBreaker(
            failure_threshold=BREAKER_THRESHOLD,
            reset_timeout=min(max(settings.db_deadline, 1.0), 30.0),
        )
        self.policy = RetryPolicy(deadline=settings.db_deadline)
        self._schema_checked = False
        # True once this process has created the embedded default database's
        # schema (the command line says so, once, naming the file).
        self.created_default = False

    @property
    def engine(self) -> Engine:
        engine = self._engine
        if engine is not None:
            return engine
        # Built once however many threads make the first call together: a
        # second engine would be a second pool that nothing ever closes.
        with self._build_lock:
            return self._build_engine()

    def _build_engine(self) -> Engine:
        if self._engine is None:
            try:
                read_only = _read_only_url(self.settings)
                if read_only is not None:
                    # The engine's own settings only: messages keep naming the file.
                    self._engine = make_engine(
                        replace(self.settings, database_url=read_only), create_missing=False
                    )
                else:
                    self._engine = make_engine(self.settings, create_missing=self.create_missing)
            except OSError as exc:  # creating the SQLite file or its folder
                raise DatabaseUnavailable(
                    f"cannot create the database file {_sqlite_file(self.settings)}: "
                    f"{exc.strerror or exc}",
                    hint="make its folder writable, or choose another place "
                    "(VUTF_DATA_DIR, or --database-url)",
                ) from None
        return self._engine

    def allow_creating(self) -> None:
        """Let this Database create its SQLite file if missing (``vutf db upgrade``)."""
        if self.create_missing:
            return
        with self._build_lock:
            self.create_missing = True
            if self._owns_engine and self._engine is not None:
                self._engine.dispose()
                self._engine = None

    @property
    def missing_file(self) -> bool:
        """True for a SQLite file that does not exist and that this Database will not create."""
        if self.create_missing:
            return False
        url = parse_database_url(self.settings.database_url)
        path = sqlite_path(url) if url.get_backend_name() == "sqlite" else None
        return path is not None and not os.path.exists(path)

    @property
    def dialect(self) -> str:
        return str(self.engine.dialect.name)

    @property
    def passwords(self) -> Passwords:
        passwords = self._passwords
        if passwords is not None:
            return passwords
        with self._build_lock:
            if self._passwords is None:
                from vutf_cli.security.passwords import Passwords

                self._passwords = Passwords(
                    self.settings.argon2_profile, min_length=self.settings.min_password_length
                )
            return self._passwords

    def renew_locks_after_fork(self) -> None:
        """In a forked child: new locks for this Database, its circuit breaker and its
        Passwords (a lock held by another thread of the parent at the fork would never
        be released here)."""
        self._build_lock = threading.Lock()
        self.breaker.renew_lock_after_fork()
        if self._passwords is not None:
            self._passwords.renew_lock_after_fork()

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    def unit_of_work(self, *, read_only: bool = False, request_id: str | None = None) -> UnitOfWork:
        passwords = self._passwords
        if passwords is None:
            # Built (argon2 imported) when a password is first hashed or checked.
            passwords = cast("Passwords", _PasswordsOnFirstUse(self))
        return UnitOfWork(
            self.engine,
            self.settings,
            passwords=passwords,
            read_only=read_only,
            request_id=request_id,
            audit_metadata=self.audit_metadata,
        )

    def run(self, fn: Callable[[UnitOfWork], T], *, read_only: bool = False) -> T:
        """Run ``fn`` in one transaction, retrying the whole of it on transient errors.

        The one way services open a transaction.  Retries and the circuit
        breaker are those of :meth:`run_operation`; on top of them, a COMMIT
        whose outcome is unknown is checked (by the request id the audit rows
        carry) before the work is repeated, and library errors are translated
        into vutf errors.
        """
        request_id = str(uuid.uuid4())
        state: dict[str, object] = {"unknown_commit": False}

        def attempt() -> T:
            if state["unknown_commit"] and self._request_committed(request_id):
                # The previous attempt's COMMIT landed; its result is the answer.
                return state["result"]  # type: ignore[return-value]
            uow = self.unit_of_work(read_only=read_only, request_id=request_id)
            with uow:
                result = fn(uow)
                state["result"] = result
                try:
                    uow.commit()
                except SQLAlchemyError as exc:
                    if classify(exc) is ErrorKind.CONNECTION and not read_only:
                        state["unknown_commit"] = True
                    raise
            return result

        try:
            return self.run_operation(attempt)
        except DatabaseUnavailable as exc:
            if state["unknown_commit"]:
                raise DatabaseUnavailable(
                    exc.message,
                    hint="the connection was lost while committing and the database could "
                    "not be reached again: the change may or may not have been applied; "
                    "check (e.g. `vutf audit list`) before repeating it",
                ) from exc
            raise
        except SQLAlchemyError as exc:
            translated = self.translate(exc)
            if translated is None:
                raise
            raise translated from exc
        except UnicodeEncodeError:
            # Text that is not valid UTF-8 (undecodable argv or environment bytes,
            # as lone surrogates) cannot be sent to the database.
            raise self._not_utf8(read_only=read_only) from None
        except ValueError as exc:
            if "NUL (0x00)" in str(exc):  # psycopg2: PostgreSQL text cannot hold NUL
                raise InvalidInput(
                    "text with a NUL character cannot be stored or looked up"
                ) from None
            raise

    def _not_utf8(self, *, read_only: bool) -> InvalidInput:
        """What to say when text that is not UTF-8 reached a statement: in a write, the
        acting user when it is that (every audit row names it), else the request's text."""
        if not read_only:
            try:
                self.settings.actor.encode("utf-8")
            except UnicodeEncodeError:
                actor = self.settings.actor
                return InvalidInput(
                    f"the acting user {actor!r} is not valid UTF-8 text, so no audit row "
                    "can name it",
                    hint=f"name the acting user with --actor or {ENV_ACTOR} "
                    "(the default is $USER@host)",
                )
        return InvalidInput("text that is not valid UTF-8 cannot be stored or looked up")

    def run_operation(self, operation: Callable[[], T], *, idempotent: bool = True) -> T:
        """Call ``operation`` (a whole transaction) under the circuit breaker and the retry policy.

        The one place the breaker is driven.  It is asked once, before the
        operation: while it is open the call fails at once
        (DatabaseUnavailable) without touching the server.  Every failed
        connection attempt is counted on it, so the operation that meets an
        outage opens the circuit (at the latest when it gives up), but an
        operation already admitted keeps its retries (one command rides out a
        short restart).  A half-open trial, and an operation that is not
        ``idempotent`` (it could not tell whether a lost attempt committed),
        get a single attempt.

        :meth:`run` is this plus a unit of work; Alembic's operations, which
        open their own transaction, come here directly.  SQLAlchemy errors
        propagate untranslated.
        """
        breaker = self.breaker
        try:
            breaker.before_call()
        except CircuitOpenError as exc:
            raise DatabaseUnavailable(
                f"database unavailable at {self.settings.masked_url}: {exc.message}",
                hint=exc.hint,
            ) from None
        trial = breaker.state == "half_open"
        retries = idempotent and not trial
        policy = self.policy if retries else RetryPolicy(deadline=0.0)
        # Connecting never outlasts the deadline (a single attempt: one connect timeout).
        connect_budget = (
            self.policy.deadline
            if retries
            else min(self.settings.connect_timeout, self.settings.db_deadline)
        )

        def attempt() -> T:
            try:
                return operation()
            except BaseException as exc:
                if classify(exc) is ErrorKind.CONNECTION:
                    breaker.record_failure()
                raise

        try:
            with io_deadline(time.monotonic() + max(connect_budget, 0.0)):
                result = run_with_retry(attempt, policy=policy, target=self.settings.masked_url)
        except DatabaseUnavailable as exc:
            cause = exc.__cause__
            if cause is not None and classify(cause) is ErrorKind.CONNECTION:
                # The whole deadline went on connection failures: open now,
                # however few attempts the deadline allowed.
                breaker.trip()
            elif isinstance(cause, SQLAlchemyError):
                breaker.record_success()  # it answered: bad credentials, or busy
            else:
                breaker.release()
            raise
        except (VutfError, SQLAlchemyError):
            breaker.record_success()  # the server answered
            raise
        except BaseException:
            # Nothing said about the database's health (a bug, Ctrl-C, bad text).
            breaker.release()
            raise
        breaker.record_success()
        return result

    def translate(self, exc: BaseException) -> VutfError | None:
        """``exc`` as a vutf error: storage failures name the file; else :func:`translate_error`."""
        return storage_error(exc, self.settings) or translate_error(exc, self.settings.masked_url)

    def _request_committed(self, request_id: str) -> bool:
        """Whether an audit row carrying ``request_id`` exists (so the work landed)."""
        with self.unit_of_work(read_only=True) as uow:
            return uow.audit.exists_request(request_id)

    # -- schema --------------------------------------------------------------
    def ensure_schema(self) -> None:
        """Refuse to work on a schema that is not at head (exit 8).

        The embedded default SQLite database is created and migrated on first
        use; any other database is only ever migrated by ``vutf db upgrade``.
        Compares the ``alembic_version`` row with a constant, so ordinary
        commands at head never import Alembic; a revision this vutf does not
        know (a newer vutf migrated the database) is exit 8 saying so.
        """
        if self._schema_checked:
            return
        revision = self.run(lambda uow: uow.schema_revision(), read_only=True)
        if revision != HEAD_REVISION:
            from vutf_cli.db import migrations

            if revision is not None and not migrations.is_known_revision(revision):
                raise migrations.newer_schema_error(self.settings.masked_url, revision)
            if self.settings.is_default_database:
                try:
                    # None: no schema was there under the migration lock, so this
                    # process made it (another one may have won the race).
                    self.created_default = self.migrate("head") is None
                except SQLAlchemyError as exc:
                    raise (self.translate(exc) or InternalError(describe(exc))) from exc
            elif revision is None:
                raise SchemaOutdated(
                    f"the database at {self.settings.masked_url} has no vutf schema"
                )
            else:
                raise SchemaOutdated(
                    f"the database schema is at revision {revision}, "
                    f"this vutf needs {HEAD_REVISION}"
                )
        self._schema_checked = True

    def migrate(self, revision: str) -> str | None:
        """Upgrade to ``revision`` under the retries, serialized with every other migrator.

        Returns the revision found under the migration lock (see
        ``migrations.upgrade``): the processes that waited find the work done.
        """
        from vutf_cli.db import migrations

        try:
            return self.run_operation(
                lambda: migrations.upgrade(self.settings, self.engine, revision),
                idempotent=not migrations.is_relative_revision(revision),
            )
        except SQLAlchemyError as exc:
            translated = storage_error(exc, self.settings)
            if translated is None:
                raise
            raise translated from exc
