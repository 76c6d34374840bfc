"""Verifying an API key, the work behind ``vutf keys verify``.

:func:`verify_key` checks the key's format and checksum before it touches the
database at all (no engine is even built for a malformed key), so a
malformed key or a checksum mismatch is refused (Denied) and *not* recorded:
it names no key and no owner, and recording it would need the database.

Every other verification is an authentication attempt and appends exactly
one ``api_key.use`` audit row (docs/architecture.md §3.2), in the same
transaction as the check (concurrent verifications of one process share that
transaction: group commit, :mod:`vutf_cli.services.audit_batch`): status
``success`` or ``failure``, ``user_id`` of the key's owner and ``resource_id``
of the key whenever the key exists (also revoked or deleted), the caller's
``ip_address``/``user_agent`` when given,
and ``changes`` with ``usage_recorded`` and, on failure, the ``reason``:
``unknown_key``, ``deleted``, ``revoked``, ``expired``, ``owner_deleted``,
``inactive_owner``, ``missing_scope`` or ``other_pepper`` (an unknown key
whose prefix names a key made with another ``VUTF_KEY_PEPPER``: the row
carries both pepper fingerprints and the refusal a ``hint``, its message
unchanged; ``services.key_pepper``).  With ``record_usage`` the use is
also counted (``usage_count``, ``last_used_at``, in ``changes`` too).  Only
``record=False`` (``vutf keys verify --no-record``) is a read-only check that
writes nothing.  The message of a refusal is one line and never contains
the key; it is raised after the failure row is committed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from vutf_cli.db.database import Database
from vutf_cli.db.types import utcnow
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain import validation
from vutf_cli.errors import Denied, InvalidInput
from vutf_cli.security import api_keys as key_format
from vutf_cli.services.audit_batch import Decision, run_audited
from vutf_cli.services.key_pepper import OtherPepper, other_pepper
from vutf_cli.services.key_transactions import RESOURCE_TYPE
from vutf_cli.services.permissions import effective_key_scopes

__all__ = ["USE_ACTION", "Verification", "verify_key"]

USE_ACTION: Final = "api_key.use"

# The audit row's reason for each refusal of ``authenticate_key`` (keyed by
# the start of its message, which is what the caller sees).
_REASONS: Final = (
    ("unknown API key", "unknown_key"),
    ("API key deleted", "deleted"),
    ("API key revoked", "revoked"),
    ("API key expired", "expired"),
    ("owner deleted", "owner_deleted"),
    ("owner inactive", "inactive_owner"),
    ("API key lacks scope", "missing_scope"),
)


@dataclass(frozen=True, slots=True)
class Verification:
    """A key that passed verification: who owns it and what it may do.

    ``scopes`` are its effective scopes: its own narrowed to what its owner
    holds at the moment of verification (:mod:`vutf_cli.services.permissions`)."""

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
    record: bool = True,
    ip_address: str | None = None,
    user_agent: str | None = None,
) -> Verification:
    """Check a key (Denied with the reason if unusable), recording the attempt.

    The format and checksum are checked before ``db`` is touched, so a
    malformed key costs no engine, no connection and no query.  The schema
    is checked (``db.ensure_schema``) only after that: callers pass a Database
    whose schema has not been checked yet.  ``record=False`` writes nothing
    (and cannot count a use).
    """
    if record_usage and not record:
        raise InvalidInput("counting a use (--record-usage) needs recording; drop --no-record")
    if required_scope is not None:
        required_scope = required_scope.strip()
        validation.normalize_scopes([required_scope])  # InvalidInput for an unknown scope
    key_format.ensure_well_formed(plaintext)  # Denied, with no query
    db.ensure_schema()

    def decide(uow: UnitOfWork) -> Decision[Verification | Denied]:
        now = utcnow()
        try:
            # One statement: the key, its owner and the roles the owner holds now.
            key, role_permissions = uow.keys.authenticate_key_with_roles(
                plaintext, now=now, required_scope=required_scope
            )
            # Its own scopes narrowed to what its owner holds now (services.permissions).
            scopes = effective_key_scopes(key, role_permissions, required_scope=required_scope)
        except Denied as refused:
            # Made with another pepper? Said in the row and the hint, never the message.
            mismatch = other_pepper(uow, plaintext, refused)
            refusal = refused if mismatch is None else mismatch.refusal(refused)
            if not record:
                raise refusal from None
            # Raised once this row is committed.
            row = _refusal_row(uow, plaintext, refusal, ip_address, user_agent, mismatch)
            return row, refusal
        changes: dict[str, Any] = {"usage_recorded": record_usage}
        usage_count, last_used_at = key.usage_count, key.last_used_at
        if record_usage:
            usage_count, last_used_at, _ = uow.keys.record_usage(key.id, now=now)
            changes |= {"usage_count": usage_count, "last_used_at": last_used_at}
        row = {
            "action": USE_ACTION,
            "resource_type": RESOURCE_TYPE,
            "resource_id": str(key.id),
            "user_id": key.user_id,
            "changes": changes,
            "ip_address": ip_address,
            "user_agent": user_agent,
        }
        return row, Verification(
            valid=True,
            key_id=key.id,
            key_prefix=key.key_prefix,
            name=key.name,
            user_id=key.user_id,
            username=key.owner_username,
            scopes=scopes,
            expires_at=key.expires_at,
            required_scope=required_scope,
            usage_count=usage_count,
            last_used_at=last_used_at,
            usage_recorded=record_usage,
        )

    if record:
        # Concurrent verifications share one transaction and one chain append
        # (group commit, services.audit_batch); each is decided in it.
        outcome = run_audited(db, decide)
    else:
        outcome = db.run(lambda uow: decide(uow)[1], read_only=True)
    if isinstance(outcome, Denied):
        raise outcome
    return outcome


def _refusal_row(
    uow: UnitOfWork,
    plaintext: str,
    refusal: Denied,
    ip_address: str | None,
    user_agent: str | None,
    mismatch: OtherPepper | None = None,
) -> dict[str, Any]:
    """The failure row of a refused key, naming the key and its owner when the key exists."""
    key = uow.keys.get_by_key(plaintext, include_deleted=True)
    reason = next((r for start, r in _REASONS if refusal.message.startswith(start)), "denied")
    changes: dict[str, Any] = {"reason": reason, "usage_recorded": False}
    if mismatch is not None:  # the key its prefix names, made with another pepper
        key, changes = mismatch.key, {**changes, **mismatch.changes()}
    return {
        "action": USE_ACTION,
        "resource_type": RESOURCE_TYPE,
        "resource_id": None if key is None else str(key.id),
        "user_id": None if key is None else key.user_id,
        "status": "failure",
        "changes": changes,
        "error_message": f"{refusal.code}: {refusal.message}",
        "ip_address": ip_address,
        "user_agent": user_agent,
    }
