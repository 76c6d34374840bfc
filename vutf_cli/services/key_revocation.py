"""Ending API keys, the work behind ``vutf keys revoke`` and ``vutf keys delete``.

``revoke`` resolves every KEY first: one unknown reference and nothing is
revoked (exit 3).  Keys already revoked, or deleted (a deleted key never
works again: the state revoking asks for already holds), are reported as
unchanged: a script that revokes and then deletes can run twice.  It writes
one ``api_key.revoke`` audit row per key it revokes (so ``vutf audit`` finds a
key's history by its id), all in the command's single transaction; a key that
was not changed gets no row.  :func:`preview_revoke` shows what would be
revoked, for the command to confirm first.

``delete`` soft-deletes keys (revoking any that still worked, in the same
transaction, one ``api_key.delete`` row per key).  It is how a name held by
a revoked or expired key is freed: names are unique per owner among keys
that are not deleted (``uq_api_keys_user_id_name_live``), and a revoked key
is kept, not deleted, so that its history stays readable.  A deleted key is
reported as unchanged.

``if_exists`` (``--if-exists``): a KEY (or ``--user``) that does not exist
is skipped and listed in ``missing`` instead of being a refusal; nothing is
written for it, not even a failure row (nothing was refused).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vutf_cli.db.database import Database
from vutf_cli.db.models import ApiKey
from vutf_cli.db.types import utcnow
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.views import ApiKeyView
from vutf_cli.errors import InvalidInput, NotFound
from vutf_cli.services import audit_trail, user_changes
from vutf_cli.services.audit_trail import REFUSALS, Subject, record_failure
from vutf_cli.services.key_arguments import check_reference
from vutf_cli.services.key_transactions import (
    RESOURCE_TYPE,
    key_mutation,
    key_row,
    key_view,
    lookup_user,
)

__all__ = [
    "DeleteResult",
    "RevokeResult",
    "delete_keys",
    "preview_delete",
    "preview_revoke",
    "revoke_key_in",
    "revoke_keys",
]


@dataclass(frozen=True, slots=True)
class RevokeResult:
    revoked: tuple[ApiKeyView, ...]
    unchanged: tuple[ApiKeyView, ...]  # were revoked (or deleted) already
    missing: tuple[str, ...] = ()  # with if_exists: the references that named nothing


@dataclass(frozen=True, slots=True)
class DeleteResult:
    deleted: tuple[ApiKeyView, ...]
    unchanged: tuple[ApiKeyView, ...]  # were deleted already
    missing: tuple[str, ...] = ()  # with if_exists: the references that named nothing


@dataclass(frozen=True, slots=True)
class _Targets:
    keys: list[ApiKey]
    missing: tuple[str, ...]


def _resolve_all(
    uow: UnitOfWork, refs: Sequence[str], *, if_exists: bool, include_deleted: bool
) -> _Targets:
    """Every referenced key, each once, in the order given.

    An unknown reference is NotFound, or with ``if_exists`` listed as missing.
    """
    keys: list[ApiKey] = []
    missing: list[str] = []
    seen: set[uuid.UUID] = set()
    for ref in refs:
        try:
            key = uow.keys.resolve(ref, include_deleted=include_deleted)
        except NotFound:
            if not if_exists:
                raise
            missing.append(ref)
            continue
        if key.id not in seen:
            seen.add(key.id)
            keys.append(key)
    return _Targets(keys, tuple(missing))


def _target_keys(
    uow: UnitOfWork,
    refs: Sequence[str],
    user: str | None,
    *,
    if_exists: bool = False,
) -> _Targets:
    if user is not None:
        if if_exists and uow.users.get_by_identifier(user) is None:
            return _Targets([], (user,))
        owner = lookup_user(uow, user).id
        # --all: the keys the user has; deleted ones are gone from that list.
        return _Targets(uow.keys.list_for_user(owner, include_deleted=False), ())
    # A KEY named explicitly is found even when deleted: "no such key" would be false.
    return _resolve_all(uow, refs, if_exists=if_exists, include_deleted=True)


def _ended(key: ApiKey) -> bool:
    """Revoking ``key`` would change nothing: revoked, or deleted (maybe only expired)."""
    return key.revoked_at is not None or key.is_deleted


def _check_revoke_targets(refs: Sequence[str], user: str | None) -> list[str]:
    if user is None and not refs:
        raise InvalidInput("name at least one KEY, or give --user USER --all")
    if user is not None and refs:
        raise InvalidInput("give either KEY references or --user USER --all, not both")
    return [check_reference(ref) for ref in refs]


def preview_revoke(
    db: Database, refs: Sequence[str] = (), *, user: str | None = None, if_exists: bool = False
) -> RevokeResult:
    """What :func:`revoke_keys` would do, without doing it (to confirm first).

    An unknown reference is a refusal of the revocation and is audited as such.
    """
    checked = _check_revoke_targets(refs, user)

    def read(uow: UnitOfWork) -> RevokeResult:
        now = utcnow()
        targets = _target_keys(uow, checked, user, if_exists=if_exists)
        keys = targets.keys
        return RevokeResult(
            revoked=tuple(key_view(k, now) for k in keys if not _ended(k)),
            unchanged=tuple(key_view(k, now) for k in keys if _ended(k)),
            missing=targets.missing,
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
            subject=_failure_subject(user),
        )
        raise


def _failure_resource(refs: Sequence[str], user: str | None) -> str | None:
    if user is not None:
        return None
    return refs[0] if len(refs) == 1 else None


def _failure_subject(user: str | None) -> Subject | None:
    # --user USER names the subject; one KEY names its owner (key_transactions).
    return None if user is None else user_changes.subject(user)


def revoke_key_in(uow: UnitOfWork, key: ApiKey, *, now: datetime) -> dict[str, Any] | None:
    """Revoke ``key`` in the caller's transaction; its ``api_key.revoke`` row (None: it was).

    The caller appends the row, or collects it for one bulk append (``vutf apply``).
    """
    if not uow.keys.revoke(key, now=now):
        return None
    return key_row(
        "api_key.revoke",
        key,
        {"name": key.name, "key_prefix": key.key_prefix, "revoked_at": now},
    )


def revoke_keys(
    db: Database, refs: Sequence[str] = (), *, user: str | None = None, if_exists: bool = False
) -> RevokeResult:
    """Revoke every referenced key (or every key of ``user``), all or nothing."""
    checked = _check_revoke_targets(refs, user)

    def revoke(uow: UnitOfWork) -> RevokeResult:
        now = utcnow()
        targets = _target_keys(uow, checked, user, if_exists=if_exists)
        revoked: list[ApiKeyView] = []
        unchanged: list[ApiKeyView] = []
        for key in targets.keys:
            row = None if key.is_deleted else revoke_key_in(uow, key, now=now)
            if row is None:
                unchanged.append(key_view(key, now))
                continue
            audit_trail.append(uow, **row)
            revoked.append(key_view(key, now))
        return RevokeResult(
            revoked=tuple(revoked), unchanged=tuple(unchanged), missing=targets.missing
        )

    return key_mutation(
        db,
        revoke,
        action="api_key.revoke",
        resource_id=_failure_resource(checked, user),
        subject=_failure_subject(user),
    )


# -- delete ----------------------------------------------------------------------------------
def _check_delete_targets(refs: Sequence[str]) -> list[str]:
    if not refs:
        raise InvalidInput("name at least one KEY to delete")
    return [check_reference(ref) for ref in refs]


def preview_delete(db: Database, refs: Sequence[str], *, if_exists: bool = False) -> DeleteResult:
    """What :func:`delete_keys` would do, without doing it (to confirm first)."""
    checked = _check_delete_targets(refs)

    def read(uow: UnitOfWork) -> DeleteResult:
        now = utcnow()
        targets = _resolve_all(uow, checked, if_exists=if_exists, include_deleted=True)
        return DeleteResult(
            deleted=tuple(key_view(k, now) for k in targets.keys if not k.is_deleted),
            unchanged=tuple(key_view(k, now) for k in targets.keys if k.is_deleted),
            missing=targets.missing,
        )

    try:
        return db.run(read, read_only=True)
    except REFUSALS as exc:
        record_failure(
            db,
            action="api_key.delete",
            resource_type=RESOURCE_TYPE,
            resource_id=_failure_resource(checked, None),
            error=exc,
        )
        raise


def delete_keys(db: Database, refs: Sequence[str], *, if_exists: bool = False) -> DeleteResult:
    """Soft-delete every referenced key (revoking those still working), all or nothing."""
    checked = _check_delete_targets(refs)

    def delete(uow: UnitOfWork) -> DeleteResult:
        now = utcnow()
        targets = _resolve_all(uow, checked, if_exists=if_exists, include_deleted=True)
        deleted: list[ApiKeyView] = []
        unchanged: list[ApiKeyView] = []
        for key in targets.keys:
            if key.is_deleted:
                unchanged.append(key_view(key, now))
                continue
            revoked_now = uow.keys.revoke(key, now=now)
            uow.keys.delete(key)
            audit_trail.append(
                uow,
                **key_row(
                    "api_key.delete",
                    key,
                    {
                        "name": key.name,
                        "key_prefix": key.key_prefix,
                        "revoked_at": key.revoked_at if revoked_now else None,
                        "is_deleted": True,
                    },
                ),
            )
            deleted.append(key_view(key, now))
        return DeleteResult(
            deleted=tuple(deleted), unchanged=tuple(unchanged), missing=targets.missing
        )

    return key_mutation(
        db, delete, action="api_key.delete", resource_id=_failure_resource(checked, None)
    )
