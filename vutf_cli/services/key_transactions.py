"""How the key services work inside a transaction: the audited mutation, a key's view, its owner.

Every key service reads in one read-only unit of work or changes through
:func:`key_mutation`, which is :func:`~vutf_cli.services.audit_trail.mutate`
for the ``api_key`` resource: the change and its ``success`` audit row commit
together, and a refusal (not found, conflict, denied) leaves a ``failure``
row.  Views are built inside the transaction, as of one moment (``now``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final, TypeVar

from vutf_cli.db.database import Database
from vutf_cli.db.models import ApiKey, User
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.views import ApiKeyView
from vutf_cli.services.audit_trail import Subject, mutate, name_subjects

__all__ = [
    "RESOURCE_TYPE",
    "key_mutation",
    "key_owner_id",
    "key_row",
    "key_view",
    "lookup_user",
]

T = TypeVar("T")

RESOURCE_TYPE: Final = "api_key"


def key_view(key: ApiKey, now: datetime) -> ApiKeyView:
    """The view of ``key`` (its owner's name and its state as of ``now``)."""
    return ApiKeyView.from_row(key, username=key.user.username, now=now)


def key_row(action: str, key: ApiKey, changes: dict[str, Any]) -> dict[str, Any]:
    """The audit row of ``action`` on ``key`` (the keyword arguments of ``audit_trail.append``).

    The one shape of a key's row, named after the key and its owner; the
    caller appends it or collects it for one bulk append (``vutf apply``).
    """
    return {
        "action": action,
        "resource_type": RESOURCE_TYPE,
        "resource_id": str(key.id),
        "user_id": key.user_id,
        "changes": changes,
    }


def lookup_user(uow: UnitOfWork, ident: str, *, include_deleted: bool = False) -> User:
    """The owner named by username, email or id; NotFound otherwise."""
    return uow.users.require(ident, include_deleted=include_deleted)


def key_owner_id(uow: UnitOfWork, ref: str) -> uuid.UUID | None:
    """The owner of the key ``ref`` (id or prefix) names, deleted keys included."""
    return uow.keys.resolve(ref, include_deleted=True).user_id


# A refused change of a key names its owner in the failure row (user_id).
name_subjects(RESOURCE_TYPE, key_owner_id)


def key_mutation(
    db: Database,
    fn: Callable[[UnitOfWork], T],
    *,
    action: str,
    resource_id: str | None = None,
    subject: Subject | None = None,
) -> T:
    """Run ``fn`` as the audited mutation ``action`` of an API key.

    A refusal's failure row names the owner of the key ``resource_id``, or
    the user ``subject`` names (a key to be issued has no id yet).
    """
    return mutate(
        db,
        fn,
        action=action,
        resource_type=RESOURCE_TYPE,
        resource_id=resource_id,
        subject=subject,
    )
