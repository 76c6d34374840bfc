"""The user services (vutf_cli.services.users and its user_* siblings) on SQLite and PostgreSQL.

What the command-line tests cannot reach easily: the process pool that
hashes imported passwords, an import that loses a race to a concurrent
registration (all or nothing), the change and its audit row committing
together, export reading lazily page by page, and the views the services
return.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from vutf_cli.db.database import Database
from vutf_cli.db.models import ApiKey, AuditLog, User
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.views import ApiKeyView, UserView
from vutf_cli.errors import Conflict, Denied, InvalidInput, NotFound, StaleVersion, VutfError
from vutf_cli.security.passwords import Passwords
from vutf_cli.services import user_passwords, user_queries, user_transfer
from vutf_cli.services import users as service
from vutf_cli.services.user_import import (
    PARALLEL_THRESHOLD,
    ImportConflict,
    ImportRejected,
    hash_passwords,
)
from vutf_cli.services.user_import.hashing import _hash_in_pool
from vutf_cli.settings import Settings

PASSWORD = "correct horse battery staple"


class Progress:
    """A real progress sink (what Terminal.progress is), recording what it was told."""

    def __init__(self, on_open: Callable[[str], None] | None = None) -> None:
        self.bars: list[tuple[int | None, str]] = []
        self.advanced: dict[str, int] = {}
        self._on_open = on_open

    @contextmanager
    def __call__(self, total: int | None, description: str) -> Iterator[Callable[[int], None]]:
        self.bars.append((total, description))
        self.advanced[description] = 0
        if self._on_open is not None:
            self._on_open(description)

        def advance(steps: int = 1) -> None:
            self.advanced[description] += steps

        yield advance


def audit(db: Database) -> list[AuditLog]:
    def read(uow: UnitOfWork) -> list[AuditLog]:
        rows = list(uow.session.scalars(sa.select(AuditLog).order_by(AuditLog.seq)))
        for row in rows:
            uow.session.expunge(row)
        return rows

    return db.run(read, read_only=True)


def actions(db: Database) -> list[tuple[str, str]]:
    return [(row.action, row.status) for row in audit(db)]


def count_users(db: Database) -> int:
    return db.run(lambda uow: uow.users.count(include_deleted=True), read_only=True)


def make(db: Database, username: str, **values: Any) -> UserView:
    return service.create_user(
        db, username=username, email=f"{username}@example.com", password=PASSWORD, **values
    ).user


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


# -- hashing ----------------------------------------------------------------------------
def test_process_pool_hashes_in_order() -> None:
    passwords = [f"{PASSWORD} number {i}" for i in range(PARALLEL_THRESHOLD + 4)]
    checker = Passwords("test")
    hashes = _hash_in_pool(passwords, "test", 15, 2, None)
    assert len(hashes) == len(passwords)
    for password, digest in zip(passwords, hashes, strict=True):
        assert checker.verify(digest, password)
    assert not checker.verify(hashes[0], passwords[1])


@pytest.mark.parametrize("count", [3, PARALLEL_THRESHOLD + 4])
def test_hash_passwords_reports_progress(count: int) -> None:
    passwords = [f"{PASSWORD} {i}" for i in range(count)]
    progress = Progress()
    hashes = hash_passwords(passwords, profile="test", min_length=15, workers=2, progress=progress)
    checker = Passwords("test")
    assert all(checker.verify(h, p) for h, p in zip(hashes, passwords, strict=True))
    assert all(Passwords.is_argon2id_hash(h) for h in hashes)
    assert progress.bars == [(count, "hashing passwords")]
    assert progress.advanced == {"hashing passwords": count}


# -- create -----------------------------------------------------------------------------
def test_create_returns_a_view_and_writes_one_audit_row(db: Database) -> None:
    created = service.create_user(
        db, username="Alice", email=" Alice@Example.com ", password=PASSWORD, full_name="A"
    )
    assert created.created is True
    assert created.password is None
    assert isinstance(created.user, UserView)
    assert (created.user.username, created.user.email) == ("Alice", "alice@example.com")
    rows = audit(db)
    assert [(r.action, r.status, r.resource_id, r.user_id) for r in rows] == [
        ("user.create", "success", str(created.user.id), created.user.id)
    ]
    assert rows[0].changes == {
        "username": "Alice",
        "email": "alice@example.com",
        "full_name": "A",
        "is_active": True,
        "is_superuser": False,
        "is_verified": False,
    }


def test_generated_password_meets_the_configured_minimum(settings: Settings) -> None:
    assert len(user_passwords.generate_password(15)) == 24
    assert len(user_passwords.generate_password(40)) == 40
    assert user_passwords.generate_password(15) != user_passwords.generate_password(15)
    db = Database(dataclasses.replace(settings, min_password_length=30))
    try:
        created = service.create_user(db, username="gen", email="gen@example.com", generate=True)
        assert created.password is not None
        assert len(created.password) == 30
        assert created.password.isalnum()
        assert user_passwords.check_password(db, "gen", created.password).id == created.user.id
    finally:
        db.dispose()


def test_create_needs_exactly_one_password_source(db: Database) -> None:
    with pytest.raises(InvalidInput):
        service.create_user(db, username="abc", email="a@example.com")
    with pytest.raises(InvalidInput):
        service.create_user(
            db, username="abc", email="a@example.com", password=PASSWORD, generate=True
        )
    assert count_users(db) == 0


def test_if_not_exists_lists_what_differs(db: Database) -> None:
    first = make(db, "bob", full_name="Bob")
    again = service.create_user(
        db,
        username="BOB",
        email="bob@elsewhere.example.com",
        password=PASSWORD,
        is_superuser=True,
        if_not_exists=True,
        full_name="Bob",
    )
    assert again.created is False
    assert again.user == first
    assert again.differences == ("email", "is_superuser")
    with pytest.raises(Conflict):  # another user holding the email is still a conflict
        service.create_user(
            db, username="bobby", email="bob@example.com", password=PASSWORD, if_not_exists=True
        )
    assert actions(db) == [("user.create", "success"), ("user.create", "failure")]


def refuse_audit_rows(db: Database, *refused: str) -> None:
    """Make the database itself refuse audit rows of these actions (a trigger, as a fault)."""
    names = ", ".join(f"'{action}'" for action in refused)
    if db.dialect == "postgresql":
        statements = [
            "CREATE FUNCTION vutf_test_refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$",
            "CREATE TRIGGER vutf_test_refuse BEFORE INSERT ON audit_log FOR EACH ROW "
            f"WHEN (NEW.action IN ({names})) EXECUTE FUNCTION vutf_test_refuse()",
        ]
    else:
        statements = [
            "CREATE TRIGGER vutf_test_refuse BEFORE INSERT ON audit_log "
            f"WHEN NEW.action IN ({names}) "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        ]
    with db.engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))


def test_change_and_audit_row_commit_together(db: Database) -> None:
    """An audit row that cannot be written takes its change down with it."""
    make(db, "kept")

    def key(uow: UnitOfWork) -> None:
        uow.keys.create_key(user=uow.users.require("kept"), name="k", permissions={"read": True})

    db.run(key)
    refuse_audit_rows(db, "user.update", "user.delete")
    with pytest.raises(VutfError, match="refused by the test"):
        service.update_user(db, "kept", full_name="Changed")
    with pytest.raises(VutfError, match="refused by the test"):
        service.delete_user(db, "kept")  # would also have revoked the key
    detail = user_queries.show_user(db, "kept", with_keys=True)
    assert detail.user.full_name is None
    assert detail.user.is_deleted is False
    assert detail.api_keys is not None
    assert [key.state for key in detail.api_keys] == ["active"]
    assert actions(db) == [("user.create", "success")]


# -- read -------------------------------------------------------------------------------
def test_list_pages_and_validates(db: Database) -> None:
    for name in ("dora", "dave", "dina"):
        make(db, name)
    first = user_queries.list_users(db, sort="username", limit=2)
    assert [u.username for u in first.items] == ["dave", "dina"]
    assert first.next_cursor is not None
    rest = user_queries.list_users(db, sort="username", limit=2, cursor=first.next_cursor)
    assert [u.username for u in rest.items] == ["dora"]
    assert rest.next_cursor is None
    for bad in ({"sort": "id"}, {"limit": 0}, {"limit": 100_001}, {"deleted": "some"}):
        with pytest.raises(InvalidInput):
            user_queries.list_users(db, **bad)
    assert user_queries.parse_sort("-email") == ("email", True)


def test_show_with_keys_leaves_deleted_keys_out(db: Database) -> None:
    user = make(db, "erin")

    def keys(uow: UnitOfWork) -> None:
        owner = uow.users.require("erin")
        uow.keys.create_key(user=owner, name="kept", permissions={"read": True})
        gone, _ = uow.keys.create_key(user=owner, name="gone", permissions={"write": True})
        uow.keys.delete(gone)

    db.run(keys)
    detail = user_queries.show_user(db, str(user.id), with_keys=True)
    assert detail.user == user
    assert detail.api_keys is not None
    assert [key.name for key in detail.api_keys] == ["kept"]
    assert isinstance(detail.api_keys[0], ApiKeyView)
    assert detail.api_keys[0].scopes == ("read",)
    assert user_queries.show_user(db, "erin").api_keys is None
    with pytest.raises(NotFound):
        user_queries.show_user(db, "nobody")


def test_check_password_records_each_attempt_and_says_the_same(db: Database) -> None:
    make(db, "finn")
    before = actions(db)
    assert user_passwords.check_password(db, "finn@example.com", PASSWORD).username == "finn"
    with pytest.raises(Denied) as wrong:
        user_passwords.check_password(db, "finn", PASSWORD + "!")
    with pytest.raises(Denied) as unknown:
        user_passwords.check_password(db, "nobody", PASSWORD + "!")
    assert wrong.value.message == unknown.value.message
    assert actions(db) == [
        *before,
        ("user.login", "success"),
        ("user.login", "failure"),
        ("user.login", "failure"),
    ]

    def last_login(uow: UnitOfWork) -> object:
        return uow.users.require("finn").last_login_at

    assert db.run(last_login, read_only=True) is None


# -- change -----------------------------------------------------------------------------
def test_update_pins_the_version_and_skips_no_ops(db: Database) -> None:
    user = make(db, "gail")
    with pytest.raises(StaleVersion):
        service.update_user(db, "gail", full_name="G", expected_version=user.version + 1)
    same = service.update_user(db, "gail", email="GAIL@example.com")
    assert same.changed is False
    assert same.user.version == user.version
    changed = service.update_user(db, "gail", full_name="Gail", expected_version=user.version)
    assert (changed.changed, changed.fields) == (True, ("full_name",))
    assert changed.user.version == user.version + 1
    with pytest.raises(InvalidInput):
        service.update_user(db, "gail")
    assert actions(db) == [
        ("user.create", "success"),
        ("user.update", "failure"),
        ("user.update", "success"),
    ]


def test_set_password_hashes_before_and_checks_strength(db: Database) -> None:
    make(db, "hugo")
    with pytest.raises(InvalidInput, match="too short"):
        user_passwords.set_password(db, "hugo", "short")
    view = user_passwords.set_password(db, "hugo", PASSWORD + " again")
    assert user_passwords.check_password(db, "hugo", PASSWORD + " again").id == view.id
    with pytest.raises(Denied):
        user_passwords.check_password(db, "hugo", PASSWORD)
    with pytest.raises(StaleVersion):
        user_passwords.set_password(db, "hugo", PASSWORD, expected_version=1)


def test_delete_revokes_keys_and_hard_delete_cascades(db: Database) -> None:
    user = make(db, "iris")

    def key(uow: UnitOfWork) -> None:
        uow.keys.create_key(user=uow.users.require("iris"), name="k", permissions={"read": True})

    db.run(key)
    soft = service.delete_user(db, "iris")
    assert (soft.hard, soft.api_keys, soft.user.is_deleted) == (False, 1, True)
    again = service.delete_user(db, "iris")  # already so: nothing written
    assert (again.changed, again.api_keys, again.user.is_deleted) == (False, 0, True)
    assert service.delete_user(db, "nobody", if_exists=True) is None
    hard = service.delete_user(db, str(user.id), hard=True)
    assert (hard.hard, hard.api_keys) == (True, 1)

    def remaining(uow: UnitOfWork) -> tuple[int, int]:
        users = uow.session.scalar(sa.select(sa.func.count()).select_from(User))
        keys = uow.session.scalar(sa.select(sa.func.count()).select_from(ApiKey))
        return int(users or 0), int(keys or 0)

    assert db.run(remaining, read_only=True) == (0, 0)


# -- export -----------------------------------------------------------------------------
def test_export_reads_lazily_page_by_page(db: Database) -> None:
    for i in range(7):
        make(db, f"user{i}")
    rows = user_transfer.export_users(db, batch_size=3)
    first = next(rows)
    assert first.username == "user0"
    make(db, "late")  # created after the export started: later pages still see it
    rest = [user.username for user in rows]
    assert rest == [f"user{i}" for i in range(1, 7)] + ["late"]

    hashed = list(user_transfer.export_users(db, include_hashes=True))
    assert all(isinstance(user, service.UserExport) for user in hashed)
    assert all(
        Passwords.is_argon2id_hash(user.password_hash or "")
        for user in hashed
        if isinstance(user, service.UserExport)
    )
    assert "password_hash" not in repr(hashed[0])
    with pytest.raises(InvalidInput):
        user_transfer.export_users(db, deleted="nope")


# -- import -----------------------------------------------------------------------------
def test_import_in_a_pool_reports_progress(db: Database) -> None:
    count = PARALLEL_THRESHOLD + 2
    data = jsonl(
        [
            {"username": f"pool{i}", "email": f"pool{i}@example.com", "password": f"{PASSWORD}{i}"}
            for i in range(count)
        ]
    )
    progress = Progress()
    report = user_transfer.import_users(db, data, progress=progress, workers=2)
    assert (report.created, report.to_create, report.format) == (count, count, "jsonl")
    assert progress.bars == [(count, "hashing passwords"), (count, "importing users")]
    assert progress.advanced == {"hashing passwords": count, "importing users": count}
    for i in (0, count - 1):
        assert (
            user_passwords.check_password(db, f"pool{i}", f"{PASSWORD}{i}").username == f"pool{i}"
        )
    rows = audit(db)
    assert [r.action for r in rows] == ["user.create"] * count + ["user.import"] + [
        "user.login"
    ] * 2
    rows = rows[:-2]
    assert all(r.changes is not None and r.changes["source"] == "import" for r in rows[:-1])
    assert rows[-1].changes == {
        "format": "jsonl",
        "source": "-",
        "rows": count,
        "created": count,
        "skipped": 0,
        "invalid": 0,
    }
    assert all(PASSWORD not in json.dumps(r.changes) for r in rows)


def test_import_losing_a_race_writes_nothing(db: Database) -> None:
    """A user registered between the check and the write: the whole import rolls back."""
    data = jsonl(
        [
            {"username": "first", "email": "first@example.com", "password": PASSWORD},
            {"username": "racer", "email": "racer@example.com", "password": PASSWORD},
        ]
    )

    def register_meanwhile(description: str) -> None:
        if description == "importing users":
            make(db, "racer")

    with pytest.raises(Conflict, match="already exists"):
        user_transfer.import_users(db, data, progress=Progress(register_meanwhile))
    assert [u.username for u in user_queries.list_users(db).items] == ["racer"]
    assert actions(db) == [("user.create", "success"), ("user.import", "failure")]


def test_import_problems_carry_line_numbers(db: Database) -> None:
    make(db, "taken")
    data = jsonl(
        [
            {"username": "fine", "email": "fine@example.com", "password": PASSWORD},
            {"username": "taken", "email": "t2@example.com", "password": PASSWORD},
        ]
    )
    with pytest.raises(ImportConflict) as conflict:
        user_transfer.import_users(db, data)
    assert [(p.line, p.message) for p in conflict.value.problems] == [
        (2, "user 'taken' already exists")
    ]
    with pytest.raises(ImportRejected) as rejected:
        user_transfer.import_users(db, data + b'{"username": "x", "email": "x@example.com"}\n')
    assert [p.line for p in rejected.value.problems] == [2, 3, 3]
    dry = user_transfer.import_users(db, data, dry_run=True, skip_existing=True)
    assert (dry.to_create, dry.skipped, dry.created, dry.dry_run) == (1, 1, 0, True)
    assert [u.username for u in user_queries.list_users(db).items] == ["taken"]
    # Only the refusal by conflict is on the record; dry runs and invalid files are not.
    assert actions(db) == [("user.create", "success"), ("user.import", "failure")]
