"""Verifying an API key, the work behind ``vutf keys verify``.

:func:`verify_key` checks the key's format and checksum before it touches the
database at all (no engine is even built for a malformed key).  Without
``record_usage`` it is a read-only transaction and writes nothing, not even
an audit row.  With ``record_usage`` it is a mutation: it counts the use
(``usage_count``, ``last_used_at``) and appends an ``api_key.use`` row, and a
refused key leaves an ``api_key.use`` failure row.  The reason for a refusal
is one line and never contains the key.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from vutf_cli.db.database import Database
from vutf_cli.db.types import utcnow
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain import validation
from vutf_cli.security import api_keys as key_format
from vutf_cli.services import audit_trail
from vutf_cli.services.key_transactions import RESOURCE_TYPE, key_mutation

__all__ = ["Verification", "verify_key"]


@dataclass(frozen=True, slots=True)
class Verification:
    """A key that passed verification: who owns it and what it may do."""

    valid: bool
    key_id: uuid.UUID
    key_prefix: str
    name: str
    user_id: uuid.UUID
    username: str
    scopes: tuple[str, ...]
    expires_at: datetime | None
    required_scope: str | None
    usage_count: int
    last_used_at: datetime | None
    usage_recorded: bool


def verify_key(
    db: Database,
    plaintext: str,
    *,
    required_scope: str | None = None,
    record_usage: bool = False,
) -> Verification:
    """Check a key (Denied with the reason if unusable); optionally count the use.

    The format and checksum are checked before ``db`` is touched, so a
    malformed key costs no engine, no connection and no query.  The schema
    is checked (``db.ensure_schema``) only after that: callers pass a Database
    whose schema has not been checked yet.
    """
    if required_scope is not None:
        required_scope = required_scope.strip()
        validation.normalize_scopes([required_scope])  # InvalidInput for an unknown scope
    key_format.ensure_well_formed(plaintext)  # Denied, with no query
    db.ensure_schema()

    def check(uow: UnitOfWork) -> Verification:
        now = utcnow()
        key = uow.keys.authenticate_key(plaintext, now=now, required_scope=required_scope)
        if record_usage:
            uow.keys.record_usage(key, now=now)
            audit_trail.append(
                uow,
                action="api_key.use",
                resource_type=RESOURCE_TYPE,
                resource_id=str(key.id),
                user_id=key.user_id,
                changes={"usage_count": key.usage_count, "last_used_at": key.last_used_at},
            )
        return Verification(
            valid=True,
            key_id=key.id,
            key_prefix=key.key_prefix,
            name=key.name,
            user_id=key.user_id,
            username=key.user.username,
            scopes=tuple(sorted(s for s, granted in key.permissions.items() if granted)),
            expires_at=key.expires_at,
            required_scope=required_scope,
            usage_count=key.usage_count,
            last_used_at=key.last_used_at,
            usage_recorded=record_usage,
        )

    if not record_usage:
        return db.run(check, read_only=True)
    return key_mutation(db, check, action="api_key.use")
