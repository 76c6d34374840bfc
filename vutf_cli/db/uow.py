"""UnitOfWork: one transaction, the repositories bound to it, commit or roll back as a whole.

Only this class opens, commits and closes sessions.  Repositories receive its
session and never commit.  Every audit row written through ``uow.audit``
starts its metadata from the unit of work's ``audit_metadata`` (what the
services recorded about the process and the invocation) plus its
``request_id``, which is how a retry after an unknown COMMIT outcome finds
out whether the write landed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from vutf_cli.db.engine import SQLITE_BEGIN_OPTION, bounded_waits
from vutf_cli.interrupts import interrupts_held

# Session.info key set inside UnitOfWork.flushing_once (read by BaseRepository.create).
DEFERRED_FLUSH: Final = "vutf.deferred_flush"

if TYPE_CHECKING:
    from vutf_cli.db.repositories.api_keys import ApiKeyRepository
    from vutf_cli.db.repositories.audit import AuditLogRepository
    from vutf_cli.db.repositories.users import UserRepository
    from vutf_cli.security.passwords import Passwords
    from vutf_cli.settings import Settings


class UnitOfWork:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        passwords: Passwords,
        read_only: bool = False,
        request_id: str | None = None,
        actor: str | None = None,
        audit_metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """``audit_metadata``: what every audit row's metadata starts from, besides the
        request id (built by the services; see ``services.audit_trail``)."""
        self.engine = engine
        self.settings = settings
        self.read_only = read_only
        self.request_id = request_id or str(uuid.uuid4())
        self.actor = actor or settings.actor
        self.passwords = passwords
        self.audit_metadata: Mapping[str, Any] = audit_metadata or {}
        self._connection: Connection | None = None
        self._session: Session | None = None
        self._resources = ExitStack()
        self.commit_started = False
        self.committed = False
        self._repos: dict[str, Any] = {}

    # -- lifecycle -----------------------------------------------------------
    def __enter__(self) -> UnitOfWork:
        if self.engine.dialect.name == "postgresql":
            # Every wait on the server is time-limited (see vutf_cli.db.engine).
            self._resources.enter_context(bounded_waits())
        try:
            connection = self.engine.connect()
        except BaseException:
            self._resources.close()
            raise
        if connection.dialect.name == "sqlite" and not self.read_only:
            # Take SQLite's write lock at BEGIN: writers queue (busy_timeout)
            # instead of failing at their first write.
            connection.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
        self._connection = connection
        self._session = Session(bind=connection, expire_on_commit=False, autoflush=True)
        self._session.begin()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with interrupts_held():
            self._end()

    def _end(self) -> None:
        try:
            if self._session is not None:
                if not self.committed:
                    self._session.rollback()
                self._session.close()
        finally:
            try:
                if self._connection is not None:
                    self._connection.close()
            finally:
                self._session = None
                self._connection = None
                self._resources.close()

    def commit(self) -> None:
        if self.read_only:
            with interrupts_held():
                self.session.rollback()
                self.committed = True
            return
        self.session.flush()
        self.commit_started = True
        with interrupts_held():
            self.session.commit()
            self.committed = True

    def rollback(self) -> None:
        self.session.rollback()

    @contextmanager
    def flushing_once(self) -> Iterator[None]:
        """Inserts made inside are flushed together when it ends, not one by one.

        For a writer that creates many rows it has already checked (``vutf
        apply``): :meth:`BaseRepository.create` gives each row its id and
        skips its own flush, and queries inside do not flush the pending
        rows either (``no_autoflush``): they see the rows flushed so far
        (the caller may ``session.flush()`` between kinds of rows).  The
        flush at the end inserts each table's rows in a few multi-row
        statements; a constraint a row breaks is raised there.
        """
        session = self.session
        session.info[DEFERRED_FLUSH] = True
        try:
            with session.no_autoflush:
                yield
            session.flush()
        finally:
            session.info.pop(DEFERRED_FLUSH, None)

    # -- access --------------------------------------------------------------
    @property
    def session(self) -> Session:
        if self._session is None:
            raise RuntimeError("the unit of work is not open (use `with uow:`)")
        return self._session

    @property
    def dialect(self) -> str:
        return str(self.engine.dialect.name)

    @property
    def users(self) -> UserRepository:
        if "users" not in self._repos:
            from vutf_cli.db.repositories.users import UserRepository

            self._repos["users"] = UserRepository(
                self.session, passwords=self.passwords, actor=self.actor
            )
        repo: UserRepository = self._repos["users"]
        return repo

    @property
    def keys(self) -> ApiKeyRepository:
        if "keys" not in self._repos:
            from vutf_cli.db.repositories.api_keys import ApiKeyRepository

            self._repos["keys"] = ApiKeyRepository(
                self.session, pepper=self.settings.key_pepper, actor=self.actor
            )
        repo: ApiKeyRepository = self._repos["keys"]
        return repo

    @property
    def audit(self) -> AuditLogRepository:
        if "audit" not in self._repos:
            from vutf_cli.db.repositories.audit import AuditLogRepository

            self._repos["audit"] = AuditLogRepository(
                self.session,
                hmac_key=self.settings.audit_key,
                default_metadata={**self.audit_metadata, "request_id": self.request_id},
                actor=self.actor,
            )
        repo: AuditLogRepository = self._repos["audit"]
        return repo

    def schema_revision(self) -> str | None:
        """The ``alembic_version`` row, or None when the table does not exist."""
        if not self._has_version_table():
            return None
        return self.session.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def _has_version_table(self) -> bool:
        connection = self.session.connection()
        if connection.dialect.name == "postgresql":
            # Resolved on the search_path exactly as the query above resolves
            # it (the inspector looks in the default schema only).
            found = connection.exec_driver_sql("SELECT to_regclass('alembic_version') IS NOT NULL")
            return bool(found.scalar())
        from sqlalchemy import inspect

        return inspect(connection).has_table("alembic_version")
