"""vutf's Python API: the stable, typed surface for services that build on the store.

One entry point, :class:`Store`, for a web service or a script that
authenticates users, verifies API keys and administers both::

    from vutf_cli.store import Denied, Store

    store = Store.from_url("postgresql://vutf@db/vutf", actor="api-gateway")
    try:
        who = store.verify_key(key, required_scope="targets:read", ip=client_ip)
    except Denied:
        ...  # 401

It is a thin facade over the services the command line uses
(``vutf_cli.services``): every call is one service call, so every write
appends exactly the audit rows the matching ``vutf`` command appends (with
``actor`` as the acting name and ``metadata`` without a command line), and
every refusal raises the same typed error (:mod:`vutf_cli.errors`, exported
here) with the same exit code a command would end with.  Results are frozen
views; no ORM object or session leaves a call.

Concurrency: a Store holds one engine (one connection pool) and the circuit
breaker; each call opens its own session and transaction, so one Store is
shared by all the threads of a process (a web server's worker pool;
``pool_size`` + ``max_overflow`` connections at most).  Several processes
each open their own Store (or inherit one across ``fork``: the child drops
the parent's pooled connections, never closing them under the parent);
the database serializes what must be serialized (the audit chain's append).

What is stable: the names exported by this module (``__all__``) and the
fields of the views they return.  Everything else under ``vutf_cli`` is
internal and may change.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Final

from vutf_cli.db.database import Database
from vutf_cli.domain.roles import EffectivePermissions, ScopeSource
from vutf_cli.domain.user_results import CreatedUser, DeletedUser, UserChange
from vutf_cli.domain.user_view import UserView
from vutf_cli.domain.views import ApiKeyView
from vutf_cli.errors import (
    Conflict,
    DatabaseUnavailable,
    Denied,
    IntegrityFailure,
    InvalidInput,
    NotFound,
    SchemaOutdated,
    StaleVersion,
    VutfError,
)
from vutf_cli.services import (
    key_queries,
    key_revocation,
    key_verification,
    permissions,
    user_passwords,
    user_queries,
    users,
)
from vutf_cli.services import keys as key_lifecycle
from vutf_cli.services.audit_trail import database_for
from vutf_cli.services.key_revocation import RevokeResult
from vutf_cli.services.key_verification import Verification
from vutf_cli.services.keys import ExpiryChange, IssuedKey, ScopeChange
from vutf_cli.settings import (
    Settings,
    check_secret,
    load_settings,
    resolve_database_url,
)

__all__ = [
    "ApiKeyView",
    "Conflict",
    "CreatedUser",
    "DatabaseUnavailable",
    "DeletedUser",
    "Denied",
    "EffectivePermissions",
    "ExpiryChange",
    "IntegrityFailure",
    "InvalidInput",
    "IssuedKey",
    "NotFound",
    "RevokeResult",
    "SchemaOutdated",
    "ScopeChange",
    "ScopeSource",
    "Settings",
    "StaleVersion",
    "Store",
    "UserChange",
    "UserView",
    "Verification",
    "VutfError",
]

_URL_SOURCE: Final = "Store.from_url"


class Store:
    """The identity and audit store: users, API keys, and their audit trail.

    Build one with :meth:`from_url` or :meth:`from_settings` and share it;
    :meth:`close` (or ``with``) releases its connections.  The schema must be
    at head (``vutf db upgrade``; SchemaOutdated otherwise), checked on first
    use.
    """

    def __init__(self, database: Database) -> None:
        self._db = database
        self._shares_engine = False
        # A forked child must not reuse the parent's pooled connections.
        _after_fork_in_child(self)

    # -- opening ---------------------------------------------------------------------
    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        actor: str,
        key_pepper: str | None = None,
        audit_key: str | None = None,
        argon2_profile: str = "production",
        pool_size: int = 5,
        max_overflow: int = 5,
    ) -> Store:
        """A store on ``url`` (``postgresql://…`` or ``sqlite:///…``) acting as ``actor``.

        Nothing of the environment or the config file is read: pass the key
        pepper and the audit key the deployment uses (``VUTF_KEY_PEPPER``,
        ``VUTF_AUDIT_KEY`` for the command line), or keys will not verify and
        the chain will not link.  Nothing connects until the first call.
        Each must be at least 32 characters (InvalidInput otherwise).
        """
        check_secret("key_pepper", key_pepper)
        check_secret("audit_key", audit_key)
        settings = Settings(
            database_url=resolve_database_url(url, _URL_SOURCE),
            actor=_checked_actor(actor),
            key_pepper=key_pepper,
            audit_key=audit_key,
            argon2_profile=argon2_profile,
            pool_size=pool_size,
            max_overflow=max_overflow,
        )
        return cls(database_for(settings))

    @classmethod
    def from_settings(cls, settings: Settings | None = None, *, actor: str | None = None) -> Store:
        """A store configured as the ``vutf`` command is: ``settings``, or by default
        the environment (``VUTF_DATABASE_URL``, ``VUTF_KEY_PEPPER``, …) and the config
        file, checked the same way (InvalidInput for a bad value)."""
        resolved = settings if settings is not None else load_settings()
        if actor is not None:
            resolved = resolved.with_overrides(actor=_checked_actor(actor))
        return cls(database_for(resolved))

    def acting_as(self, actor: str) -> Store:
        """This store with another actor in its audit rows, sharing its connection pool.

        For a service that acts for whoever is logged in: ``store.acting_as(
        admin.username).deactivate_user(...)``.  Closing it leaves the pool open.
        """
        db = self._db
        shared = Database(
            db.settings.with_overrides(actor=_checked_actor(actor)),
            engine=db.engine,
            passwords=db.passwords,
            breaker=db.breaker,
            audit_metadata=db.audit_metadata,
        )
        store = Store(shared)
        store._shares_engine = True
        return store

    @property
    def actor(self) -> str:
        """The name recorded as ``actor`` (and ``created_by``/``updated_by``) of every write."""
        return self._db.settings.actor

    def close(self) -> None:
        """Close the pooled connections (a store that shares a pool leaves it open)."""
        if not self._shares_engine:
            self._db.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _ready(self) -> Database:
        self._db.ensure_schema()  # once per store; SchemaOutdated unless at head
        return self._db

    def _forget_connections(self) -> None:
        # Locks another thread of the parent held at the fork would never be
        # released in the child (only the forking thread lives on there).
        self._db.renew_locks_after_fork()
        # Only an engine already built holds connections (building one here
        # could create a SQLite file in the child).
        engine = self._db._engine
        if engine is not None and not self._shares_engine:
            # close=False: the sockets belong to the parent, which keeps using them.
            engine.dispose(close=False)

    # -- authentication ---------------------------------------------------------------
    def authenticate(
        self,
        username_or_email: str,
        password: str,
        *,
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> UserView:
        """The user if the password is theirs and they may log in; Denied otherwise.

        One ``user.login`` audit row either way (``vutf users check-password``).
        Unknown, inactive, deleted and locked users get the message of a wrong
        password; the reason is in the audit row.
        """
        return user_passwords.check_password(
            self._ready(), username_or_email, password, ip_address=ip, user_agent=user_agent
        )

    def verify_key(
        self,
        key: str,
        *,
        required_scope: str | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
        record_usage: bool = False,
    ) -> Verification:
        """The key's owner and scopes if it may be used now; Denied with the reason otherwise.

        One ``api_key.use`` audit row either way (``vutf keys verify``), except
        for a malformed key, refused before any query.  ``record_usage`` also
        counts the use (``usage_count``, ``last_used_at``).
        """
        return key_verification.verify_key(
            self._db,  # checks the schema itself, after the key's format
            key,
            required_scope=required_scope,
            record_usage=record_usage,
            ip_address=ip,
            user_agent=user_agent,
        )

    # -- users --------------------------------------------------------------------------
    def create_user(
        self,
        username: str,
        email: str,
        *,
        password: str | None = None,
        generate_password: bool = False,
        full_name: str | None = None,
        is_superuser: bool = False,
        is_verified: bool = False,
        if_not_exists: bool = False,
    ) -> CreatedUser:
        """``vutf users create``: give ``password`` or ``generate_password=True`` (the
        generated one is in the result's ``password``, once)."""
        return users.create_user(
            self._ready(),
            username=username,
            email=email,
            password=password,
            generate=generate_password,
            full_name=full_name,
            is_superuser=is_superuser,
            is_verified=is_verified,
            if_not_exists=if_not_exists,
        )

    def user_permissions(self, user: str) -> EffectivePermissions:
        """What the live ``user`` may do now (``vutf users show --permissions``).

        The union of their live, unexpired roles' scopes (everything for a
        superuser), each with the roles that grant it; ``.grants(scope)``
        answers one question.  A key of theirs never carries more
        (:meth:`verify_key` narrows it to this at the instant it checks).
        """
        return permissions.user_permissions(self._ready(), user)

    def get_user(self, user: str) -> UserView:
        """``vutf users show``: by username, email or id, deleted users included."""
        return user_queries.show_user(self._ready(), user).user

    def list_users(
        self,
        *,
        active: bool | None = None,
        superuser: bool | None = None,
        search: str | None = None,
        deleted: str = "live",
        sort: str = "created_at",
        limit: int | None = None,
    ) -> Iterator[UserView]:
        """``vutf users list``: every matching user (or the first ``limit``), fetched
        page by page as the iterator is consumed (one transaction per page)."""
        return iter(
            user_queries.stream_users(
                self._ready(),
                active=active,
                superuser=superuser,
                search=search,
                deleted=deleted,
                sort=sort,
                limit=limit,
            )
        )

    def update_user(
        self,
        user: str,
        *,
        email: str | None = None,
        full_name: str | None = None,
        is_superuser: bool | None = None,
        expected_version: int | None = None,
    ) -> UserChange:
        """``vutf users update`` (StaleVersion if ``expected_version`` is not current)."""
        return users.update_user(
            self._ready(),
            user,
            email=email,
            full_name=full_name,
            is_superuser=is_superuser,
            expected_version=expected_version,
        )

    def activate_user(self, user: str) -> UserChange:
        return users.activate_user(self._ready(), user)

    def deactivate_user(self, user: str) -> UserChange:
        return users.deactivate_user(self._ready(), user)

    def delete_user(self, user: str, *, hard: bool = False) -> DeletedUser:
        """``vutf users delete``: soft (keys revoked), or ``hard`` (the row removed)."""
        return users.delete_user(self._ready(), user, hard=hard)

    def restore_user(self, user: str) -> UserChange:
        return users.restore_user(self._ready(), user)

    def set_password(
        self, user: str, password: str, *, expected_version: int | None = None
    ) -> UserView:
        """``vutf users set-password`` (the password policy applies: InvalidInput)."""
        return user_passwords.set_password(
            self._ready(), user, password, expected_version=expected_version
        )

    # -- API keys ---------------------------------------------------------------------------
    def create_key(
        self,
        user: str,
        name: str,
        *,
        scopes: Sequence[str] = (),
        expires_in: str | None = None,
        expires_at: str | None = None,
        no_expiry: bool = False,
        description: str | None = None,
    ) -> IssuedKey:
        """``vutf keys create``: the plaintext key is in the result, once, never stored."""
        return key_lifecycle.create_key(
            self._ready(),
            user=user,
            name=name,
            scopes=scopes,
            expires_in=expires_in,
            expires_at=expires_at,
            no_expiry=no_expiry,
            description=description,
        )

    def get_key(self, key: str) -> ApiKeyView:
        """``vutf keys show``: by key id or prefix (never the whole key)."""
        return key_queries.show_key(self._ready(), key)

    def list_keys(
        self, *, user: str | None = None, state: str = "active", limit: int | None = None
    ) -> Iterator[ApiKeyView]:
        """``vutf keys list``: ``state`` is active, expired, revoked or all."""
        return iter(key_queries.stream_keys(self._ready(), user=user, state=state, limit=limit))

    def revoke_keys(self, keys: Sequence[str] = (), *, user: str | None = None) -> RevokeResult:
        """``vutf keys revoke``: the keys named (id or prefix), or every key of ``user``."""
        return key_revocation.revoke_keys(self._ready(), keys, user=user)

    def rotate_key(
        self,
        key: str,
        *,
        grace: str | None = None,
        expires_in: str | None = None,
        expires_at: str | None = None,
        no_expiry: bool = False,
    ) -> IssuedKey:
        """``vutf keys rotate``: a new key (in the result, once); the old one ends now,
        or after ``grace`` (``"1h"``, ``"2d"``)."""
        return key_lifecycle.rotate_key(
            self._ready(),
            key,
            grace=grace,
            expires_in=expires_in,
            expires_at=expires_at,
            no_expiry=no_expiry,
        )

    def extend_key(
        self,
        key: str,
        *,
        expires_in: str | None = None,
        expires_at: str | None = None,
        no_expiry: bool = False,
    ) -> ExpiryChange:
        return key_lifecycle.extend_key(
            self._ready(), key, expires_in=expires_in, expires_at=expires_at, no_expiry=no_expiry
        )

    def set_scopes(self, key: str, scopes: Sequence[str]) -> ScopeChange:
        return key_lifecycle.set_scopes(self._ready(), key, scopes)


def _checked_actor(actor: str) -> str:
    if not isinstance(actor, str) or not actor.strip():
        raise InvalidInput("the store's actor must be a non-empty name")
    return actor.strip()


# -- fork safety ------------------------------------------------------------------------------
_STORES: weakref.WeakSet[Store] = weakref.WeakSet()


def _after_fork_in_child(store: Store) -> None:
    _STORES.add(store)


def _forget_inherited_connections() -> None:
    for store in list(_STORES):
        store._forget_connections()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_inherited_connections)
