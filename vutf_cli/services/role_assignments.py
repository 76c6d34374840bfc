"""Giving roles to users and taking them away: ``vutf users add-role | remove-role`` and
``vutf roles prune-expired``.

Decisions (the README's roles section repeats them):

* One role, one or more users (named by username, email or id; from the
  command line or a file, one per line, ``#`` comments and blank lines
  ignored).  All or nothing: every user is checked first in the one
  transaction; if any is refused (unknown user, already holding the role,
  not holding it) nothing is written, every refused user gets a ``failure``
  audit row naming it, and the error names the first problem (with its file
  and line) and how many more there are.  ``dry_run`` checks the same and
  reports what would happen, writing nothing.
* An assignment may end: ``expires_in`` (a duration such as ``7d``) or
  ``expires_at`` (ISO 8601), parsed as ``keys create`` parses them; none
  means until removed.  It stops counting at that instant (in the query).
* Assigning a role the user holds is a conflict (exit 4) unless
  ``if_not_exists`` (then ``unchanged``); an assignment that has expired but
  was not pruned is replaced by the new one (``renewed``).  Removing a role
  the user does not hold is not found (exit 3) unless ``if_exists``
  (``absent``).  Removal soft-deletes the assignment.
* Changes of one role's assignments are serialized on the role's row lock,
  so concurrent assigns and removals end with one live assignment or none,
  and a role deleted meanwhile is a conflict (exit 4), never an orphan.
* ``prune_expired`` soft-deletes expired live assignments, one
  ``user_role.prune`` row each; it only tidies (they had stopped counting).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from vutf_cli.db.database import Database
from vutf_cli.db.models import Role, User, UserRole
from vutf_cli.db.types import utcnow
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.roles import assignment_state
from vutf_cli.errors import Conflict, NotFound, VutfError
from vutf_cli.services import audit_trail
from vutf_cli.services.key_arguments import requested_expiry
from vutf_cli.services.roles import roles_of

__all__ = [
    "RESOURCE_TYPE",
    "AssignmentOutcome",
    "Target",
    "add_role",
    "assign_role_in",
    "assignment_row",
    "prune_expired",
    "remove_role",
    "targets_from_text",
    "unassign_role_in",
]

RESOURCE_TYPE: Final = "user_role"


@dataclass(frozen=True, slots=True)
class Target:
    """A user as named by the caller; ``where`` is its file and line (None: an argument)."""

    ident: str
    where: str | None = None


@dataclass(frozen=True, slots=True)
class AssignmentOutcome:
    username: str
    role: str
    outcome: str  # assigned, renewed, unchanged, removed, absent, pruned
    expires_at: datetime | None
    granted_by: str | None
    assignment_id: uuid.UUID | None
    dry_run: bool


def targets_from_text(text: str, source: str) -> list[Target]:
    """The users of a file: one per line; blank lines and ``#`` comments are skipped."""
    targets = []
    for number, line in enumerate(text.splitlines(), start=1):
        ident = line.split("#", 1)[0].strip()
        if ident:
            targets.append(Target(ident, f"{source}:{number}"))
    return targets


# A refused target, its refusal and the user's id when the user exists.
Problem = tuple[Target, VutfError, uuid.UUID | None]


class _Refused(Exception):
    """The refusals of a bulk change, raised once every target was checked."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__()
        self.problems = problems


def _expiry(expires_in: str | None, expires_at: str | None, now: datetime) -> datetime | None:
    return requested_expiry(expires_in=expires_in, expires_at=expires_at, no_expiry=False, now=now)[
        1
    ]


def _role_for_change(uow: UnitOfWork, role_name: str, *, lock: bool) -> Role:
    roles, _ = roles_of(uow)
    role = roles.require(role_name)
    if lock:
        role = roles.lock(role)
        if role.is_deleted:  # deleted between the lookup and the lock
            raise Conflict(f"role '{role.name}' was deleted meanwhile; nothing was changed")
    return role


def assignment_row(action: str, assignment: UserRole, **changes: object) -> dict[str, Any]:
    """The audit row of ``action`` on ``assignment`` (``audit_trail.append``'s arguments).

    The one shape of an assignment's row; the caller appends it or collects
    it for one bulk append (``vutf apply``).
    """
    return {
        "action": action,
        "resource_type": RESOURCE_TYPE,
        "resource_id": str(assignment.id),
        "user_id": assignment.user_id,
        "changes": {
            "username": assignment.user.username,
            "role": assignment.role.name,
            "role_id": str(assignment.role_id),
            **changes,
        },
    }


# -- the changes inside a caller's transaction (the role locked by the caller) -------
def assign_role_in(
    uow: UnitOfWork,
    user: User,
    role: Role,
    *,
    expires_at: datetime | None,
    now: datetime,
    replacing: UserRole | None = None,
) -> tuple[UserRole, dict[str, Any]]:
    """Give ``role`` to ``user``, ending ``replacing`` (an expired, unpruned assignment of it)
    first; the new assignment and its ``user_role.assign`` row."""
    _, assignments = roles_of(uow)
    replaced = None
    if replacing is not None:
        assignments.delete(replacing)
        replaced = str(replacing.id)
    row = assignments.assign(user, role, expires_at=expires_at, now=now)
    return row, assignment_row(
        "user_role.assign", row, expires_at=expires_at, replaced_assignment=replaced
    )


def unassign_role_in(uow: UnitOfWork, assignment: UserRole) -> dict[str, Any]:
    """End ``assignment`` (soft delete); its ``user_role.remove`` row."""
    _, assignments = roles_of(uow)
    assignments.delete(assignment)
    return assignment_row("user_role.remove", assignment, is_deleted=True)


def _outcome(
    user: User,
    role: Role,
    outcome: str,
    row: UserRole | None,
    dry_run: bool,
    expires_at: datetime | None = None,
) -> AssignmentOutcome:
    return AssignmentOutcome(
        username=user.username,
        role=role.name,
        outcome=outcome,
        expires_at=row.expires_at if row is not None else expires_at,
        granted_by=row.granted_by if row is not None else None,
        assignment_id=row.id if row is not None else None,
        dry_run=dry_run,
    )


def _run_bulk(
    db: Database,
    work: Callable[[UnitOfWork], list[AssignmentOutcome]],
    *,
    action: str,
    role_name: str,
    targets: Sequence[Target],
    dry_run: bool,
    verb: str,
) -> list[AssignmentOutcome]:
    started = time.monotonic()
    try:
        return db.run(work, read_only=dry_run)
    except _Refused as refused:
        if not dry_run:
            _record_refusals(
                db, action, role_name, refused.problems, audit_trail.elapsed_ms(started)
            )
        raise _summary(refused.problems, verb) from None
    except audit_trail.REFUSALS as exc:
        if not dry_run:
            audit_trail.record_failure(
                db,
                action=action,
                resource_type=RESOURCE_TYPE,
                resource_id=f"role:{role_name}"[:255],
                error=exc,
                duration_ms=audit_trail.elapsed_ms(started),
            )
        raise


def _summary(problems: list[Problem], verb: str) -> VutfError:
    target, first, _ = problems[0]
    where = f"{target.where}: " if target.where else ""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return type(first)(f"{where}{first.message}{more}; nothing was {verb}", hint=first.hint)


def _record_refusals(
    db: Database,
    action: str,
    role_name: str,
    problems: list[Problem],
    duration_ms: int,
) -> None:
    def write(uow: UnitOfWork) -> None:
        for target, error, user_id in problems:
            audit_trail.append(
                uow,
                action=action,
                resource_type=RESOURCE_TYPE,
                resource_id=f"{target.ident}:{role_name}"[:255],
                user_id=user_id,
                status="failure",
                changes={"user": target.ident, "role": role_name, "where": target.where},
                error_message=f"{error.code}: {error.message}",
                duration_ms=duration_ms,
            )

    # The refusal itself is what the caller must see.
    with contextlib.suppress(VutfError):
        db.run(write)


def _distinct_users(
    uow: UnitOfWork, targets: Sequence[Target], problems: list[Problem]
) -> Iterator[tuple[Target, User]]:
    """Each target's user, once per user (the first target naming it); an unknown name
    is added to ``problems`` (the whole change is refused after every target is seen)."""
    seen: set[uuid.UUID] = set()
    for target in targets:
        try:
            user = uow.users.require(target.ident)
        except NotFound as exc:
            problems.append((target, exc, None))
            continue
        if user.id not in seen:
            seen.add(user.id)
            yield target, user


# -- add -----------------------------------------------------------------------------
def add_role(
    db: Database,
    targets: Sequence[Target],
    role_name: str,
    *,
    expires_in: str | None = None,
    expires_at: str | None = None,
    if_not_exists: bool = False,
    dry_run: bool = False,
) -> list[AssignmentOutcome]:
    """Give ``role_name`` to every user of ``targets``, all or nothing."""
    _expiry(expires_in, expires_at, utcnow())  # bad input fails before the database

    def work(uow: UnitOfWork) -> list[AssignmentOutcome]:
        now = utcnow()
        expiry = _expiry(expires_in, expires_at, now)
        role = _role_for_change(uow, role_name, lock=not dry_run)
        _, assignments = roles_of(uow)
        plan: list[tuple[User, str, UserRole | None]] = []
        problems: list[Problem] = []
        for target, user in _distinct_users(uow, targets, problems):
            current = assignments.live_for(user.id, role.id)
            state = None if current is None else assignment_state(current.expires_at, False, now)
            if state == "active":
                if if_not_exists:
                    plan.append((user, "unchanged", current))
                else:
                    problems.append(
                        (
                            target,
                            Conflict(
                                f"user '{user.username}' already holds role '{role.name}'",
                                hint="pass --if-not-exists to leave such users as they are",
                            ),
                            user.id,
                        )
                    )
            else:
                plan.append((user, "assigned" if current is None else "renewed", current))
        if problems:
            raise _Refused(problems)
        outcomes = []
        for user, outcome, current in plan:
            if dry_run or outcome == "unchanged":
                row = current if outcome == "unchanged" else None
                outcomes.append(_outcome(user, role, outcome, row, dry_run, expires_at=expiry))
                continue
            # An expired, unpruned assignment (current) makes way for the new one.
            row, audit = assign_role_in(
                uow, user, role, expires_at=expiry, now=now, replacing=current
            )
            audit_trail.append(uow, **audit)
            outcomes.append(_outcome(user, role, outcome, row, dry_run))
        return outcomes

    return _run_bulk(
        db,
        work,
        action="user_role.assign",
        role_name=role_name,
        targets=targets,
        dry_run=dry_run,
        verb="assigned",
    )


# -- remove --------------------------------------------------------------------------
def remove_role(
    db: Database,
    targets: Sequence[Target],
    role_name: str,
    *,
    if_exists: bool = False,
    dry_run: bool = False,
) -> list[AssignmentOutcome]:
    """Take ``role_name`` from every user of ``targets``, all or nothing."""

    def work(uow: UnitOfWork) -> list[AssignmentOutcome]:
        role = _role_for_change(uow, role_name, lock=not dry_run)
        _, assignments = roles_of(uow)
        plan: list[tuple[User, UserRole | None]] = []
        problems: list[Problem] = []
        for target, user in _distinct_users(uow, targets, problems):
            current = assignments.live_for(user.id, role.id)
            if current is None and not if_exists:
                problems.append(
                    (
                        target,
                        NotFound(
                            f"user '{user.username}' does not hold role '{role.name}'",
                            hint="pass --if-exists to skip such users",
                        ),
                        user.id,
                    )
                )
                continue
            plan.append((user, current))
        if problems:
            raise _Refused(problems)
        outcomes = []
        for user, current in plan:
            if current is None:
                outcomes.append(_outcome(user, role, "absent", None, dry_run))
                continue
            if not dry_run:
                audit_trail.append(uow, **unassign_role_in(uow, current))
            outcomes.append(_outcome(user, role, "removed", current, dry_run))
        return outcomes

    return _run_bulk(
        db,
        work,
        action="user_role.remove",
        role_name=role_name,
        targets=targets,
        dry_run=dry_run,
        verb="removed",
    )


# -- prune ---------------------------------------------------------------------------
def prune_expired(db: Database, *, dry_run: bool = False) -> list[AssignmentOutcome]:
    """Soft-delete every live assignment whose expiry has passed (one audit row each)."""

    def work(uow: UnitOfWork) -> list[AssignmentOutcome]:
        now = utcnow()
        _, assignments = roles_of(uow)
        outcomes = []
        for row in assignments.expired(now):
            if not dry_run:
                assignments.delete(row)
                audit_trail.append(
                    uow,
                    **assignment_row(
                        "user_role.prune", row, expires_at=row.expires_at, is_deleted=True
                    ),
                )
            outcomes.append(_outcome(row.user, row.role, "pruned", row, dry_run))
        return outcomes

    if dry_run:
        return db.run(work, read_only=True)
    return audit_trail.mutate(db, work, action="user_role.prune", resource_type=RESOURCE_TYPE)
