"""ApiKeyRepository against real SQLite and PostgreSQL databases.

Every test runs on both backends (the ``db`` fixture), each step in its own
unit of work through ``Database.run``, so what is asserted is what was
committed and read back, not what an identity map remembers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import threading
import uuid
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from vutf_cli.db.database import Database
from vutf_cli.db.models import ApiKey
from vutf_cli.db.repositories.api_keys import KeyUsage
from vutf_cli.db.types import utcnow
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.errors import Conflict, Denied, InvalidInput, NotFound
from vutf_cli.security import api_keys as key_format
from vutf_cli.security.passwords import Passwords
from vutf_cli.settings import Settings

READ_ONLY = {"read": True}


@cache
def _password_hash() -> str:
    return Passwords("test").hash("correct horse battery staple")


def make_user(db: Database, username: str = "alice", *, active: bool = True) -> uuid.UUID:
    def create(uow: UnitOfWork) -> uuid.UUID:
        user = uow.users.create_user(
            username=username,
            email=f"{username}@example.org",
            password_hash=_password_hash(),
            is_active=active,
        )
        return user.id

    return db.run(create)


def issue(
    db: Database,
    user_id: uuid.UUID,
    name: str = "ci",
    permissions: dict[str, bool] | None = None,
    **kwargs: Any,
) -> tuple[uuid.UUID, str]:
    """Create a key in its own transaction; (key id, plaintext)."""

    def create(uow: UnitOfWork) -> tuple[uuid.UUID, str]:
        user = uow.users.get_or_raise(user_id)
        key, plaintext = uow.keys.create_key(
            user=user,
            name=name,
            permissions=READ_ONLY if permissions is None else permissions,
            **kwargs,
        )
        return key.id, plaintext

    return db.run(create)


def load(db: Database, key_id: uuid.UUID) -> dict[str, Any]:
    """The committed columns of one key, read in a fresh transaction."""

    def read(uow: UnitOfWork) -> dict[str, Any]:
        key = uow.keys.get_or_raise(key_id, include_deleted=True)
        return {prop.key: getattr(key, prop.key) for prop in ApiKey.__mapper__.column_attrs}

    return db.run(read, read_only=True)


def key_count(db: Database) -> int:
    return db.run(lambda uow: uow.keys.count(include_deleted=True), read_only=True)


def with_pepper(db: Database, pepper: str | None) -> Database:
    settings: Settings = dataclasses.replace(db.settings, key_pepper=pepper)
    return Database(settings)


@pytest.fixture
def alice(db: Database) -> uuid.UUID:
    return make_user(db, "alice")


class StatementCounter:
    """Counts the statements an engine sends to the database."""

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


# -- creation -------------------------------------------------------------------
def test_create_returns_a_well_formed_key_whose_plaintext_is_stored_nowhere(
    db: Database, alice: uuid.UUID
) -> None:
    created = [issue(db, alice, name) for name in ("ci", "deploy", "backup")]

    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM api_keys")).all()
    assert len(rows) == 3
    for key_id, plaintext in created:
        assert key_format.is_well_formed(plaintext)
        stored = load(db, key_id)
        assert stored["key_prefix"] == plaintext[:12]
        assert stored["key_hash"] == hashlib.sha256(plaintext.encode()).hexdigest()
        secret_part = plaintext[12:]
        for row in rows:
            for value in row:
                assert plaintext not in str(value)
                assert secret_part not in str(value)


def test_create_records_owner_actor_and_normalized_permissions(
    db: Database, alice: uuid.UUID
) -> None:
    key_id, _ = issue(
        db,
        alice,
        "ci",
        {" users:read ": True, "read": True, "write": False},
        description="  nightly builds  ",
    )
    stored = load(db, key_id)
    assert stored["user_id"] == alice
    assert stored["permissions"] == {"read": True, "users:read": True}
    assert stored["description"] == "nightly builds"
    assert stored["created_by"] == "tester@test"
    assert stored["usage_count"] == 0
    assert stored["revoked_at"] is None
    assert stored["version"] == 1


def test_pepper_changes_the_digest_and_a_wrong_pepper_finds_nothing(
    db: Database, alice: uuid.UUID
) -> None:
    peppered = with_pepper(db, "pepper-one")
    other_pepper = with_pepper(db, "pepper-two")
    try:
        key_id, plaintext = issue(peppered, alice, "peppered")
        stored = load(db, key_id)
        expected = hmac.new(b"pepper-one", plaintext.encode(), hashlib.sha256).hexdigest()
        assert stored["key_hash"] == expected
        assert stored["key_hash"] != hashlib.sha256(plaintext.encode()).hexdigest()

        def lookup(database: Database) -> uuid.UUID | None:
            def find(uow: UnitOfWork) -> uuid.UUID | None:
                key = uow.keys.get_by_key(plaintext)
                return None if key is None else key.id

            return database.run(find, read_only=True)

        assert lookup(peppered) == key_id
        assert lookup(db) is None
        assert lookup(other_pepper) is None
        with pytest.raises(Denied, match="unknown API key"):
            other_pepper.run(lambda uow: uow.keys.authenticate_key(plaintext), read_only=True)
    finally:
        peppered.dispose()
        other_pepper.dispose()


def test_duplicate_name_per_user_conflicts_but_not_across_users_or_after_delete(
    db: Database, alice: uuid.UUID
) -> None:
    bob = make_user(db, "bob")
    first_id, _ = issue(db, alice, "ci")

    with pytest.raises(Conflict) as excinfo:
        issue(db, alice, "ci")
    assert str(excinfo.value) == "user 'alice' already has an API key named 'ci'"
    # Surrounding whitespace does not make a different name.
    with pytest.raises(Conflict):
        issue(db, alice, "  ci ")

    bob_key, _ = issue(db, bob, "ci")
    assert load(db, bob_key)["name"] == "ci"

    db.run(lambda uow: uow.keys.delete(uow.keys.get_or_raise(first_id)))
    again_id, _ = issue(db, alice, "ci")
    assert again_id != first_id
    assert load(db, first_id)["is_deleted"] is True
    assert load(db, again_id)["is_deleted"] is False


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"permissions": {"reed": True}}, "unknown scope 'reed'"),
        ({"permissions": {"targets:read": True, "bogus:*": False}}, "unknown scope 'bogus:"),
        ({"permissions": {"read": "yes"}}, "must be true or false"),
        ({"name": ""}, "must not be empty"),
        ({"name": "   "}, "must not be empty"),
        ({"name": "x" * 101}, "too long"),
        ({"name": "ci\x1b[31m"}, "U\\+001B"),
        ({"name": "ci\u202eevil"}, "U\\+202E"),
        ({"expires_at": datetime(2000, 1, 1, tzinfo=UTC)}, "in the future"),
        ({"expires_at": datetime(2999, 1, 1)}, "time zone"),  # naive on purpose
    ],
)
def test_create_refuses_invalid_input_and_writes_nothing(
    db: Database, alice: uuid.UUID, kwargs: dict[str, Any], message: str
) -> None:
    arguments: dict[str, Any] = {"name": "ci", "permissions": READ_ONLY, **kwargs}
    name = arguments.pop("name")
    permissions = arguments.pop("permissions")
    with pytest.raises(InvalidInput, match=message):
        issue(db, alice, name, permissions, **arguments)
    assert key_count(db) == 0


def test_a_name_of_exactly_100_characters_is_accepted(db: Database, alice: uuid.UUID) -> None:
    key_id, _ = issue(db, alice, "n" * 100)
    assert load(db, key_id)["name"] == "n" * 100


def test_create_refuses_inactive_and_deleted_owners(db: Database) -> None:
    sleepy = make_user(db, "sleepy", active=False)
    with pytest.raises(Conflict, match="user 'sleepy' is inactive"):
        issue(db, sleepy)

    gone = make_user(db, "gone")
    db.run(lambda uow: uow.users.delete(uow.users.get_or_raise(gone)))

    def create_for_deleted(uow: UnitOfWork) -> None:
        user = uow.users.get_or_raise(gone, include_deleted=True)
        uow.keys.create_key(user=user, name="ci", permissions=READ_ONLY)

    with pytest.raises(Conflict, match="user 'gone' is deleted"):
        db.run(create_for_deleted)
    assert key_count(db) == 0


# -- lookup and authentication -----------------------------------------------------
def _tampered(plaintext: str) -> str:
    """The key with its last checksum character changed."""
    last = plaintext[-1]
    return plaintext[:-1] + ("A" if last != "A" else "B")


def test_malformed_keys_are_rejected_before_any_query(db: Database, alice: uuid.UUID) -> None:
    _, plaintext = issue(db, alice)
    bad_keys = {
        "": "malformed API key",
        "vutf_short": "malformed API key",
        "x" * 43: "malformed API key",
        plaintext + "0": "malformed API key",
        f" {plaintext}": "malformed API key",
        _tampered(plaintext): "checksum",
    }

    def attempt(uow: UnitOfWork) -> tuple[list[str], list[str]]:
        with StatementCounter(db.engine) as counter:
            for bad, reason in bad_keys.items():
                with pytest.raises(Denied, match=reason):
                    uow.keys.get_by_key(bad)
                with pytest.raises(Denied, match=reason):
                    uow.keys.authenticate_key(bad)
        quiet = counter.statements
        with StatementCounter(db.engine) as counter:
            assert uow.keys.get_by_key(key_format.generate_api_key()) is None
        return quiet, counter.statements

    quiet, control = db.run(attempt, read_only=True)
    assert quiet == []
    # The listener does see statements: a well-formed key is looked up.
    assert any("api_keys" in statement for statement in control)


def test_get_by_key_finds_the_key_and_hides_deleted_ones(db: Database, alice: uuid.UUID) -> None:
    key_id, plaintext = issue(db, alice)

    def found(uow: UnitOfWork) -> uuid.UUID | None:
        key = uow.keys.get_by_key(plaintext)
        return None if key is None else key.id

    assert db.run(found, read_only=True) == key_id
    db.run(lambda uow: uow.keys.delete(uow.keys.get_or_raise(key_id)))
    assert db.run(found, read_only=True) is None

    def found_deleted(uow: UnitOfWork) -> uuid.UUID | None:
        key = uow.keys.get_by_key(plaintext, include_deleted=True)
        return None if key is None else key.id

    assert db.run(found_deleted, read_only=True) == key_id


def test_authenticate_key_accepts_a_good_key_and_loads_its_owner(
    db: Database, alice: uuid.UUID
) -> None:
    key_id, plaintext = issue(db, alice, permissions={"targets:*": True})

    def authenticate(uow: UnitOfWork) -> tuple[uuid.UUID, str]:
        key = uow.keys.authenticate_key(plaintext, required_scope="targets:write")
        return key.id, key.owner_username

    assert db.run(authenticate, read_only=True) == (key_id, "alice")


def test_authenticate_key_denies_with_a_precise_reason(db: Database, alice: uuid.UUID) -> None:
    start = utcnow()

    def denial(plaintext: str, **kwargs: Any) -> str:
        with pytest.raises(Denied) as excinfo:
            db.run(lambda uow: uow.keys.authenticate_key(plaintext, **kwargs), read_only=True)
        return str(excinfo.value)

    assert denial(key_format.generate_api_key()) == "unknown API key"

    _, revoked = issue(db, alice, "revoked")
    db.run(lambda uow: uow.keys.revoke(uow.keys.resolve(revoked)))
    assert denial(revoked) == "API key revoked"

    _, expiring = issue(db, alice, "expiring", expires_at=start + timedelta(hours=1))
    db.run(lambda uow: uow.keys.authenticate_key(expiring), read_only=True)
    assert denial(expiring, now=start + timedelta(hours=1)) == "API key expired"
    assert denial(expiring, now=start + timedelta(days=1)) == "API key expired"

    _, deleted = issue(db, alice, "deleted")
    db.run(lambda uow: uow.keys.delete(uow.keys.resolve(deleted)))
    assert denial(deleted) == "API key deleted"

    _, narrow = issue(db, alice, "narrow", {"read": True})
    assert denial(narrow, required_scope="write") == "API key lacks scope 'write'"
    assert denial(narrow, required_scope="users:delete") == "API key lacks scope 'users:delete'"

    bob = make_user(db, "bob")
    _, bobs = issue(db, bob, "bobs")
    db.run(lambda uow: uow.users.set_active(uow.users.get_or_raise(bob), False))
    assert denial(bobs) == "owner inactive"

    carol = make_user(db, "carol")
    _, carols = issue(db, carol, "carols")
    db.run(lambda uow: uow.users.delete(uow.users.get_or_raise(carol)))
    assert denial(carols) == "owner deleted"


# -- resolving references -------------------------------------------------------------
def test_resolve_by_id_by_prefix_and_by_whole_key(db: Database, alice: uuid.UUID) -> None:
    key_id, plaintext = issue(db, alice)
    other_id, _ = issue(db, alice, "other")

    def resolved(ident: str, **kwargs: Any) -> uuid.UUID:
        return db.run(lambda uow: uow.keys.resolve(ident, **kwargs).id, read_only=True)

    assert resolved(str(key_id)) == key_id
    assert resolved(str(key_id).upper()) == key_id
    assert resolved(plaintext[:12]) == key_id
    assert resolved(plaintext) == key_id
    assert resolved(str(other_id)) == other_id

    with pytest.raises(NotFound):
        resolved(str(uuid.uuid4()))
    with pytest.raises(NotFound):
        resolved(key_format.generate_api_key())
    with pytest.raises(InvalidInput, match="at least the first 8"):
        resolved("vutf_ab")
    with pytest.raises(InvalidInput):
        resolved("abcdefghijkl")
    with pytest.raises(InvalidInput):
        resolved(plaintext[:20])

    db.run(lambda uow: uow.keys.delete(uow.keys.get_or_raise(key_id)))
    with pytest.raises(NotFound):
        resolved(plaintext[:12])
    with pytest.raises(NotFound):
        resolved(str(key_id))
    assert resolved(plaintext[:12], include_deleted=True) == key_id


def test_resolve_reports_ambiguous_prefixes(db: Database, alice: uuid.UUID) -> None:
    ids = [issue(db, alice, f"key{i}")[0] for i in range(3)]
    # Real prefixes are random; give three keys chosen ones to collide on.
    prefixes = ["vutf_AAAA1234", "vutf_AAAA5678", "vutfxAAAA999"]

    def set_prefixes(uow: UnitOfWork) -> None:
        for key_id, prefix in zip(ids, prefixes, strict=True):
            uow.keys.update(uow.keys.get_or_raise(key_id), key_prefix=prefix[:12])

    db.run(set_prefixes)

    def resolved(ident: str) -> uuid.UUID:
        return db.run(lambda uow: uow.keys.resolve(ident).id, read_only=True)

    with pytest.raises(Conflict) as excinfo:
        resolved("vutf_AAAA")
    assert "ambiguous key prefix" in str(excinfo.value)
    assert "matches 2 keys" in str(excinfo.value)
    assert resolved("vutf_AAAA1") == ids[0]
    assert resolved("vutf_AAAA5") == ids[1]

    # '_' is matched literally, not as a LIKE wildcard.
    def by_prefix(prefix: str) -> set[uuid.UUID]:
        return db.run(lambda uow: {k.id for k in uow.keys.get_by_prefix(prefix)}, read_only=True)

    assert by_prefix("vutf_AAAA") == {ids[0], ids[1]}
    assert by_prefix("vutf%AAAA") == set()
    assert by_prefix("vutfxAAAA") == {ids[2]}


def test_list_for_user_is_per_user_and_hides_deleted(db: Database, alice: uuid.UUID) -> None:
    bob = make_user(db, "bob")
    first, _ = issue(db, alice, "first")
    second, _ = issue(db, alice, "second")
    issue(db, bob, "bobs")
    db.run(lambda uow: uow.keys.delete(uow.keys.get_or_raise(first)))

    def names(**kwargs: Any) -> list[str]:
        return db.run(
            lambda uow: [k.name for k in uow.keys.list_for_user(alice, **kwargs)],
            read_only=True,
        )

    assert names() == ["second"]
    assert sorted(names(include_deleted=True)) == ["first", "second"]
    assert load(db, second)["user_id"] == alice


# -- state changes --------------------------------------------------------------------
def test_revoke_is_idempotent(db: Database, alice: uuid.UUID) -> None:
    key_id, _ = issue(db, alice)
    assert db.run(lambda uow: uow.keys.revoke(uow.keys.get_or_raise(key_id))) is True
    after_first = load(db, key_id)
    assert after_first["revoked_at"] is not None
    assert after_first["version"] == 2

    assert db.run(lambda uow: uow.keys.revoke(uow.keys.get_or_raise(key_id))) is False
    after_second = load(db, key_id)
    assert after_second["version"] == 2
    assert after_second["revoked_at"] == after_first["revoked_at"]
    assert after_second["updated_at"] == after_first["updated_at"]


def test_revoke_many_counts_new_revocations(db: Database, alice: uuid.UUID) -> None:
    bob = make_user(db, "bob")
    ids = [issue(db, alice, f"key{i}")[0] for i in range(4)]
    bobs, _ = issue(db, bob, "bobs")
    db.run(lambda uow: uow.keys.revoke(uow.keys.get_or_raise(ids[0])))

    def revoke_first_three(uow: UnitOfWork) -> int:
        return uow.keys.revoke_many([uow.keys.get_or_raise(i) for i in ids[:3]])

    assert db.run(revoke_first_three) == 2

    def revoke_alices(uow: UnitOfWork) -> int:
        return uow.keys.revoke_many(uow.keys.list_for_user(alice))

    assert db.run(revoke_alices) == 1
    assert db.run(revoke_alices) == 0
    assert all(load(db, i)["revoked_at"] is not None for i in ids)
    assert load(db, bobs)["revoked_at"] is None


def test_set_expiry(db: Database, alice: uuid.UUID) -> None:
    key_id, _ = issue(db, alice)
    later = utcnow() + timedelta(days=30)
    db.run(lambda uow: uow.keys.set_expiry(uow.keys.get_or_raise(key_id), later))
    assert load(db, key_id)["expires_at"] == later

    with pytest.raises(InvalidInput, match="future"):
        db.run(
            lambda uow: uow.keys.set_expiry(
                uow.keys.get_or_raise(key_id), utcnow() - timedelta(seconds=1)
            )
        )
    assert load(db, key_id)["expires_at"] == later

    db.run(lambda uow: uow.keys.set_expiry(uow.keys.get_or_raise(key_id), None))
    assert load(db, key_id)["expires_at"] is None

    db.run(lambda uow: uow.keys.revoke(uow.keys.get_or_raise(key_id)))
    with pytest.raises(Conflict, match="revoked"):
        db.run(lambda uow: uow.keys.set_expiry(uow.keys.get_or_raise(key_id), later))

    deleted_id, _ = issue(db, alice, "deleted")
    db.run(lambda uow: uow.keys.delete(uow.keys.get_or_raise(deleted_id)))
    with pytest.raises(Conflict, match="deleted"):
        db.run(
            lambda uow: uow.keys.set_expiry(
                uow.keys.get_or_raise(deleted_id, include_deleted=True), later
            )
        )


def test_state_condition_partitions_keys(db: Database, alice: uuid.UUID) -> None:
    now = utcnow()
    active, _ = issue(db, alice, "active")
    active_later, _ = issue(db, alice, "active-later", expires_at=now + timedelta(days=1))
    expired, _ = issue(db, alice, "expired", expires_at=now + timedelta(minutes=1))
    revoked, _ = issue(db, alice, "revoked")
    deleted, _ = issue(db, alice, "deleted")
    db.run(lambda uow: uow.keys.revoke(uow.keys.get_or_raise(revoked)))
    db.run(lambda uow: uow.keys.delete(uow.keys.get_or_raise(deleted)))
    at = now + timedelta(hours=1)

    def in_state(state: str) -> set[uuid.UUID]:
        def query(uow: UnitOfWork) -> set[uuid.UUID]:
            condition = uow.keys.state_condition(state, at)
            page = uow.keys.keyset(where=[condition], include_deleted=True, limit=100)
            return {k.id for k in page.items}

        return db.run(query, read_only=True)

    assert in_state("active") == {active, active_later}
    assert in_state("expired") == {expired}
    assert in_state("revoked") == {revoked}
    assert in_state("deleted") == {deleted}
    with pytest.raises(InvalidInput, match="unknown key state"):
        in_state("dormant")


def test_update_permissions(db: Database, alice: uuid.UUID) -> None:
    key_id, _ = issue(db, alice)
    db.run(
        lambda uow: uow.keys.update_permissions(
            uow.keys.get_or_raise(key_id), {"users:*": True, "read": True}
        )
    )
    stored = load(db, key_id)
    assert stored["permissions"] == {"read": True, "users:*": True}
    assert stored["version"] == 2
    with pytest.raises(InvalidInput, match="unknown scope"):
        db.run(
            lambda uow: uow.keys.update_permissions(uow.keys.get_or_raise(key_id), {"root": True})
        )
    assert load(db, key_id)["permissions"] == {"read": True, "users:*": True}


@pytest.mark.parametrize(
    ("granted", "required", "expected"),
    [
        ({"admin": True}, "users:delete", True),
        ({"admin": True}, "write", True),
        ({"*": True}, "api_keys:write", True),
        ({"users:*": True}, "users:read", True),
        ({"users:*": True}, "users:delete", True),
        ({"users:*": True}, "targets:read", False),
        ({"read": True}, "targets:read", True),
        ({"read": True}, "read", True),
        ({"read": True}, "targets:write", False),
        ({"write": True}, "read", False),
        ({"write": True}, "targets:read", False),
        ({"targets:read": True}, "read", False),
        ({"targets:read": True}, "targets:read", True),
    ],
)
def test_has_permission_on_stored_keys(
    db: Database,
    alice: uuid.UUID,
    granted: dict[str, bool],
    required: str,
    expected: bool,
) -> None:
    key_id, plaintext = issue(db, alice, permissions=granted)

    def check(uow: UnitOfWork) -> bool:
        return uow.keys.has_permission(uow.keys.get_or_raise(key_id), required)

    assert db.run(check, read_only=True) is expected
    if expected:
        db.run(
            lambda uow: uow.keys.authenticate_key(plaintext, required_scope=required),
            read_only=True,
        )
    else:
        with pytest.raises(Denied, match="lacks scope"):
            db.run(
                lambda uow: uow.keys.authenticate_key(plaintext, required_scope=required),
                read_only=True,
            )


# -- usage -----------------------------------------------------------------------------
def test_record_usage_counts_without_making_an_edit(db: Database, alice: uuid.UUID) -> None:
    key_id, _ = issue(db, alice)
    before = load(db, key_id)
    moment = utcnow()

    def use(uow: UnitOfWork) -> KeyUsage:
        return uow.keys.record_usage(key_id, ip="2001:DB8::1", now=moment)

    # The new counters, as stored.
    assert db.run(use) == (1, moment, "2001:db8::1")
    after = load(db, key_id)
    assert after["usage_count"] == 1
    assert after["last_used_at"] == moment
    assert after["last_used_ip"] == "2001:db8::1"
    assert after["version"] == before["version"]
    assert after["updated_at"] == before["updated_at"]
    assert after["updated_by"] == before["updated_by"]

    with pytest.raises(InvalidInput, match="invalid IP address"):
        db.run(lambda uow: uow.keys.record_usage(key_id, ip="1.2.3"))
    assert load(db, key_id)["usage_count"] == 1


def test_record_usage_is_atomic_under_concurrency(db: Database, alice: uuid.UUID) -> None:
    key_id, _ = issue(db, alice)
    threads_count, calls = 4, 25
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads_count)

    def use_once(uow: UnitOfWork) -> None:
        uow.keys.record_usage(key_id, ip="192.0.2.7")

    def worker() -> None:
        try:
            barrier.wait()
            for _ in range(calls):
                db.run(use_once)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    stored = load(db, key_id)
    assert stored["usage_count"] == threads_count * calls
    assert stored["version"] == 1


# -- expiry ----------------------------------------------------------------------------
def test_list_expired_with_older_than_and_revoked(db: Database, alice: uuid.UUID) -> None:
    t0 = utcnow()
    soon, _ = issue(db, alice, "soon", expires_at=t0 + timedelta(hours=1))
    later, _ = issue(db, alice, "later", expires_at=t0 + timedelta(days=10))
    revoked, _ = issue(db, alice, "revoked")
    issue(db, alice, "forever")
    gone, _ = issue(db, alice, "gone", expires_at=t0 + timedelta(hours=1))
    db.run(lambda uow: uow.keys.revoke(uow.keys.get_or_raise(revoked), now=t0 + timedelta(hours=2)))
    db.run(lambda uow: uow.keys.delete(uow.keys.get_or_raise(gone)))

    def expired(**kwargs: Any) -> set[uuid.UUID]:
        return db.run(
            lambda uow: {k.id for k in uow.keys.list_expired(**kwargs)},
            read_only=True,
        )

    at = t0 + timedelta(days=3)
    assert expired(now=t0) == set()
    assert expired(now=at) == {soon}
    assert expired(now=at, include_revoked=True) == {soon, revoked}
    assert expired(now=at, older_than=timedelta(days=2), include_revoked=True) == {soon, revoked}
    # soon expired 2d23h before `at`, revoked 2d22h before it.
    window = timedelta(days=2, hours=22, minutes=30)
    assert expired(now=at, older_than=window, include_revoked=True) == {soon}
    assert expired(now=at, older_than=timedelta(days=3), include_revoked=True) == set()
    assert expired(now=t0 + timedelta(days=11)) == {soon, later}
    # Without `now`, the clock is used: nothing has expired yet.
    assert expired() == set()


def test_expiry_round_trips_timezone_aware(db: Database, alice: uuid.UUID) -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    expires = datetime(2999, 3, 4, 5, 6, 7, 891234, tzinfo=india)
    key_id, _ = issue(db, alice, expires_at=expires)
    db.run(lambda uow: uow.keys.revoke(uow.keys.get_or_raise(key_id)))
    db.run(lambda uow: uow.keys.record_usage(key_id))

    stored = load(db, key_id)
    assert stored["expires_at"] == expires
    assert stored["expires_at"].utcoffset() == timedelta(0)
    assert stored["expires_at"].microsecond == 891234
    for column in ("created_at", "updated_at", "revoked_at", "last_used_at"):
        assert stored[column].tzinfo is not None, column
        assert stored[column].utcoffset() == timedelta(0), column
