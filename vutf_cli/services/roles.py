"""The life of a role, the work behind ``vutf roles create | list | show | update | delete |
restore | members``.

A role is a named set of API-key scopes, checked with the keys' own
vocabulary (:func:`vutf_cli.services.key_arguments.parse_scopes`).  Every
change runs through :func:`~vutf_cli.services.audit_trail.mutate`: the change
and its ``role.*`` audit row commit together, a refusal leaves a ``failure``
row naming the role.

Decisions (the README's roles section repeats them):

* Names are 2-64 of ``A-Z a-z 0-9 _ -``, unique case-insensitively among live
  roles; a role is named by its name (any case) or its id.
* The built-in roles (``admin``, ``user-manager``, ``key-manager``,
  ``viewer``; seeded by migration 0004_roles) are read-only: ``update`` and
  ``delete`` refuse them (exit 4), so their documented scopes stay true.
* ``create --if-not-exists``: an existing live role of that name is returned
  unchanged (no audit row) with the fields that differ from the request.
* ``update`` with values equal to the current ones writes nothing.
* ``delete`` soft-deletes the role and ends its live assignments in the same
  transaction (one ``role.delete`` row lists them): a deleted role grants
  nothing, and no live assignment of a deleted role is left behind.
  ``--if-exists``: no live role of that name is success with nothing written.
  ``restore`` brings the role back without its assignments; a name taken
  meanwhile is a conflict (exit 4).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from vutf_cli.db.database import Database
from vutf_cli.db.models import Role
from vutf_cli.db.repositories.roles import AssignmentRepository, RoleRepository
from vutf_cli.db.types import utcnow
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain import validation
from vutf_cli.domain.roles import AssignmentView, RoleView, validate_role_name
from vutf_cli.errors import Conflict, InvalidInput
from vutf_cli.services import audit_trail
from vutf_cli.services.key_arguments import parse_scopes

__all__ = [
    "RESOURCE_TYPE",
    "CreatedRole",
    "RoleChange",
    "create_role",
    "create_role_in",
    "delete_role",
    "list_roles",
    "restore_role",
    "role_members",
    "role_row",
    "roles_of",
    "show_role",
    "update_role",
    "update_role_in",
]

RESOURCE_TYPE: Final = "role"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CreatedRole:
    role: RoleView
    created: bool
    differences: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RoleChange:
    role: RoleView
    changed: bool
    fields: tuple[str, ...] = ()
    ended_assignments: int = 0


def roles_of(uow: UnitOfWork) -> tuple[RoleRepository, AssignmentRepository]:
    """The role repositories bound to ``uow``'s session and actor."""
    return (
        RoleRepository(uow.session, actor=uow.actor),
        AssignmentRepository(uow.session, actor=uow.actor),
    )


def _record(role: Role) -> dict[str, Any]:
    return {
        "name": role.name,
        "description": role.description,
        "scopes": sorted(role.permissions),
    }


def role_row(action: str, role: Role, changes: dict[str, Any]) -> dict[str, Any]:
    """The audit row of ``action`` on ``role`` (the keyword arguments of ``audit_trail.append``).

    The one shape of a role's row; the caller appends it or collects it for
    one bulk append (``vutf apply``).
    """
    return {
        "action": action,
        "resource_type": RESOURCE_TYPE,
        "resource_id": str(role.id),
        "changes": changes,
    }


def _append(uow: UnitOfWork, action: str, role: Role, changes: dict[str, Any]) -> None:
    audit_trail.append(uow, **role_row(action, role, changes))


# -- the changes inside a caller's transaction ---------------------------------------
# Each makes one change in ``uow`` and returns its audit row; the commands
# below append it, ``vutf apply`` collects it for one bulk append.
def create_role_in(
    uow: UnitOfWork, *, name: str, permissions: dict[str, bool], description: str | None
) -> tuple[Role, dict[str, Any]]:
    """Create a role (its name checked free by the caller); the role and its ``role.create`` row."""
    roles, _ = roles_of(uow)
    role = roles.create(name=name, permissions=permissions, description=description)
    return role, role_row("role.create", role, _record(role))


def update_role_in(
    uow: UnitOfWork,
    role: Role,
    changes: dict[str, Any],
    *,
    expected_version: int | None = None,
) -> dict[str, Any]:
    """Set ``changes`` (model field -> value, each differing) on the locked, not built-in
    ``role``; its ``role.update`` row, ``permissions`` shown as sorted ``scopes``."""
    roles, _ = roles_of(uow)
    before = {k: getattr(role, k) for k in changes}
    roles.update(role, expected_version=expected_version, **changes)
    return role_row(
        "role.update",
        role,
        {
            ("scopes" if k == "permissions" else k): {
                "old": sorted(before[k]) if k == "permissions" else before[k],
                "new": sorted(v) if k == "permissions" else v,
            }
            for k, v in changes.items()
        },
    )


def _mutation(db: Database, fn: Callable[[UnitOfWork], T], action: str, subject: str) -> T:
    """``fn`` as the audited mutation ``action`` of a role; a refusal names ``subject``."""
    return audit_trail.mutate(
        db, fn, action=action, resource_type=RESOURCE_TYPE, resource_id=subject
    )


def _view(roles: RoleRepository, role: Role) -> RoleView:
    """The view of ``role`` with how many users hold it now."""
    return RoleView.from_row(role, members=roles.member_counts(utcnow()).get(role.id, 0))


def _refuse_builtin(role: Role, what: str) -> None:
    if role.is_builtin:
        raise Conflict(
            f"role '{role.name}' is built in and cannot be {what}",
            hint="create a role of your own: vutf roles create NAME --scope …",
        )


# -- create ------------------------------------------------------------------------
def create_role(
    db: Database,
    *,
    name: str,
    scopes: Sequence[str],
    description: str | None = None,
    if_not_exists: bool = False,
) -> CreatedRole:
    """Create a role granting ``scopes`` (at least one; the API keys' vocabulary)."""
    name = validate_role_name(name)
    permissions = parse_scopes(scopes)
    description = validation.validate_description(description)

    def create(uow: UnitOfWork) -> CreatedRole:
        roles, _ = roles_of(uow)
        existing = roles.get_by_name(name)
        if existing is not None:
            if not if_not_exists:
                raise Conflict(
                    f"role '{existing.name}' already exists",
                    hint="change it with `vutf roles update`, or pass --if-not-exists",
                )
            wanted = {"permissions": permissions, "description": description}
            differences = tuple(k for k, v in wanted.items() if getattr(existing, k) != v)
            return CreatedRole(_view(roles, existing), created=False, differences=differences)
        role, row = create_role_in(uow, name=name, permissions=permissions, description=description)
        audit_trail.append(uow, **row)
        return CreatedRole(RoleView.from_row(role, members=0), created=True)

    return _mutation(db, create, "role.create", name)


# -- read --------------------------------------------------------------------------
def list_roles(db: Database, *, include_deleted: bool = False) -> list[RoleView]:
    """Every live role (``include_deleted``: deleted ones too), by name, with member counts."""

    def read(uow: UnitOfWork) -> list[RoleView]:
        roles, _ = roles_of(uow)
        counts = roles.member_counts(utcnow())
        return [
            RoleView.from_row(role, members=counts.get(role.id, 0))
            for role in roles.list_roles(include_deleted=include_deleted)
        ]

    return db.run(read, read_only=True)


def show_role(db: Database, ident: str) -> RoleView:
    """One role by name or id (a deleted one too, when no live role has that name)."""

    def read(uow: UnitOfWork) -> RoleView:
        roles, _ = roles_of(uow)
        role = roles.require(ident, include_deleted=True)
        return _view(roles, role)

    return db.run(read, read_only=True)


def role_members(
    db: Database, ident: str, *, include_expired: bool = False
) -> list[AssignmentView]:
    """The users holding a live role now (``include_expired``: expired, unpruned ones too)."""

    def read(uow: UnitOfWork) -> list[AssignmentView]:
        roles, assignments = roles_of(uow)
        role = roles.require(ident)
        now = utcnow()
        rows = assignments.of_role(role.id, now=now, expired=include_expired)
        return [AssignmentView.from_row(row, now=now) for row in rows]

    return db.run(read, read_only=True)


# -- change ------------------------------------------------------------------------
def update_role(
    db: Database,
    ident: str,
    *,
    scopes: Sequence[str] | None = None,
    description: str | None = None,
    new_name: str | None = None,
    expected_version: int | None = None,
) -> RoleChange:
    """Replace a role's scopes, description (``""`` clears it) or name."""
    if scopes is None and description is None and new_name is None:
        raise InvalidInput("nothing to update", hint="give --scope, --description or --rename")
    wanted: dict[str, Any] = {}
    if scopes is not None:
        wanted["permissions"] = parse_scopes(scopes)
    if description is not None:
        wanted["description"] = validation.validate_description(description)
    if new_name is not None:
        wanted["name"] = validate_role_name(new_name)

    def change(uow: UnitOfWork) -> RoleChange:
        roles, _ = roles_of(uow)
        role = roles.lock(roles.require(ident))
        _refuse_builtin(role, "changed")
        changes = {k: v for k, v in wanted.items() if getattr(role, k) != v}
        if not changes:
            return RoleChange(_view(roles, role), changed=False)
        if "name" in changes and changes["name"].lower() != role.name.lower():
            taken = roles.get_by_name(changes["name"])
            if taken is not None:
                raise Conflict(f"role '{taken.name}' already exists")
        row = update_role_in(uow, role, changes, expected_version=expected_version)
        audit_trail.append(uow, **row)
        fields = tuple("scopes" if k == "permissions" else k for k in changes)
        return RoleChange(_view(roles, role), changed=True, fields=fields)

    return _mutation(db, change, "role.update", ident)


def delete_role(db: Database, ident: str, *, if_exists: bool = False) -> RoleChange | None:
    """Soft-delete a role and end its live assignments; None if ``if_exists`` and absent."""

    def remove(uow: UnitOfWork) -> RoleChange | None:
        roles, assignments = roles_of(uow)
        if if_exists and roles.find(ident) is None:
            return None
        role = roles.lock(roles.require(ident))
        if role.is_deleted:  # deleted meanwhile, between the lookup and the lock
            raise Conflict(f"role '{role.name}' was deleted meanwhile")
        _refuse_builtin(role, "deleted")
        ended = assignments.of_role_ids(role.id)
        ended_record = [
            {"assignment_id": str(a.id), "user_id": str(a.user_id), "username": a.user.username}
            for a in ended
        ]
        for assignment in ended:
            assignments.delete(assignment)
        roles.delete(role)
        _append(uow, "role.delete", role, {"is_deleted": True, "ended_assignments": ended_record})
        return RoleChange(
            RoleView.from_row(role, members=0), changed=True, ended_assignments=len(ended)
        )

    return _mutation(db, remove, "role.delete", ident)


def restore_role(db: Database, ident: str) -> RoleChange:
    """Undo a soft delete (its assignments stay ended); a live role is left as it is."""

    def restore(uow: UnitOfWork) -> RoleChange:
        roles, _ = roles_of(uow)
        role = roles.require(ident, include_deleted=True)
        if not role.is_deleted:
            return RoleChange(_view(roles, role), changed=False)
        taken = roles.get_by_name(role.name)
        if taken is not None:
            raise Conflict(
                f"role name '{taken.name}' was registered again meanwhile",
                hint="delete or rename the live role first",
            )
        roles.restore(role)
        _append(uow, "role.restore", role, {"is_deleted": False})
        return RoleChange(_view(roles, role), changed=True, fields=("is_deleted",))

    return _mutation(db, restore, "role.restore", ident)
