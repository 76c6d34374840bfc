"""Roles and role memberships in a declared identity: their changes and how each is written.

They are written by the functions ``vutf roles create|update``
(:mod:`vutf_cli.services.roles`) and ``vutf users add-role|remove-role``
(:mod:`vutf_cli.services.role_assignments`) write with, which build the rows
``role.create``, ``role.update``, ``user_role.assign`` and ``user_role.remove``.
A user's ``roles`` in the file, when given, are every role they hold: a
missing assignment is made, an undeclared active one removed, an expired one
(not yet pruned) declared again is renewed (``replaced_assignment``), and a
different expiry is a removal and a new assignment, as the two commands
would do it.  Built-in roles cannot be changed (Conflict); roles the file
does not mention are left alone, also with ``--prune`` (deleting a role
would end every assignment of it).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from vutf_cli.db.models import Role, User, UserRole
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.roles import assignment_state
from vutf_cli.domain.validation import identity_key
from vutf_cli.errors import Conflict, NotFound
from vutf_cli.services.declarative.change import AFTER_APPLY, Change, differs_from_plan
from vutf_cli.services.declarative.format import DesiredMembership, DesiredRole, Identity
from vutf_cli.services.role_assignments import assign_role_in, unassign_role_in
from vutf_cli.services.roles import create_role_in, roles_of, update_role_in

if TYPE_CHECKING:
    from vutf_cli.services.declarative.writes import Writer

__all__ = ["WRITES", "membership_changes", "role_changes"]


# Users per IN (...) list.
_CHUNK: Final = 500


# -- the changes ----------------------------------------------------------------------------
def role_changes(uow: UnitOfWork, identity: Identity) -> Iterator[Change]:
    roles, _ = roles_of(uow)
    for wanted in identity.roles:
        role = roles.get_by_name(wanted.name)
        if role is None:
            yield Change(
                "role.create",
                "role",
                wanted.name,
                AFTER_APPLY,
                {
                    "name": wanted.name,
                    "description": wanted.description,
                    "scopes": sorted(wanted.scopes),
                },
                wanted,
            )
            continue
        held = sorted(role.permissions)
        changes: dict[str, Any] = {}
        if held != sorted(wanted.scopes):
            changes["scopes"] = {"old": held, "new": sorted(wanted.scopes)}
        if "description" in wanted.given and role.description != wanted.description:
            changes["description"] = {"old": role.description, "new": wanted.description}
        if not changes:
            continue
        if role.is_builtin:
            raise Conflict(
                f"role '{role.name}' is built in and cannot be changed "
                f"({', '.join(changes)} differ)",
                hint="declare it as it is, leave it out, or declare a role of your own",
            )
        yield Change("role.update", "role", role.name, str(role.id), changes, wanted)


def membership_changes(
    uow: UnitOfWork, identity: Identity, users: Mapping[str, User], now: datetime
) -> Iterator[Change]:
    roles, _ = roles_of(uow)
    declared = {role.name.lower(): role for role in identity.roles}
    known: dict[str, Role | None] = {}
    managed = [
        user.id
        for wanted in identity.users
        if wanted.roles is not None and (user := users.get(identity_key(wanted.username)))
    ]
    held_by = _live_assignments(uow, managed)
    for wanted in identity.users:
        if wanted.roles is None:
            continue
        user = users.get(identity_key(wanted.username))
        held = {} if user is None else held_by.get(user.id, {})
        for membership in wanted.roles:
            key = membership.role.lower()
            if key not in known:
                known[key] = roles.get_by_name(membership.role)
            role = known[key]
            if role is None and key not in declared:
                raise NotFound(
                    f"user '{wanted.username}' is given the role '{membership.role}', "
                    "which does not exist",
                    hint="declare it under roles:, or fix the name",
                )
            yield from _membership(wanted.username, membership, role, held.pop(key, None), now)
        for current in held.values():  # not declared: removed (expired ones only tidy up)
            if assignment_state(current.expires_at, False, now) == "active":
                yield _remove(wanted.username, current)


def _live_assignments(
    uow: UnitOfWork, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, UserRole]]:
    """User id -> lower-case role name -> live assignment (of a live role), a few queries."""
    found: dict[uuid.UUID, dict[str, UserRole]] = {}
    for start in range(0, len(user_ids), _CHUNK):
        stmt = (
            select(UserRole)
            .join(Role, Role.id == UserRole.role_id)
            .where(
                UserRole.is_deleted.is_(False),
                Role.is_deleted.is_(False),
                UserRole.user_id.in_(user_ids[start : start + _CHUNK]),
            )
            .options(joinedload(UserRole.user), joinedload(UserRole.role))
        )
        for row in uow.session.scalars(stmt):
            found.setdefault(row.user_id, {})[row.role.name.lower()] = row
    return found


def _membership(
    username: str,
    wanted: DesiredMembership,
    role: Role | None,
    current: UserRole | None,
    now: datetime,
) -> Iterator[Change]:
    replaced: str | None = None
    if current is not None:
        if assignment_state(current.expires_at, False, now) == "expired":
            replaced = str(current.id)  # renewed, as add-role renews it
        elif current.expires_at == wanted.expires_at:
            return
        else:
            yield _remove(username, current)  # a new expiry: remove-role, then add-role
    name = wanted.role if role is None else role.name
    yield Change(
        "user_role.assign",
        "user_role",
        f"{username}/{name}",
        AFTER_APPLY,
        {
            "username": username,
            "role": name,
            "role_id": AFTER_APPLY if role is None else str(role.id),
            "expires_at": wanted.expires_at,
            "replaced_assignment": replaced,
        },
        wanted,
    )


def _remove(username: str, current: UserRole) -> Change:
    return Change(
        "user_role.remove",
        "user_role",
        f"{username}/{current.role.name}",
        str(current.id),
        {
            "username": current.user.username,
            "role": current.role.name,
            "role_id": str(current.role_id),
            "is_deleted": True,
        },
    )


# -- writing them (in apply's transaction, by the services' own functions; rows collected) --
def _create_role(w: Writer, change: Change) -> None:
    wanted = change.target
    assert isinstance(wanted, DesiredRole)
    _, row = create_role_in(
        w.uow,
        name=wanted.name,
        permissions=dict.fromkeys(wanted.scopes, True),
        description=wanted.description,
    )
    w.collect(row)


def _update_role(w: Writer, change: Change) -> None:
    role = w.locked_role(change.resource)
    values: dict[str, Any] = {}
    if "scopes" in change.changes:
        values["permissions"] = dict.fromkeys(change.changes["scopes"]["new"], True)
    if "description" in change.changes:
        values["description"] = change.changes["description"]["new"]
    w.collect(update_role_in(w.uow, role, values))


def _assign(w: Writer, change: Change) -> None:
    _, assignments = roles_of(w.uow)
    role = w.locked_role(change.changes["role"])  # serialized with add-role/remove-role
    user = w.user(change.changes["username"])
    replaced = change.changes["replaced_assignment"]
    current = None if replaced is None else assignments.get(uuid.UUID(replaced))
    if replaced is not None and current is None:
        raise differs_from_plan()
    _, row = assign_role_in(
        w.uow, user, role, expires_at=change.changes["expires_at"], now=w.now, replacing=current
    )
    w.collect(row)


def _unassign(w: Writer, change: Change) -> None:
    _, assignments = roles_of(w.uow)
    current = assignments.get(uuid.UUID(change.resource_id))
    assert current is not None  # computed in this transaction
    w.locked_role(current.role.name)
    w.collect(unassign_role_in(w.uow, current))


WRITES: Final[dict[str, Callable[[Writer, Change], None]]] = {
    "role.create": _create_role,
    "role.update": _update_role,
    "user_role.assign": _assign,
    "user_role.remove": _unassign,
}
