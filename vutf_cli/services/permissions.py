"""Effective permissions: what a user, or one of their API keys, may do right now.

The one owner of the rule (docs/architecture.md §3.4):

* A user's effective permissions are the union of the scopes of their live,
  unexpired assignments of live roles; a superuser has every scope (``*``).
  An assignment stops counting at its ``expires_at`` instant, in the query
  itself (:meth:`AssignmentRepository.granting`), with no job running.
* An API key's effective scopes are its own scopes narrowed to its owner's
  effective permissions at the moment of the check
  (:func:`vutf_cli.domain.roles.narrow_scopes`): a required scope is granted
  exactly when the key's scopes and the owner's permissions both grant it,
  so taking a role from Bob narrows what Bob's keys can do at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime

from vutf_cli.db.database import Database
from vutf_cli.db.models import User
from vutf_cli.db.repositories.api_keys import KeyCredential
from vutf_cli.db.repositories.roles import AssignmentRepository
from vutf_cli.db.types import utcnow
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.roles import (
    SUPERUSER_SOURCE,
    EffectivePermissions,
    ScopeSource,
    narrow_scopes,
)
from vutf_cli.domain.validation import scope_grants
from vutf_cli.errors import Denied

__all__ = [
    "authorize_key_scopes",
    "effective_key_scopes",
    "effective_permissions",
    "user_permissions",
]


def effective_permissions(uow: UnitOfWork, user: User, now: datetime) -> EffectivePermissions:
    """``user``'s effective permissions at ``now``, each scope with the roles that grant it."""
    sources: dict[str, list[str]] = {}
    until: dict[str, list[datetime | None]] = {}
    if user.is_superuser:
        sources["*"] = [SUPERUSER_SOURCE]
        until["*"] = [None]
    granting = AssignmentRepository(uow.session, actor=uow.actor).granting(user.id, now)
    for name, permissions, expires_at in granting:
        for scope in _granted(permissions):
            sources.setdefault(scope, []).append(name)
            until.setdefault(scope, []).append(expires_at)
    return EffectivePermissions(
        user_id=user.id,
        username=user.username,
        is_superuser=user.is_superuser,
        scopes=tuple(sorted(sources)),
        sources=tuple(
            ScopeSource(
                scope=scope, sources=tuple(sources[scope]), expires_at=_latest(until[scope])
            )
            for scope in sorted(sources)
        ),
        as_of=now,
    )


def _granted(permissions: Mapping[str, object] | None) -> Iterator[str]:
    """The scopes a role's permissions grant (a scope mapped to anything but true: none)."""
    return (scope for scope, granted in (permissions or {}).items() if granted is True)


def _held(is_superuser: bool, role_permissions: Iterable[Mapping[str, object] | None]) -> set[str]:
    """The scopes of :func:`effective_permissions` without their sources: from the
    permissions of the roles that count (``AssignmentRepository.granting``'s rule)."""
    held = {"*"} if is_superuser else set()
    for permissions in role_permissions:
        held.update(_granted(permissions))
    return held


def _latest(moments: list[datetime | None]) -> datetime | None:
    # The scope holds until its last grant ends; None (no expiry) outlasts every instant.
    if any(moment is None for moment in moments):
        return None
    return max(moment for moment in moments if moment is not None)


def user_permissions(db: Database, ident: str) -> EffectivePermissions:
    """The effective permissions of the live user ``ident`` (username, email or id), now."""

    def read(uow: UnitOfWork) -> EffectivePermissions:
        return effective_permissions(uow, uow.users.require(ident), utcnow())

    return db.run(read, read_only=True)


def effective_key_scopes(
    key: KeyCredential,
    role_permissions: Iterable[Mapping[str, object] | None],
    *,
    required_scope: str | None = None,
) -> tuple[str, ...]:
    """``key``'s effective scopes; Denied if they do not cover ``required_scope``.

    ``role_permissions`` are those of the roles its owner holds at the moment
    of the check, as the key's lookup read them in the same statement
    (``ApiKeyRepository.authenticate_key_with_roles``, which joins on the rule
    of :meth:`AssignmentRepository.granting`).  The key's own scopes were
    checked already; this refuses what only its owner lacks.  The message
    starts as the key's own refusal does, so the audit row's reason is
    ``missing_scope`` either way.
    """
    held = _held(key.owner_is_superuser, role_permissions)
    own = (scope for scope, granted in key.permissions.items() if granted is True)
    scopes = narrow_scopes(own, held)
    if required_scope is not None and not scope_grants(dict.fromkeys(scopes, True), required_scope):
        raise Denied(
            f"API key lacks scope '{required_scope}': its owner '{key.owner_username}' "
            "does not hold it now"
        )
    return scopes


def authorize_key_scopes(
    uow: UnitOfWork, owner: User, permissions: dict[str, bool], now: datetime, *, force: bool
) -> tuple[str, ...]:
    """The requested scopes ``owner`` does not hold, allowed only by ``force`` (else Denied).

    A key never silently carries more than its owner.  ``force`` is for a
    superuser: the acting user (``--actor`` / ``VUTF_ACTOR``, a free-text
    name) must name a live, active superuser; the forced scopes are returned
    for the audit row.  Verification narrows such a key to its owner's
    permissions anyway, so forcing only lets a key be made before its
    owner's role is granted.
    """
    held = dict.fromkeys(effective_permissions(uow, owner, now).scopes, True)
    missing = tuple(scope for scope in sorted(permissions) if not scope_grants(held, scope))
    if not missing:
        return ()
    if not force:
        raise Denied(
            f"user '{owner.username}' does not hold scope(s) {', '.join(missing)}: "
            "a key cannot carry more than its owner",
            hint=f"give a role that grants them (vutf users add-role {owner.username} ROLE), "
            "or --force as a superuser",
        )
    actor = uow.users.get_by_username(uow.actor) if uow.actor else None
    if actor is None or not actor.is_superuser or not actor.is_active:
        raise Denied(
            f"--force needs the acting user ({uow.actor!r}) to be an active superuser",
            hint="act as one: --actor NAME or VUTF_ACTOR, naming a superuser's username",
        )
    return missing
