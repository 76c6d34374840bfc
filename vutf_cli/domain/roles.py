"""Roles in the domain: the name rule, the built-in roles, and the frozen views.

A role is a named set of API-key scopes (the vocabulary of
:mod:`vutf_cli.domain.validation`); an assignment gives it to a user, maybe
until an instant.  A user's *effective permissions* are the union of the
scopes of their live, unexpired assignments of live roles (a superuser: every
scope, ``*``); :class:`EffectivePermissions` says where each scope comes from.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from vutf_cli.domain.validation import scope_grants, shorten_for_message
from vutf_cli.errors import InvalidInput

__all__ = [
    "BUILTIN_ROLES",
    "SUPERUSER_SOURCE",
    "AssignmentView",
    "EffectivePermissions",
    "RoleView",
    "ScopeSource",
    "assignment_state",
    "narrow_scopes",
    "validate_role_name",
]

# The built-in roles the migration 0004_roles seeds (a test holds the two together).
BUILTIN_ROLES: Final[Mapping[str, tuple[str, ...]]] = {
    "admin": ("*",),
    "user-manager": ("users:*",),
    "key-manager": ("api_keys:*",),
    "viewer": ("read",),
}

# Where a superuser's permissions come from (in place of a role name).
SUPERUSER_SOURCE: Final = "superuser"

_ROLE_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{1,63}")


def validate_role_name(value: str) -> str:
    """A role name: 2-64 of ``A-Z a-z 0-9 _ -``, starting with a letter or digit."""
    cleaned = value.strip()
    if not _ROLE_NAME_RE.fullmatch(cleaned):
        raise InvalidInput(
            f"invalid role name {shorten_for_message(cleaned)}: use 2-64 characters of "
            "A-Z a-z 0-9 _ -, starting with a letter or digit"
        )
    return cleaned


def _scopes(permissions: Mapping[str, Any] | None) -> tuple[str, ...]:
    # `is True`, as scope_grants counts a grant.
    return tuple(sorted(k for k, v in (permissions or {}).items() if v is True))


def _meet(a: str, b: str) -> str | None:
    """The widest scope both ``a`` and ``b`` grant, or None."""
    if scope_grants({b: True}, a):
        return a
    if scope_grants({a: True}, b):
        return b
    for action, wildcard in ((a, b), (b, a)):  # "write" and "api_keys:*" meet at "api_keys:write"
        resource, sep, rest = wildcard.partition(":")
        if sep and rest == "*" and ":" not in action and action not in ("admin", "*"):
            return f"{resource}:{action}"
    return None


def narrow_scopes(own: Iterable[str], held: Iterable[str]) -> tuple[str, ...]:
    """``own`` narrowed to what ``held`` also grants (each pair at the widest scope both grant).

    ``own`` ``*`` with ``held`` ``users:*`` gives ``users:*``; ``targets:read``
    with ``read`` gives ``targets:read``; ``write`` with ``api_keys:*`` gives
    ``api_keys:write``.  A required scope is granted by the result exactly
    when both sets grant it.
    """
    held = list(held)
    kept = {meet for a in own for b in held if (meet := _meet(a, b)) is not None}
    # Without the scopes another kept one already grants ("api_keys:read" beside "read").
    return tuple(
        sorted(s for s in kept if not any(t != s and scope_grants({t: True}, s) for t in kept))
    )


def assignment_state(expires_at: datetime | None, is_deleted: bool, now: datetime) -> str:
    """``active``, ``expired`` (past its expiry, not yet pruned) or ``removed``."""
    if is_deleted:
        return "removed"
    if expires_at is not None and expires_at <= now:
        return "expired"
    return "active"


@dataclass(frozen=True, slots=True)
class RoleView:
    id: uuid.UUID
    name: str
    description: str | None
    permissions: dict[str, Any]
    scopes: tuple[str, ...]
    is_builtin: bool
    members: int | None
    created_at: datetime
    created_by: str | None
    updated_at: datetime
    updated_by: str | None
    version: int
    is_deleted: bool
    deleted_at: datetime | None
    deleted_by: str | None

    @classmethod
    def from_row(cls, row: Any, *, members: int | None = None) -> RoleView:
        permissions = dict(row.permissions or {})
        return cls(
            id=row.id,
            name=row.name,
            description=row.description,
            permissions=permissions,
            scopes=_scopes(permissions),
            is_builtin=row.is_builtin,
            members=members,
            created_at=row.created_at,
            created_by=row.created_by,
            updated_at=row.updated_at,
            updated_by=row.updated_by,
            version=row.version,
            is_deleted=row.is_deleted,
            deleted_at=row.deleted_at,
            deleted_by=row.deleted_by,
        )


@dataclass(frozen=True, slots=True)
class AssignmentView:
    """A role assigned to a user (``state`` as of the moment the view was built)."""

    id: uuid.UUID
    user_id: uuid.UUID
    username: str
    role_id: uuid.UUID
    role: str
    scopes: tuple[str, ...]
    granted_by: str | None
    granted_at: datetime
    expires_at: datetime | None
    state: str
    version: int
    is_deleted: bool
    deleted_at: datetime | None
    deleted_by: str | None

    @classmethod
    def from_row(cls, row: Any, *, now: datetime) -> AssignmentView:
        return cls(
            id=row.id,
            user_id=row.user_id,
            username=row.user.username,
            role_id=row.role_id,
            role=row.role.name,
            scopes=_scopes(row.role.permissions),
            granted_by=row.granted_by,
            granted_at=row.granted_at,
            expires_at=row.expires_at,
            state=assignment_state(row.expires_at, row.is_deleted, now),
            version=row.version,
            is_deleted=row.is_deleted,
            deleted_at=row.deleted_at,
            deleted_by=row.deleted_by,
        )


@dataclass(frozen=True, slots=True)
class ScopeSource:
    """One effective scope and what grants it (role names, or ``superuser``)."""

    scope: str
    sources: tuple[str, ...]
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class EffectivePermissions:
    """What a user may do at ``as_of``: the union of their live, unexpired roles' scopes."""

    user_id: uuid.UUID
    username: str
    is_superuser: bool
    scopes: tuple[str, ...]
    sources: tuple[ScopeSource, ...]
    as_of: datetime

    def grants(self, required: str) -> bool:
        return scope_grants(dict.fromkeys(self.scopes, True), required)
