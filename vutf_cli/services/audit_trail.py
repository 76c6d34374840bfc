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
(never a value given on the command line); every row's own metadata ends
with the fingerprint of the audit key it is hashed with (:func:`key_stamp`).
"""

from __future__ import annotations

import contextlib
import getpass
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final, TypeVar

from vutf_cli import __version__
from vutf_cli.db.database import Database
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.errors import Conflict, Denied, NotFound, VutfError
from vutf_cli.security.audit_chain import AUDIT_KEY_FIELD, audit_key_fingerprint

if TYPE_CHECKING:
    from vutf_cli.db.models import AuditLog
    from vutf_cli.domain.invocation import Invocation
    from vutf_cli.settings import Settings

__all__ = [
    "REFUSALS",
    "Database",
    "Subject",
    "append",
    "append_many",
    "database_for",
    "elapsed_ms",
    "fit_text",
    "kept_identifier",
    "key_stamp",
    "mutate",
    "name_subjects",
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
# -- caller-supplied context ---------------------------------------------------------------
# What a caller passes along with an attempt (a client's address and user
# agent, a name as typed) is recorded, never judged: it is fitted to its
# column here, so that an authentication attempt is decided and audited
# whatever the client sent (the repository refuses what does not fit).
_CONTEXT_COLUMNS: Final = {"ip_address": 45, "user_agent": 255}  # models.AuditLog
_UNSTORABLE: Final = re.compile("[\x00\ud800-\udfff]")  # NUL, lone surrogates
CUT_MARKER: Final = "\u2026"  # "…": the value was longer than the log keeps


def fit_text(value: str, limit: int) -> str:
    """``value`` as a column of ``limit`` characters can keep it.

    NUL and lone surrogates (which no database text can hold) become U+FFFD;
    a longer value keeps its first ``limit - 1`` characters and ends in "…".
    """
    value = _UNSTORABLE.sub("\ufffd", value)
    return value if len(value) <= limit else value[: limit - 1] + CUT_MARKER


def _fitted(fields: Mapping[str, Any]) -> dict[str, Any]:
    fitted = dict(fields)
    for name, limit in _CONTEXT_COLUMNS.items():
        value = fitted.get(name)
        if isinstance(value, str):  # anything else is a caller's bug: the repository refuses it
            fitted[name] = fit_text(value, limit)
    return fitted


def append(
    uow: UnitOfWork,
    *,
    changes: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    **fields: Any,
) -> AuditLog:
    """Append one audit row in ``uow`` (flushed, not committed), secrets dropped.

    ``fields`` are the other keyword arguments of the repository's ``append``
    (action, resource_type, resource_id, status, user_id, …).  The metadata
    names the audit key the row is hashed with (:func:`key_stamp`).
    """
    stamp = key_stamp(uow)
    return uow.audit.append(
        changes=None if changes is None else scrub_secrets(changes),
        metadata=stamp if metadata is None else {**scrub_secrets(metadata), **stamp},
        **_fitted(fields),
    )


def key_stamp(uow: UnitOfWork) -> dict[str, str | None]:
    """``{"audit_key": fingerprint}`` of the audit key ``uow`` hashes with (null: no key).

    Last in every row's metadata, so no caller can name another key; it is
    hashed with the rest of the row, through the one canonical text.  It lets
    ``audit verify`` say "written with another audit key" rather than "edited".
    """
    return {AUDIT_KEY_FIELD: audit_key_fingerprint(uow.settings.audit_key)}


def append_many(uow: UnitOfWork, entries: Iterable[Mapping[str, Any]]) -> range:
    """Append ``entries`` (each the keyword arguments of :func:`append`) in one bulk INSERT.

    Secrets are dropped and the key stamped as :func:`append` does; returns
    the seqs written.
    """
    stamp = key_stamp(uow)
    return uow.audit.append_many([_without_secrets(entry, stamp) for entry in entries])


def _without_secrets(entry: Mapping[str, Any], stamp: Mapping[str, Any]) -> Mapping[str, Any]:
    scrubbed = _fitted(entry)
    changes = scrubbed.get("changes")
    if changes is not None:
        scrubbed["changes"] = scrub_secrets(changes)
    metadata = scrubbed.get("metadata")
    scrubbed["metadata"] = stamp if metadata is None else {**scrub_secrets(metadata), **stamp}
    return scrubbed


# -- the subject of a refusal ---------------------------------------------------------------
_IDENTIFIER_KEPT: Final = 320  # the longest email address; the log keeps it forever


def kept_identifier(name: str) -> str:
    """A name as typed, as the log keeps it in ``changes["identifier"]`` (see :func:`fit_text`)."""
    return fit_text(name, _IDENTIFIER_KEPT)


@dataclass(frozen=True, slots=True)
class Subject:
    """Who a refused mutation was about: the name the caller gave, and how to find the user.

    ``user_id_of`` runs in the failure row's transaction and returns the id of
    the user behind ``name`` (the key's owner, for a key), or None when there
    is none; the row keeps ``name`` as typed in ``changes["identifier"]``.
    """

    name: str
    user_id_of: Callable[[UnitOfWork, str], uuid.UUID | None]

    def user_id(self, uow: UnitOfWork) -> uuid.UUID | None:
        try:
            return self.user_id_of(uow, self.name)
        except VutfError:  # an ambiguous or malformed name names nobody
            return None


# resource type -> how its resource_id (as typed) names a user; registered by
# the module that owns the resource (services.user_changes, services.key_transactions).
_SUBJECTS: dict[str, Callable[[UnitOfWork, str], uuid.UUID | None]] = {}


def name_subjects(
    resource_type: str, user_id_of: Callable[[UnitOfWork, str], uuid.UUID | None]
) -> None:
    """Let refusals of ``resource_type`` name their subject's user by ``user_id_of``."""
    _SUBJECTS[resource_type] = user_id_of


def _default_subject(resource_type: str, resource_id: str | None) -> Subject | None:
    user_id_of = _SUBJECTS.get(resource_type)
    if user_id_of is None or resource_id is None:
        return None
    return Subject(resource_id, user_id_of)


def mutate(
    db: Database,
    fn: Callable[[UnitOfWork], T],
    *,
    action: str,
    resource_type: str,
    resource_id: str | None = None,
    subject: Subject | None = None,
) -> T:
    """Run ``fn`` (which appends its own success row) and record a refusal as a failure row.

    The failure row names the refusal's ``subject`` (default: the user behind
    ``resource_id``, for a resource type registered with :func:`name_subjects`).
    """
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
            subject=subject,
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
    subject: Subject | None = None,
) -> None:
    """Append the ``failure`` row of a refusal in a transaction of its own.

    It carries the ``user_id`` of the refusal's subject when that user exists
    (so a user's activity includes refusals) and the name as typed in
    ``changes["identifier"]`` (docs/architecture.md §3.2).
    """
    named = subject or _default_subject(resource_type, resource_id)

    def write(uow: UnitOfWork) -> None:
        append(
            uow,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            user_id=None if named is None else named.user_id(uow),
            status="failure",
            changes=None if named is None else {"identifier": kept_identifier(named.name)},
            error_message=f"{error.code}: {error.message}",
            duration_ms=duration_ms,
        )

    # The refusal itself is what the user must see; a failure to record it
    # (e.g. the database went away) must not replace that error.
    with contextlib.suppress(VutfError):
        db.run(write)


def elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
