"""The keys service against real SQLite and PostgreSQL databases.

Each call runs its own transaction(s) through ``Database.run``; what is
asserted is read back afterwards in a fresh transaction.  The CLI tests
(``tests/cli/test_keys_cli.py``) cover the command line; these cover the
decisions the service documents: defaults, rotation, audit rows, and that a
malformed key never reaches the database.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.engine import Engine

from tests.roles_support import grant_role_in
from vutf_cli.db.database import Database
from vutf_cli.db.models import ApiKey, AuditLog
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.errors import Conflict, Denied, InvalidInput, NotFound
from vutf_cli.security import api_keys as key_format
from vutf_cli.security.passwords import Passwords
from vutf_cli.services import (
    key_arguments,
    key_pruning,
    key_queries,
    key_revocation,
    key_verification,
    keys,
)
from vutf_cli.settings import Settings

NOW_TOLERANCE = timedelta(minutes=1)


@cache
def _password_hash() -> str:
    return Passwords("test").hash("correct horse battery staple")


def make_user(db: Database, username: str = "alice") -> uuid.UUID:
    def create(uow: UnitOfWork) -> uuid.UUID:
        user = uow.users.create_user(
            username=username, email=f"{username}@example.org", password_hash=_password_hash()
        )
        grant_role_in(uow, user)  # a key never carries more than its owner holds
        return user.id

    return db.run(create)


@pytest.fixture
def alice(db: Database) -> uuid.UUID:
    return make_user(db, "alice")


def audit(db: Database) -> list[AuditLog]:
    def read(uow: UnitOfWork) -> list[AuditLog]:
        rows = list(uow.session.scalars(select(AuditLog).order_by(AuditLog.seq)))
        uow.session.expunge_all()
        return rows

    return db.run(read, read_only=True)


def key_columns(db: Database, key_id: uuid.UUID) -> dict[str, Any]:
    def read(uow: UnitOfWork) -> dict[str, Any]:
        key = uow.keys.get_or_raise(key_id, include_deleted=True)
        return {prop.key: getattr(key, prop.key) for prop in ApiKey.__mapper__.column_attrs}

    return db.run(read, read_only=True)


def move_key(db: Database, key_id: uuid.UUID, **values: Any) -> None:
    db.run(
        lambda uow: uow.session.execute(update(ApiKey).where(ApiKey.id == key_id).values(values))
    )


def near(moment: datetime | None, expected: datetime) -> bool:
    return moment is not None and abs(moment - expected) < NOW_TOLERANCE


class StatementCounter:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.statements: list[str] = []

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.statements.append(statement)

    def __enter__(self) -> StatementCounter:
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)


# -- scopes (no database) ---------------------------------------------------------------
def test_parse_scopes_splits_commas_deduplicates_and_defaults() -> None:
    assert key_arguments.parse_scopes(["read,write", " targets:* ", "read"]) == {
        "read": True,
        "targets:*": True,
        "write": True,
    }
    assert key_arguments.parse_scopes([], default=keys.DEFAULT_SCOPES) == {"read": True}
    assert key_arguments.parse_scopes([","], default=["write"]) == {"write": True}
    with pytest.raises(InvalidInput, match="no scope given"):
        key_arguments.parse_scopes([" , "])
    with pytest.raises(InvalidInput, match="unknown scope 'reed'"):
        key_arguments.parse_scopes(["read,reed"])


# -- create -------------------------------------------------------------------------------
def test_create_applies_the_defaults_and_audits_without_secrets(
    db: Database, alice: uuid.UUID
) -> None:
    issued = keys.create_key(db, user="alice@example.org", name=" ci ", description="nightly")
    view = issued.api_key
    assert view.name == "ci"
    assert view.user_id == alice
    assert view.scopes == ("read",)
    assert near(view.expires_at, datetime.now(UTC) + keys.DEFAULT_EXPIRY)
    assert view.description == "nightly"
    assert issued.plaintext not in repr(issued)

    forever = keys.create_key(db, user=str(alice), name="forever", no_expiry=True).api_key
    assert forever.expires_at is None
    dated = keys.create_key(db, user="alice", name="dated", expires_at="2099-05-01").api_key
    assert dated.expires_at == datetime(2099, 5, 1, tzinfo=UTC)

    (row, *_) = audit(db)
    assert (row.action, row.status, row.resource_id, row.user_id) == (
        "api_key.create",
        "success",
        str(view.id),
        alice,
    )
    assert row.changes is not None
    assert row.changes["name"] == "ci"
    assert row.changes["scopes"] == ["read"]
    assert row.changes["key_prefix"] == issued.plaintext[:12]
    stored_hash = key_columns(db, view.id)["key_hash"]
    for value in (issued.plaintext, issued.plaintext[12:], stored_hash):
        assert value not in str(row.changes)
        assert value not in str(row.meta)


def test_create_refusals(db: Database, alice: uuid.UUID) -> None:
    with pytest.raises(InvalidInput, match="mutually exclusive"):
        keys.create_key(db, user="alice", name="ci", expires_in="1d", no_expiry=True)
    with pytest.raises(InvalidInput, match="not in the future"):
        keys.create_key(db, user="alice", name="ci", expires_at="yesterday")
    assert audit(db) == []  # invalid input is refused before the database

    def deactivate(uow: UnitOfWork) -> None:
        uow.users.set_active(uow.users.require("alice"), False)

    db.run(deactivate)
    with pytest.raises(Conflict, match="inactive"):
        keys.create_key(db, user="alice", name="ci")
    with pytest.raises(NotFound):
        keys.create_key(db, user="bob", name="ci")
    assert [(r.action, r.status) for r in audit(db)][-2:] == [
        ("api_key.create", "failure"),
        ("api_key.create", "failure"),
    ]
    assert db.run(lambda uow: uow.keys.count(include_deleted=True), read_only=True) == 0


# -- rotate -------------------------------------------------------------------------------
def test_rotate_keeps_owner_name_scopes_and_lifetime(db: Database, alice: uuid.UUID) -> None:
    old = keys.create_key(
        db, user="alice", name="ci", scopes=["targets:*", "read"], expires_in="30d", description="d"
    )
    # Pretend the key was issued 10 days ago: its lifetime (30 days) is kept.
    created = datetime.now(UTC) - timedelta(days=10)
    move_key(db, old.api_key.id, created_at=created, expires_at=created + timedelta(days=30))

    rotated = keys.rotate_key(db, old.api_key.key_prefix, grace="2h")
    new, replaced = rotated.api_key, rotated.replaced
    assert replaced is not None
    assert new.id != old.api_key.id
    assert (new.name, new.user_id, new.scopes, new.description) == (
        "ci",
        alice,
        ("read", "targets:*"),
        "d",
    )
    assert near(new.expires_at, datetime.now(UTC) + timedelta(days=30))
    assert replaced.id == old.api_key.id
    assert replaced.name.startswith("ci (rotated ")
    assert replaced.state == "active"
    assert near(replaced.expires_at, datetime.now(UTC) + timedelta(hours=2))

    # Both keys work during the grace period.
    for plaintext, key_id in ((old.plaintext, old.api_key.id), (rotated.plaintext, new.id)):
        assert key_verification.verify_key(db, plaintext).key_id == key_id

    (row,) = [r for r in audit(db) if r.action == "api_key.rotate"]
    assert row.resource_id == str(old.api_key.id)
    assert row.changes is not None
    assert row.changes["replaced_by"]["id"] == str(new.id)
    assert row.changes["name"] == {"old": "ci", "new": replaced.name}
    for secret in (old.plaintext, rotated.plaintext):
        assert secret not in str(row.changes)

    # A key rotated out is not rotated again; its replacement is, any number of times.
    with pytest.raises(Conflict, match="already rotated out"):
        keys.rotate_key(db, str(old.api_key.id))
    third = keys.rotate_key(db, str(new.id))
    fourth = keys.rotate_key(db, third.api_key.key_prefix)
    assert fourth.api_key.name == "ci"
    names = {v.name for v in key_queries.list_keys(db, state="all").items}
    assert len(names) == 4
    failures = [r for r in audit(db) if r.status == "failure"]
    assert [(r.action, r.resource_id) for r in failures] == [
        ("api_key.rotate", str(old.api_key.id))
    ]


def test_rotate_without_grace_ends_the_old_key_and_grace_never_extends_it(
    db: Database, alice: uuid.UUID
) -> None:
    first = keys.create_key(db, user="alice", name="ci", expires_in="1h")
    rotated = keys.rotate_key(db, str(first.api_key.id))
    assert rotated.replaced is not None
    assert rotated.replaced.state == "expired"
    with pytest.raises(Denied, match=r"^API key expired$"):
        key_verification.verify_key(db, first.plaintext)
    # The new key inherits the one-hour lifetime.
    assert near(rotated.api_key.expires_at, datetime.now(UTC) + timedelta(hours=1))

    # A grace period longer than the key's remaining life does not extend it.
    again = keys.rotate_key(db, rotated.api_key.key_prefix, grace="2d", no_expiry=True)
    assert again.replaced is not None
    assert again.replaced.expires_at == rotated.api_key.expires_at
    assert again.api_key.expires_at is None


def test_rotate_with_a_short_grace_expires_the_old_key_by_itself(
    db: Database, alice: uuid.UUID
) -> None:
    first = keys.create_key(db, user="alice", name="ci")
    keys.rotate_key(db, first.api_key.key_prefix, grace="1s")
    assert key_verification.verify_key(db, first.plaintext).name.startswith("ci (rotated ")
    # The old key ends when the grace period does, with nothing else happening.
    old = key_queries.show_key(db, first.api_key.key_prefix)
    assert old.expires_at is not None
    while datetime.now(UTC) <= old.expires_at:
        time.sleep(0.05)
    with pytest.raises(Denied, match=r"^API key expired$"):
        key_verification.verify_key(db, first.plaintext)


def test_a_whole_key_is_never_accepted_as_a_reference(db: Database, alice: uuid.UUID) -> None:
    issued = keys.create_key(db, user="alice", name="ci")
    for call in (
        lambda: key_queries.show_key(db, issued.plaintext),
        lambda: keys.rotate_key(db, issued.plaintext),
        lambda: key_revocation.revoke_keys(db, [issued.plaintext]),
        lambda: keys.extend_key(db, issued.plaintext, expires_in="1d"),
        lambda: keys.set_scopes(db, issued.plaintext, ["read"]),
    ):
        with pytest.raises(InvalidInput) as excinfo:
            call()
        assert issued.plaintext[12:] not in str(excinfo.value)
    assert [r.action for r in audit(db)] == ["api_key.create"]


# -- verify -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "plaintext",
    ["", "vutf_short", "VUTF_" + "a" * 38, "vutf_" + "a" * 32 + "zzzzzz"],
)
def test_a_malformed_key_sends_no_statement(db: Database, alice: uuid.UUID, plaintext: str) -> None:
    warm_up = keys.create_key(db, user="alice", name="ci").plaintext
    key_verification.verify_key(db, warm_up)
    with StatementCounter(db.engine) as counter, pytest.raises(Denied) as excinfo:
        key_verification.verify_key(db, plaintext, record_usage=True)
    assert counter.statements == []
    assert str(excinfo.value) in ("malformed API key", "API key checksum mismatch")


def test_a_malformed_key_never_builds_an_engine() -> None:
    unreachable = Database(
        Settings(database_url="postgresql://postgres@127.0.0.1:1/x", db_deadline=10.0)
    )
    started = time.monotonic()
    with pytest.raises(Denied, match="malformed"):
        key_verification.verify_key(unreachable, "vutf_not-a-key")
    assert time.monotonic() - started < 1
    # An unknown scope is a usage error, also found without the database.
    with pytest.raises(InvalidInput, match="unknown scope"):
        key_verification.verify_key(
            unreachable, key_format.generate_api_key(), required_scope="root"
        )
    # The Database never even built its engine.
    assert unreachable._engine is None


def test_verify_records_the_attempt_and_counts_only_a_recorded_use(
    db: Database, alice: uuid.UUID
) -> None:
    issued = keys.create_key(db, user="alice", name="ci", scopes=["read"])
    before = key_columns(db, issued.api_key.id)
    rows_before = len(audit(db))

    checked = key_verification.verify_key(db, issued.plaintext, required_scope="targets:read")
    assert checked.username == "alice"
    assert checked.usage_recorded is False
    assert key_columns(db, issued.api_key.id) == before
    assert len(audit(db)) == rows_before + 1
    attempt = audit(db)[-1]
    assert (attempt.action, attempt.status, attempt.user_id) == ("api_key.use", "success", alice)
    assert attempt.changes == {"usage_recorded": False}
    quiet = key_verification.verify_key(db, issued.plaintext, record=False)
    assert quiet.usage_recorded is False
    assert len(audit(db)) == rows_before + 1

    used = key_verification.verify_key(db, issued.plaintext, record_usage=True)
    assert used.usage_count == 1
    assert used.usage_recorded is True
    after = key_columns(db, issued.api_key.id)
    assert after["usage_count"] == 1
    assert near(after["last_used_at"], datetime.now(UTC))
    # A use is not an edit.
    assert after["version"] == before["version"]
    assert after["updated_at"] == before["updated_at"]
    last = audit(db)[-1]
    assert (last.action, last.status, last.resource_id) == (
        "api_key.use",
        "success",
        str(issued.api_key.id),
    )
    assert last.changes is not None
    assert last.changes["usage_count"] == 1

    key_revocation.revoke_keys(db, [issued.api_key.key_prefix])
    with pytest.raises(Denied, match=r"^API key revoked$"):
        key_verification.verify_key(db, issued.plaintext, record_usage=True)
    refused = audit(db)[-1]
    assert (refused.action, refused.status) == ("api_key.use", "failure")
    assert refused.error_message == "denied: API key revoked"
    assert refused.changes == {"reason": "revoked", "usage_recorded": False}
    assert refused.user_id == alice
    assert key_columns(db, issued.api_key.id)["usage_count"] == 1


# -- list ---------------------------------------------------------------------------------
def test_list_pages_without_gaps_and_filters_unused_keys(db: Database, alice: uuid.UUID) -> None:
    ids = [keys.create_key(db, user="alice", name=f"k{i}").api_key.id for i in range(5)]
    long_ago = datetime.now(UTC) - timedelta(days=100)
    move_key(db, ids[0], created_at=long_ago)  # never used, old
    # used recently
    move_key(db, ids[1], created_at=long_ago + timedelta(hours=1), last_used_at=datetime.now(UTC))
    move_key(db, ids[2], last_used_at=long_ago)  # used long ago

    seen: list[uuid.UUID] = []
    cursor: str | None = None
    while True:
        page = key_queries.list_keys(db, limit=2, cursor=cursor)
        seen += [view.id for view in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [ids[0], ids[1], ids[2], ids[3], ids[4]]

    unused = key_queries.list_keys(db, unused_for="90d").items
    assert {view.id for view in unused} == {ids[0], ids[2]}
    with pytest.raises(InvalidInput):
        key_queries.list_keys(db, state="gone")
    with pytest.raises(InvalidInput):
        key_queries.list_keys(db, limit=key_queries.MAX_LIST_LIMIT + 1)


# -- revoke, extend, set-scopes ----------------------------------------------------------------
def test_revoke_counts_a_key_named_twice_once(db: Database, alice: uuid.UUID) -> None:
    view = keys.create_key(db, user="alice", name="ci").api_key
    preview = key_revocation.preview_revoke(db, [view.key_prefix])
    assert [v.id for v in preview.revoked] == [view.id]
    assert key_columns(db, view.id)["revoked_at"] is None  # a preview changes nothing

    result = key_revocation.revoke_keys(db, [view.key_prefix, str(view.id)])
    assert [v.id for v in result.revoked] == [view.id]
    assert result.unchanged == ()
    assert [r.action for r in audit(db)].count("api_key.revoke") == 1

    with pytest.raises(NotFound):
        key_revocation.preview_revoke(db, ["vutf_Missing"])
    assert (audit(db)[-1].action, audit(db)[-1].status) == ("api_key.revoke", "failure")


def test_extend_can_revive_an_expired_key_but_not_a_revoked_one(
    db: Database, alice: uuid.UUID
) -> None:
    issued = keys.create_key(db, user="alice", name="ci")
    move_key(db, issued.api_key.id, expires_at=datetime.now(UTC) - timedelta(days=1))
    with pytest.raises(Denied, match="expired"):
        key_verification.verify_key(db, issued.plaintext)

    change = keys.extend_key(db, issued.api_key.key_prefix, expires_in="7d")
    assert near(change.previous_expires_at or datetime.min, datetime.now(UTC) - timedelta(days=1))
    assert near(change.api_key.expires_at, datetime.now(UTC) + timedelta(days=7))
    assert key_verification.verify_key(db, issued.plaintext).key_id == issued.api_key.id
    assert keys.extend_key(db, str(issued.api_key.id), no_expiry=True).api_key.expires_at is None

    with pytest.raises(InvalidInput, match="give the new expiry"):
        keys.extend_key(db, str(issued.api_key.id))
    key_revocation.revoke_keys(db, [str(issued.api_key.id)])
    with pytest.raises(Conflict, match="revoked"):
        keys.extend_key(db, str(issued.api_key.id), expires_in="1d")
    extends = [(r.status, r.changes) for r in audit(db) if r.action == "api_key.extend"]
    assert [status for status, _ in extends] == ["success", "success", "failure"]
    assert extends[1][1] is not None
    assert extends[1][1]["expires_at"]["new"] is None


def test_set_scopes_to_the_same_scopes_changes_nothing(db: Database, alice: uuid.UUID) -> None:
    view = keys.create_key(db, user="alice", name="ci", scopes=["read"]).api_key
    changed = keys.set_scopes(db, view.key_prefix, ["write,read"])
    assert changed.changed is True
    assert changed.previous_scopes == ("read",)
    assert changed.api_key.scopes == ("read", "write")
    same = keys.set_scopes(db, view.key_prefix, ["read", "write"])
    assert same.changed is False
    assert same.api_key.version == changed.api_key.version
    assert [r.action for r in audit(db)] == ["api_key.create", "api_key.set_scopes"]
    with pytest.raises(InvalidInput):
        keys.set_scopes(db, view.key_prefix, [])


# -- prune --------------------------------------------------------------------------------
def test_prune_soft_deletes_only_long_ended_keys_and_frees_their_names(
    db: Database, alice: uuid.UUID
) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=31)
    old_expired = keys.create_key(db, user="alice", name="old-expired").api_key
    old_revoked = keys.create_key(db, user="alice", name="old-revoked").api_key
    recent = keys.create_key(db, user="alice", name="recent").api_key
    active = keys.create_key(db, user="alice", name="active").api_key
    move_key(db, old_expired.id, expires_at=long_ago)
    key_revocation.revoke_keys(db, [str(old_revoked.id)])
    move_key(db, old_revoked.id, revoked_at=long_ago)
    move_key(db, recent.id, expires_at=datetime.now(UTC) - timedelta(days=2))

    plan = key_pruning.preview_prune(db)
    assert {v.id for v in plan.candidates} == {old_expired.id, old_revoked.id}
    assert near(plan.cutoff, datetime.now(UTC) - key_pruning.DEFAULT_PRUNE_AGE)

    result = key_pruning.prune_expired(db)
    assert result.pruned == 2
    assert set(result.key_ids) == {old_expired.id, old_revoked.id}
    for key_id in result.key_ids:
        assert key_columns(db, key_id)["is_deleted"] is True
    assert key_columns(db, recent.id)["is_deleted"] is False
    assert key_columns(db, active.id)["is_deleted"] is False
    assert key_queries.show_key(db, str(old_expired.id)).state == "deleted"

    rows = len(audit(db))
    assert key_pruning.prune_expired(db).pruned == 0
    assert len(audit(db)) == rows  # nothing changed, nothing audited
    # The pruned keys' names may be used again.
    assert keys.create_key(db, user="alice", name="old-expired").api_key.state == "active"
    assert key_pruning.prune_expired(db, older_than="1d").key_ids == (recent.id,)
    with pytest.raises(InvalidInput):
        key_pruning.prune_expired(db, older_than="0s")
