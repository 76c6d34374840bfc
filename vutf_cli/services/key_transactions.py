"""How the key services work inside a transaction: the audited mutation, a key's view, its owner.

Every key service reads in one read-only unit of work or changes through
:func:`key_mutation`, which is :func:`~vutf_cli.services.audit_trail.mutate`
for the ``api_key`` resource: the change and its ``success`` audit row commit
together, and a refusal (not found, conflict, denied) leaves a ``failure``
row.  Views are built inside the transaction, as of one moment (``now``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Final, TypeVar

from vutf_cli.db.database import Database
from vutf_cli.db.models import ApiKey, User
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.views import ApiKeyView
from vutf_cli.services.audit_trail import mutate

__all__ = ["RESOURCE_TYPE", "key_mutation", "key_view", "lookup_user"]

T = TypeVar("T")

RESOURCE_TYPE: Final = "api_key"


def key_view(key: ApiKey, now: datetime) -> ApiKeyView:
    """The view of ``key`` (its owner's name and its state as of ``now``)."""
    return ApiKeyView.from_row(key, username=key.user.username, now=now)


def lookup_user(uow: UnitOfWork, ident: str, *, include_deleted: bool = False) -> User:
    """The owner named by username, email or id; NotFound otherwise."""
    return uow.users.require(ident, include_deleted=include_deleted)


def key_mutation(
    db: Database,
    fn: Callable[[UnitOfWork], T],
    *,
    action: str,
    resource_id: str | None = None,
) -> T:
    """Run ``fn`` as the audited mutation ``action`` of an API key."""
    return mutate(db, fn, action=action, resource_type=RESOURCE_TYPE, resource_id=resource_id)
