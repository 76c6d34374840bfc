"""Revoking API keys, the work behind ``vutf keys revoke``.

``revoke`` resolves every KEY first: one unknown reference and nothing is
revoked (exit 3).  Already revoked keys are reported as unchanged.  It writes
one ``api_key.revoke`` audit row per key it revokes (so ``vutf audit`` finds a
key's history by its id), all in the command's single transaction; a key that
was not changed gets no row.  :func:`preview_revoke` shows what would be
revoked, for the command to confirm first.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from vutf_cli.db.database import Database
from vutf_cli.db.models import ApiKey
from vutf_cli.db.types import utcnow
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.views import ApiKeyView
from vutf_cli.errors import InvalidInput
from vutf_cli.services import audit_trail
from vutf_cli.services.audit_trail import REFUSALS, record_failure
from vutf_cli.services.key_arguments import check_reference
from vutf_cli.services.key_transactions import RESOURCE_TYPE, key_mutation, key_view, lookup_user

__all__ = ["RevokeResult", "preview_revoke", "revoke_keys"]


@dataclass(frozen=True, slots=True)
class RevokeResult:
    revoked: tuple[ApiKeyView, ...]
    unchanged: tuple[ApiKeyView, ...]  # were revoked already


def _resolve_all(uow: UnitOfWork, refs: Sequence[str]) -> list[ApiKey]:
    """Every referenced live key, each once, in the order given; NotFound for any unknown."""
    keys: list[ApiKey] = []
    seen: set[uuid.UUID] = set()
    for ref in refs:
        key = uow.keys.resolve(ref)
        if key.id not in seen:
            seen.add(key.id)
            keys.append(key)
    return keys


def _target_keys(uow: UnitOfWork, refs: Sequence[str], user: str | None) -> list[ApiKey]:
    if user is not None:
        return uow.keys.list_for_user(lookup_user(uow, user).id)
    return _resolve_all(uow, refs)


def _check_revoke_targets(refs: Sequence[str], user: str | None) -> list[str]:
    if user is None and not refs:
        raise InvalidInput("name at least one KEY, or give --user USER --all")
    if user is not None and refs:
        raise InvalidInput("give either KEY references or --user USER --all, not both")
    return [check_reference(ref) for ref in refs]


def preview_revoke(
    db: Database, refs: Sequence[str] = (), *, user: str | None = None
) -> RevokeResult:
    """What :func:`revoke_keys` would do, without doing it (to confirm first).

    An unknown reference is a refusal of the revocation and is audited as such.
    """
    checked = _check_revoke_targets(refs, user)

    def read(uow: UnitOfWork) -> RevokeResult:
        now = utcnow()
        keys = _target_keys(uow, checked, user)
        return RevokeResult(
            revoked=tuple(key_view(k, now) for k in keys if k.revoked_at is None),
            unchanged=tuple(key_view(k, now) for k in keys if k.revoked_at is not None),
        )

    try:
        return db.run(read, read_only=True)
    except REFUSALS as exc:
        record_failure(
            db,
            action="api_key.revoke",
            resource_type=RESOURCE_TYPE,
            resource_id=_failure_resource(checked, user),
            error=exc,
        )
        raise


def _failure_resource(refs: Sequence[str], user: str | None) -> str | None:
    if user is not None:
        return None
    return refs[0] if len(refs) == 1 else None


def revoke_keys(db: Database, refs: Sequence[str] = (), *, user: str | None = None) -> RevokeResult:
    """Revoke every referenced key (or every key of ``user``), all or nothing."""
    checked = _check_revoke_targets(refs, user)

    def revoke(uow: UnitOfWork) -> RevokeResult:
        now = utcnow()
        keys = _target_keys(uow, checked, user)
        revoked: list[ApiKeyView] = []
        unchanged: list[ApiKeyView] = []
        for key in keys:
            if not uow.keys.revoke(key, now=now):
                unchanged.append(key_view(key, now))
                continue
            audit_trail.append(
                uow,
                action="api_key.revoke",
                resource_type=RESOURCE_TYPE,
                resource_id=str(key.id),
                user_id=key.user_id,
                changes={"name": key.name, "key_prefix": key.key_prefix, "revoked_at": now},
            )
            revoked.append(key_view(key, now))
        return RevokeResult(revoked=tuple(revoked), unchanged=tuple(unchanged))

    return key_mutation(
        db, revoke, action="api_key.revoke", resource_id=_failure_resource(checked, user)
    )
