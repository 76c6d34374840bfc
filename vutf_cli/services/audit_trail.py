"""Mutations and their audit rows: what goes into a row is decided here.

Every mutating service runs through :func:`mutate`: the change and its
``success`` audit row are written by ``fn`` in one transaction (both commit or
neither).  When the mutation is refused (conflict, denied, not found) a
``failure`` row is written in a transaction of its own, so refusals are on
the record even though nothing else changed.

Services write audit rows through :func:`append` and :func:`append_many`,
never through the repository directly: they drop secrets from ``changes``
and ``metadata`` (:func:`scrub_secrets`) and then hand the rows to the
repository, which checks, stores and hashes them (docs/architecture.md §3.2).
What every row's metadata starts from is :func:`process_metadata`: the host,
the OS user and the vutf version, decided once per process, and the command
path and option names of the :class:`~vutf_cli.domain.invocation.Invocation`
(never a value given on the command line).
"""

from __future__ import annotations

import contextlib
import getpass
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final, TypeVar

from vutf_cli import __version__
from vutf_cli.db.database import Database
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.errors import Conflict, Denied, NotFound, VutfError

if TYPE_CHECKING:
    from vutf_cli.db.models import AuditLog
    from vutf_cli.domain.invocation import Invocation
    from vutf_cli.settings import Settings

__all__ = [
    "REFUSALS",
    "Database",
    "append",
    "append_many",
    "database_for",
    "elapsed_ms",
    "mutate",
    "process_metadata",
    "record_failure",
    "scrub_secrets",
]

T = TypeVar("T")

REFUSALS: tuple[type[VutfError], ...] = (Conflict, Denied, NotFound)

_SECRET_KEY_PARTS: Final = ("password", "secret", "token", "key_hash")


# -- what every row's metadata starts from ------------------------------------------------
@lru_cache(maxsize=1)
def _host_and_user() -> tuple[str, str]:
    try:
        os_user = getpass.getuser()
    except (KeyError, OSError):
        os_user = "unknown"
    return socket.gethostname(), os_user


def process_metadata(invocation: Invocation | None = None) -> dict[str, Any]:
    """What every audit row of this process starts its metadata from.

    ``host``, ``os_user`` and ``vutf_version``, plus the ``command`` and
    ``options`` of ``invocation`` (absent without one: a library caller).
    The unit of work adds its ``request_id``.
    """
    host, os_user = _host_and_user()
    described = {} if invocation is None else invocation.as_metadata()
    return {"host": host, "os_user": os_user, "vutf_version": __version__, **described}


def database_for(settings: Settings, invocation: Invocation | None = None) -> Database:
    """The Database the services work on, its audit rows starting from :func:`process_metadata`.

    The command line builds one per command (``AppContext.database``); it
    builds no engine and opens no connection until it is first used.
    """
    return Database(settings, audit_metadata=process_metadata(invocation))


# -- secrets ---------------------------------------------------------------------------------
@lru_cache(maxsize=4096)
def _is_secret_key(name: str) -> bool:
    # Cached: the same few keys come back in every row of a bulk append.
    lowered = name.lower()
    return lowered == "key" or any(part in lowered for part in _SECRET_KEY_PARTS)


def scrub_secrets(value: Any) -> Any:
    """``value`` without any mapping entry whose key names a secret, at any depth.

    A key is a secret's when, lower-cased, it contains ``password``,
    ``secret``, ``token`` or ``key_hash``, or is exactly ``key``.  Tuples
    become lists (as they are stored); anything else is returned as it is.
    """
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value  # the commonest leaves first
    if isinstance(value, Mapping):
        return {
            key: scrub_secrets(item)
            for key, item in value.items()
            if not (isinstance(key, str) and _is_secret_key(key))
        }
    if isinstance(value, list | tuple):
        return [scrub_secrets(item) for item in value]
    return value


# -- writing rows ----------------------------------------------------------------------------
def append(
    uow: UnitOfWork,
    *,
    changes: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    **fields: Any,
) -> AuditLog:
    """Append one audit row in ``uow`` (flushed, not committed), secrets dropped.

    ``fields`` are the other keyword arguments of the repository's ``append``
    (action, resource_type, resource_id, status, user_id, …).
    """
    return uow.audit.append(
        changes=None if changes is None else scrub_secrets(changes),
        metadata=None if metadata is None else scrub_secrets(metadata),
        **fields,
    )


def append_many(uow: UnitOfWork, entries: Iterable[Mapping[str, Any]]) -> range:
    """Append ``entries`` (each the keyword arguments of :func:`append`) in one bulk INSERT.

    Secrets are dropped as :func:`append` drops them; returns the seqs written.
    """
    return uow.audit.append_many([_without_secrets(entry) for entry in entries])


def _without_secrets(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    scrubbed = dict(entry)
    for name in ("changes", "metadata"):
        value = scrubbed.get(name)
        if value is not None:
            scrubbed[name] = scrub_secrets(value)
    return scrubbed


def mutate(
    db: Database,
    fn: Callable[[UnitOfWork], T],
    *,
    action: str,
    resource_type: str,
    resource_id: str | None = None,
) -> T:
    """Run ``fn`` (which appends its own success row) and record a refusal as a failure row."""
    started = time.monotonic()
    try:
        return db.run(fn)
    except REFUSALS as exc:
        record_failure(
            db,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            error=exc,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
        raise


def record_failure(
    db: Database,
    *,
    action: str,
    resource_type: str,
    resource_id: str | None,
    error: VutfError,
    duration_ms: int | None = None,
) -> None:
    def write(uow: UnitOfWork) -> None:
        append(
            uow,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            status="failure",
            error_message=f"{error.code}: {error.message}",
            duration_ms=duration_ms,
        )

    # The refusal itself is what the user must see; a failure to record it
    # (e.g. the database went away) must not replace that error.
    with contextlib.suppress(VutfError):
        db.run(write)


def elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
