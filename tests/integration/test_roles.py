"""Roles, assignments and effective permissions (services) on SQLite and PostgreSQL.

Built-in roles as the migration seeds them, every change with its audit row,
refusals with failure rows naming their subject, all-or-nothing bulk
assignment, expiry taking effect at its instant (no job), pruning, and the
concurrency outcomes: one live assignment or none, never a duplicate; a role
deleted while being assigned is a clean conflict, never an orphan.
"""

from __future__ import annotations

import importlib.util
import threading
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from vutf_cli.db.database import Database
from vutf_cli.db.models import AuditLog, Role, UserRole
from vutf_cli.db.repositories.roles import AssignmentRepository, RoleRepository
from vutf_cli.db.types import utcnow
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.roles import BUILTIN_ROLES, narrow_scopes
from vutf_cli.errors import Conflict, InvalidInput, NotFound, VutfError
from vutf_cli.services import role_assignments, roles
from vutf_cli.services import users as user_service
from vutf_cli.services.permissions import effective_permissions, user_permissions
from vutf_cli.services.role_assignments import Target
from vutf_cli.settings import Settings

PASSWORD = "correct horse battery staple"
MIGRATION = Path(__file__).resolve().parents[2] / "alembic" / "versions" / "0004_roles.py"


def _user(db: Database, name: str, *, superuser: bool = False) -> None:
    user_service.create_user(
        db, username=name, email=f"{name}@example.com", password=PASSWORD, is_superuser=superuser
    )


def _audit(db: Database, action_prefix: str) -> list[SimpleNamespace]:
    def read(uow: UnitOfWork) -> list[SimpleNamespace]:
        rows = uow.session.scalars(
            sa.select(AuditLog)
            .where(AuditLog.action.startswith(action_prefix))
            .order_by(AuditLog.seq)
        )
        return [
            SimpleNamespace(
                action=r.action,
                status=r.status,
                resource_id=r.resource_id,
                user_id=r.user_id,
                changes=r.changes,
            )
            for r in rows
        ]

    return db.run(read, read_only=True)


def _live_assignments(db: Database) -> list[tuple[str, str]]:
    def read(uow: UnitOfWork) -> list[tuple[str, str]]:
        rows = AssignmentRepository(uow.session).expired(utcnow() + timedelta(days=36525))
        rows += [
            row
            for row in uow.session.scalars(
                sa.select(UserRole).where(~UserRole.is_deleted, UserRole.expires_at.is_(None))
            )
        ]
        return sorted((row.user.username, row.role.name) for row in rows)

    return db.run(read, read_only=True)


# -- built-in roles ----------------------------------------------------------------------
def test_builtin_roles_are_seeded_with_their_documented_scopes(db: Database) -> None:
    spec = importlib.util.spec_from_file_location("migration_0004", MIGRATION)
    assert spec is not None
    assert spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    seeded = {name: scopes for name, (_, _, scopes) in migration.BUILTIN_ROLES.items()}
    assert seeded == dict(BUILTIN_ROLES)
    listed = {role.name: role for role in roles.list_roles(db)}
    assert {name: role.scopes for name, role in listed.items()} == dict(BUILTIN_ROLES)
    assert all(role.is_builtin and role.members == 0 for role in listed.values())


@pytest.mark.parametrize("name", sorted(BUILTIN_ROLES))
def test_builtin_roles_cannot_be_changed_or_deleted(db: Database, name: str) -> None:
    with pytest.raises(Conflict, match="built in"):
        roles.delete_role(db, name)
    with pytest.raises(Conflict, match="built in"):
        roles.update_role(db, name, scopes=["read"])
    assert roles.show_role(db, name).scopes == BUILTIN_ROLES[name]
    failures = [(r.action, r.status, r.resource_id) for r in _audit(db, "role.")]
    assert failures == [("role.delete", "failure", name), ("role.update", "failure", name)]


# -- the life of a role ------------------------------------------------------------------
def test_role_lifecycle_writes_one_audit_row_per_change(db: Database) -> None:
    created = roles.create_role(
        db, name="Deployer", scopes=["targets:write,sessions:write"], description="ships"
    )
    assert created.created
    assert created.role.scopes == ("sessions:write", "targets:write")
    with pytest.raises(Conflict):
        roles.create_role(db, name="deployer", scopes=["read"])  # case-insensitive
    again = roles.create_role(db, name="DEPLOYER", scopes=["read"], if_not_exists=True)
    assert not again.created
    assert again.differences == ("permissions", "description")
    assert roles.update_role(db, "deployer", scopes=["read"]).fields == ("scopes",)
    assert not roles.update_role(db, "deployer", scopes=["read"]).changed  # nothing written
    assert roles.delete_role(db, "deployer") is not None
    assert roles.delete_role(db, "deployer", if_exists=True) is None
    with pytest.raises(NotFound):
        roles.delete_role(db, "deployer")
    assert roles.restore_role(db, "deployer").changed
    rows = [(r.action, r.status) for r in _audit(db, "role.")]
    assert rows == [
        ("role.create", "success"),
        ("role.create", "failure"),
        ("role.update", "success"),
        ("role.delete", "success"),
        ("role.delete", "failure"),
        ("role.restore", "success"),
    ]
    update = _audit(db, "role.update")[0]
    assert update.changes == {
        "scopes": {"old": ["sessions:write", "targets:write"], "new": ["read"]}
    }


@pytest.mark.parametrize(
    ("name", "scopes"),
    [("x", ["read"]), ("bad name", ["read"]), ("ok-name", ["nope"]), ("ok-name", [])],
)
def test_invalid_role_input_is_refused_before_the_database(
    db: Database, name: str, scopes: list[str]
) -> None:
    with pytest.raises(InvalidInput):
        roles.create_role(db, name=name, scopes=scopes)
    assert _audit(db, "role.") == []


def test_a_deleted_name_can_be_registered_again_and_restore_then_conflicts(db: Database) -> None:
    roles.create_role(db, name="ops", scopes=["read"])
    roles.delete_role(db, "ops")
    roles.create_role(db, name="ops", scopes=["write"])

    def deleted_id(uow: UnitOfWork) -> str:
        row = uow.session.scalars(sa.select(Role).where(Role.is_deleted)).one()
        return str(row.id)

    with pytest.raises(Conflict, match="registered again"):
        roles.restore_role(db, db.run(deleted_id, read_only=True))


# -- assignments -------------------------------------------------------------------------
def test_assign_and_remove_with_audit_rows(db: Database) -> None:
    _user(db, "bob")
    [added] = role_assignments.add_role(db, [Target("bob")], "key-manager", expires_in="7d")
    assert (added.username, added.role, added.outcome) == ("bob", "key-manager", "assigned")
    assert added.granted_by == "tester@test"
    assert roles.role_members(db, "key-manager")[0].username == "bob"
    assert user_permissions(db, "bob").scopes == ("api_keys:*",)
    with pytest.raises(Conflict, match="already holds"):
        role_assignments.add_role(db, [Target("bob")], "key-manager")
    [same] = role_assignments.add_role(db, [Target("bob")], "key-manager", if_not_exists=True)
    assert same.outcome == "unchanged"
    [removed] = role_assignments.remove_role(db, [Target("bob")], "key-manager")
    assert removed.outcome == "removed"
    assert user_permissions(db, "bob").scopes == ()
    with pytest.raises(NotFound, match="does not hold"):
        role_assignments.remove_role(db, [Target("bob")], "key-manager")
    assert (
        role_assignments.remove_role(db, [Target("bob")], "key-manager", if_exists=True)[0].outcome
        == "absent"
    )
    rows = [(r.action, r.status, r.resource_id) for r in _audit(db, "user_role.")]
    assert rows == [
        ("user_role.assign", "success", str(added.assignment_id)),
        ("user_role.assign", "failure", "bob:key-manager"),
        ("user_role.remove", "success", str(added.assignment_id)),
        ("user_role.remove", "failure", "bob:key-manager"),
    ]
    assign = _audit(db, "user_role.assign")[0]
    assert assign.user_id is not None
    assert assign.changes is not None
    assert assign.changes["role"] == "key-manager"


def test_bulk_assignment_is_all_or_nothing_with_a_failure_row_per_refusal(db: Database) -> None:
    _user(db, "alice")
    _user(db, "bob")
    role_assignments.add_role(db, [Target("bob")], "viewer")
    targets = [
        Target("alice", "team.txt:1"),
        Target("ghost", "team.txt:2"),
        Target("bob", "team.txt:3"),
    ]
    with pytest.raises(NotFound) as caught:
        role_assignments.add_role(db, targets, "viewer")
    assert caught.value.message == (
        "team.txt:2: user 'ghost' not found (and 1 more); nothing was assigned"
    )
    assert _live_assignments(db) == [("bob", "viewer")]  # alice was not assigned
    failures = [r for r in _audit(db, "user_role.assign") if r.status == "failure"]
    assert [r.resource_id for r in failures] == ["ghost:viewer", "bob:viewer"]
    assert failures[0].user_id is None  # no such user
    assert failures[1].user_id is not None  # bob: the row names him
    planned = role_assignments.add_role(db, targets[:1], "viewer", dry_run=True)
    assert [(p.username, p.outcome, p.dry_run) for p in planned] == [("alice", "assigned", True)]
    assert _live_assignments(db) == [("bob", "viewer")]  # a dry run writes nothing


def test_file_targets_are_numbered_by_line() -> None:
    text = "alice\n\n# a comment\nbob  # trailing comment\n"
    assert role_assignments.targets_from_text(text, "team.txt") == [
        Target("alice", "team.txt:1"),
        Target("bob", "team.txt:4"),
    ]


def test_an_expired_assignment_stops_counting_at_its_instant(db: Database) -> None:
    _user(db, "bob")
    [added] = role_assignments.add_role(db, [Target("bob")], "key-manager", expires_in="1h")
    assert added.expires_at is not None
    end = added.expires_at

    def scopes_at(moment: Any) -> tuple[str, ...]:
        def read(uow: UnitOfWork) -> tuple[str, ...]:
            return effective_permissions(uow, uow.users.require("bob"), moment).scopes

        return db.run(read, read_only=True)

    assert scopes_at(end - timedelta(microseconds=1)) == ("api_keys:*",)
    assert scopes_at(end) == ()  # at the instant, with nothing having run


def test_prune_expired_only_tidies_and_assigning_again_renews(db: Database) -> None:
    _user(db, "bob")

    def backdate(uow: UnitOfWork) -> None:
        user = uow.users.require("bob")
        role = RoleRepository(uow.session).require("viewer")
        assignments = AssignmentRepository(uow.session, actor="tester@test")
        assignments.assign(user, role, expires_at=utcnow() - timedelta(minutes=1), now=utcnow())

    db.run(backdate)
    assert user_permissions(db, "bob").scopes == ()
    assert [m.username for m in roles.role_members(db, "viewer")] == []
    assert [m.state for m in roles.role_members(db, "viewer", include_expired=True)] == ["expired"]
    assert [p.outcome for p in role_assignments.prune_expired(db, dry_run=True)] == ["pruned"]
    assert _live_assignments(db) == [("bob", "viewer")]
    pruned = role_assignments.prune_expired(db)
    assert [(p.username, p.role) for p in pruned] == [("bob", "viewer")]
    assert _live_assignments(db) == []
    assert [r.action for r in _audit(db, "user_role.prune")] == ["user_role.prune"]
    db.run(backdate)
    [renewed] = role_assignments.add_role(db, [Target("bob")], "viewer")
    assert renewed.outcome == "renewed"
    assert _live_assignments(db) == [("bob", "viewer")]


def test_deleting_a_role_ends_its_assignments(db: Database) -> None:
    _user(db, "bob")
    roles.create_role(db, name="ops", scopes=["write"])
    role_assignments.add_role(db, [Target("bob")], "ops")
    result = roles.delete_role(db, "ops")
    assert result is not None
    assert result.ended_assignments == 1
    assert _live_assignments(db) == []
    assert user_permissions(db, "bob").scopes == ()
    [row] = _audit(db, "role.delete")
    assert row.changes is not None
    assert row.changes["ended_assignments"][0]["username"] == "bob"


def test_effective_permissions_union_sources_and_superuser(db: Database) -> None:
    _user(db, "bob")
    _user(db, "root", superuser=True)
    roles.create_role(db, name="reader", scopes=["read", "api_keys:read"])
    role_assignments.add_role(db, [Target("bob")], "reader")
    role_assignments.add_role(db, [Target("bob")], "key-manager", expires_in="2h")
    found = user_permissions(db, "bob")
    assert found.scopes == ("api_keys:*", "api_keys:read", "read")
    assert {s.scope: s.sources for s in found.sources}["api_keys:read"] == ("reader",)
    assert found.grants("api_keys:delete")
    assert found.grants("targets:read")
    assert not found.grants("targets:write")
    root = user_permissions(db, "root")
    assert root.scopes == ("*",)
    assert root.sources[0].sources == ("superuser",)


def test_narrowing_a_keys_scopes_to_its_owner() -> None:
    assert narrow_scopes(["*"], ["users:*"]) == ("users:*",)
    assert narrow_scopes(["targets:read"], ["read"]) == ("targets:read",)
    assert narrow_scopes(["targets:read", "write"], ["api_keys:*"]) == ("api_keys:write",)
    assert narrow_scopes(["read"], []) == ()


# -- concurrency -------------------------------------------------------------------------
def _race(settings: Settings, workers: int, work: Any) -> list[object]:
    """Run ``work(db, i)`` in ``workers`` threads released together, each its own Database."""
    barrier = threading.Barrier(workers)
    outcomes: list[object] = [None] * workers

    def run(i: int) -> None:
        database = Database(settings)
        try:
            barrier.wait()
            outcomes[i] = work(database, i)
        except VutfError as exc:
            outcomes[i] = exc
        finally:
            database.dispose()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_concurrent_assignments_leave_exactly_one(db: Database, settings: Settings) -> None:
    _user(db, "bob")
    outcomes = _race(
        settings, 8, lambda d, i: role_assignments.add_role(d, [Target("bob")], "viewer")
    )
    assert sum(isinstance(o, list) for o in outcomes) == 1
    assert all(isinstance(o, list | Conflict) for o in outcomes)
    assert _live_assignments(db) == [("bob", "viewer")]


def test_concurrent_assign_and_remove_end_with_one_or_none(
    db: Database, settings: Settings
) -> None:
    _user(db, "bob")

    def work(d: Database, i: int) -> object:
        if i % 2:
            return role_assignments.remove_role(d, [Target("bob")], "viewer", if_exists=True)
        return role_assignments.add_role(d, [Target("bob")], "viewer", if_not_exists=True)

    outcomes = _race(settings, 8, work)
    assert all(isinstance(o, list) for o in outcomes)
    assert _live_assignments(db) in ([], [("bob", "viewer")])

    def live_count(uow: UnitOfWork) -> int:
        statement = sa.select(sa.func.count()).select_from(UserRole).where(~UserRole.is_deleted)
        return int(uow.session.execute(statement).scalar_one())

    assert db.run(live_count, read_only=True) <= 1


def test_a_role_deleted_while_being_assigned_leaves_no_orphan(
    db: Database, settings: Settings
) -> None:
    for name in ("alice", "bob", "carol"):
        _user(db, name)
    roles.create_role(db, name="ops", scopes=["write"])

    def work(d: Database, i: int) -> object:
        if i == 0:
            return roles.delete_role(d, "ops")
        return role_assignments.add_role(d, [Target(("alice", "bob", "carol")[i - 1])], "ops")

    outcomes = _race(settings, 4, work)
    assert all(isinstance(o, list | NotFound | Conflict) or o is not None for o in outcomes)
    assert not any(isinstance(o, VutfError) and o.exit_code not in (3, 4) for o in outcomes)

    def orphans(uow: UnitOfWork) -> int:
        statement = (
            sa.select(sa.func.count())
            .select_from(UserRole)
            .join(Role, Role.id == UserRole.role_id)
            .where(~UserRole.is_deleted, Role.is_deleted)
        )
        return int(uow.session.execute(statement).scalar_one())

    assert db.run(orphans, read_only=True) == 0


def test_narrowed_scopes_grant_exactly_what_both_sides_grant() -> None:
    from vutf_cli.domain.validation import ALL_SCOPES, scope_grants

    for own in sorted(ALL_SCOPES):
        for held in sorted(ALL_SCOPES):
            narrowed = dict.fromkeys(narrow_scopes([own], [held]), True)
            for required in sorted(ALL_SCOPES):
                both = scope_grants({own: True}, required) and scope_grants({held: True}, required)
                assert scope_grants(narrowed, required) == both, (own, held, required)
