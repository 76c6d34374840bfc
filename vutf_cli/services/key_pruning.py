"""Pruning API keys, the work behind ``vutf keys prune-expired``.

``prune-expired`` soft-deletes keys that expired or were revoked more than
``--older-than`` (default :data:`DEFAULT_PRUNE_AGE`, 30 days) ago.  It writes
one ``api_key.prune`` audit row per key (so ``vutf audit`` finds a key's
history by its id), all in the command's single transaction.
:func:`preview_prune` lists the candidates, for the command to confirm first.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from vutf_cli.db.database import Database
from vutf_cli.db.types import utcnow
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain import validation
from vutf_cli.domain.views import ApiKeyView
from vutf_cli.services import audit_trail
from vutf_cli.services.key_transactions import RESOURCE_TYPE, key_mutation, key_view

__all__ = ["DEFAULT_PRUNE_AGE", "PrunePlan", "PruneResult", "preview_prune", "prune_expired"]

DEFAULT_PRUNE_AGE: Final = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class PrunePlan:
    """The keys a prune would soft-delete now: ended (expired or revoked) before ``cutoff``."""

    candidates: tuple[ApiKeyView, ...]
    cutoff: datetime


@dataclass(frozen=True, slots=True)
class PruneResult:
    pruned: int
    cutoff: datetime
    key_ids: tuple[uuid.UUID, ...]


def _prune_age(older_than: str | None) -> timedelta:
    return DEFAULT_PRUNE_AGE if older_than is None else validation.parse_duration(older_than)


def preview_prune(db: Database, *, older_than: str | None = None) -> PrunePlan:
    """The keys :func:`prune_expired` would soft-delete now (to confirm first)."""
    age = _prune_age(older_than)

    def read(uow: UnitOfWork) -> PrunePlan:
        now = utcnow()
        keys = uow.keys.list_expired(now=now, older_than=age, include_revoked=True)
        return PrunePlan(candidates=tuple(key_view(key, now) for key in keys), cutoff=now - age)

    return db.run(read, read_only=True)


def prune_expired(db: Database, *, older_than: str | None = None) -> PruneResult:
    """Soft-delete keys expired or revoked more than ``older_than`` ago."""
    age = _prune_age(older_than)

    def prune(uow: UnitOfWork) -> PruneResult:
        now = utcnow()
        keys = uow.keys.list_expired(now=now, older_than=age, include_revoked=True)
        for key in keys:
            uow.keys.delete(key)
            audit_trail.append(
                uow,
                action="api_key.prune",
                resource_type=RESOURCE_TYPE,
                resource_id=str(key.id),
                user_id=key.user_id,
                changes={
                    "name": key.name,
                    "key_prefix": key.key_prefix,
                    "expires_at": key.expires_at,
                    "revoked_at": key.revoked_at,
                    "is_deleted": True,
                },
            )
        return PruneResult(
            pruned=len(keys), cutoff=now - age, key_ids=tuple(key.id for key in keys)
        )

    return key_mutation(db, prune, action="api_key.prune")
