"""The Python API, ``vutf_cli.store`` (issue 13, item 5), on both backends.

* One path: a scenario run through :class:`Store` appends the very audit rows
  (action, status, subject, changes, actor) that the same scenario run
  through the ``vutf`` command line appends.
* Typed errors and frozen views; the schema is checked; the actor is explicit.
* Concurrency: one store shared by 8 threads, and a store inherited by forked
  processes, each call exact and every attempt on the record, the chain intact.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import re
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from tests.cli.conftest import invoke
from vutf_cli.db.engine import make_engine
from vutf_cli.db.models import AuditLog
from vutf_cli.settings import Settings
from vutf_cli.store import (
    Conflict,
    Denied,
    NotFound,
    SchemaOutdated,
    Store,
    UserView,
    Verification,
)

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "another horse battery staple"
ACTOR = "api-gateway"

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_PREFIX = re.compile(r"vutf_[0-9A-Za-z]{7}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?")


def open_store(url: str, actor: str = ACTOR) -> Store:
    return Store.from_url(url, actor=actor, argon2_profile="test")


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    with open_store(database_url) as opened:
        yield opened


def audit_rows(url: str) -> list[dict[str, Any]]:
    engine = make_engine(Settings(database_url=url))
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.select(AuditLog.__table__).order_by(AuditLog.seq))
            return [dict(row._mapping) for row in rows]
    finally:
        engine.dispose()


def comparable(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What must agree between two runs: everything but ids, prefixes, times and metadata."""

    def scrub(value: Any) -> str:
        text = str(value)
        return _TIME.sub("<time>", _PREFIX.sub("<prefix>", _UUID.sub("<id>", text)))

    return [
        (
            row["action"],
            row["status"],
            row["resource_type"],
            scrub(row["resource_id"]),
            row["user_id"] is not None,
            scrub(row["changes"]),
            scrub(row["error_message"]),
            row["actor"],
        )
        for row in rows
    ]


def chain_ok(url: str) -> None:
    result = invoke(["audit", "verify"], env={"VUTF_DATABASE_URL": url})
    assert result.exit_code == 0, result.stderr


# -- one path ---------------------------------------------------------------------------
def _cli_scenario(url: str) -> None:
    def vutf(*args: str, input: str | None = None, code: int = 0) -> Any:
        result = invoke(
            ["--actor", ACTOR, *args],
            input=input,
            env={"VUTF_DATABASE_URL": url, "VUTF_ARGON2_PROFILE": "test"},
        )
        assert result.exit_code == code, (args, result.stdout, result.stderr)
        return result

    vutf("users", "create", "alice", "--email", "alice@example.com", "--superuser",
         "--password-stdin", input=PASSWORD)  # fmt: skip
    vutf("users", "create", "bob", "--email", "bob@example.com", "--generate-password")
    vutf("users", "update", "alice", "--full-name", "Alice A")
    vutf("users", "update", "alice", "--email", "bob@example.com", code=4)
    vutf("users", "deactivate", "bob")
    vutf("users", "activate", "bob")
    vutf("users", "set-password", "alice", "--password-stdin", input=NEW_PASSWORD)
    key = vutf("keys", "create", "--user", "alice", "--name", "ci", "--scope", "targets:read",
               "--no-expiry", "--json").json()  # fmt: skip
    vutf("keys", "create", "--user", "alice", "--name", "ci", code=4)
    vutf("users", "check-password", "alice", "--password-stdin", input=NEW_PASSWORD)
    vutf("users", "check-password", "alice", "--password-stdin", input=PASSWORD, code=5)
    vutf("keys", "verify", input=key["key"])
    vutf("keys", "verify", "--require-scope", "users:write", input=key["key"], code=5)
    rotated = vutf("keys", "rotate", key["key_prefix"], "--json").json()
    vutf("keys", "revoke", rotated["key_prefix"], "--yes")
    vutf("users", "delete", "bob", "--yes")
    vutf("users", "delete", "bob", "--hard", "--yes")


def _store_scenario(store: Store) -> None:
    store.create_user("alice", "alice@example.com", password=PASSWORD, is_superuser=True)
    store.create_user("bob", "bob@example.com", generate_password=True)
    store.update_user("alice", full_name="Alice A")
    with pytest.raises(Conflict):
        store.update_user("alice", email="bob@example.com")
    store.deactivate_user("bob")
    store.activate_user("bob")
    store.set_password("alice", NEW_PASSWORD)
    key = store.create_key("alice", "ci", scopes=["targets:read"], no_expiry=True)
    with pytest.raises(Conflict):
        store.create_key("alice", "ci")
    store.authenticate("alice", NEW_PASSWORD)
    with pytest.raises(Denied):
        store.authenticate("alice", PASSWORD)
    store.verify_key(key.plaintext)
    with pytest.raises(Denied):
        store.verify_key(key.plaintext, required_scope="users:write")
    rotated = store.rotate_key(key.api_key.key_prefix)
    store.revoke_keys([rotated.api_key.key_prefix])
    store.delete_user("bob")
    store.delete_user("bob", hard=True)


def test_the_store_appends_the_audit_rows_the_command_line_appends(
    database_url: str, other_database_url: str
) -> None:
    _cli_scenario(database_url)
    with open_store(other_database_url) as store:
        _store_scenario(store)
    by_cli, by_store = audit_rows(database_url), audit_rows(other_database_url)
    assert len(by_store) == 18
    assert comparable(by_store) == comparable(by_cli)
    # The library's rows say who acted, and name no command line.
    assert {row["actor"] for row in by_store} == {ACTOR}
    assert all("command" not in row["metadata"] for row in by_store)
    assert all(row["metadata"]["command"] for row in by_cli)
    chain_ok(other_database_url)


# -- views, errors, actor ---------------------------------------------------------------
def test_views_are_frozen_and_refusals_are_typed(store: Store) -> None:
    created = store.create_user("carol", "carol@example.com", password=PASSWORD, is_superuser=True)
    user = store.authenticate("Carol@example.com", PASSWORD, ip="10.0.0.1", user_agent="ua/1")
    assert isinstance(user, UserView)
    assert user.id == created.user.id
    assert user.created_by == ACTOR
    with pytest.raises(dataclasses.FrozenInstanceError):
        user.username = "mallory"  # type: ignore[misc]
    issued = store.create_key("carol", "svc", scopes=["targets:read"])
    verified = store.verify_key(issued.plaintext, required_scope="targets:read", ip="10.0.0.2")
    assert isinstance(verified, Verification)
    assert (verified.username, verified.scopes) == ("carol", ("targets:read",))

    for attempt in (
        lambda: store.authenticate("carol", "wrong password here"),
        lambda: store.authenticate("nobody", PASSWORD),
        lambda: store.verify_key("vutf_not-a-key"),
        lambda: store.verify_key(issued.plaintext, required_scope="users:write"),
    ):
        with pytest.raises(Denied) as refused:
            attempt()
        assert refused.value.exit_code == 5
        assert issued.plaintext not in str(refused.value)
    with pytest.raises(NotFound):
        store.get_user("nobody")
    assert store.get_key(issued.api_key.key_prefix).id == issued.api_key.id
    assert [u.username for u in store.list_users()] == ["carol"]
    assert [k.name for k in store.list_keys(user="carol")] == ["svc"]

    attempts = ("user.login", "api_key.use")
    logins = [r for r in audit_rows(store_url(store)) if r["action"] in attempts]
    assert [(r["action"], r["status"], r["ip_address"], r["user_agent"]) for r in logins] == [
        ("user.login", "success", "10.0.0.1", "ua/1"),
        ("api_key.use", "success", "10.0.0.2", None),
        ("user.login", "failure", None, None),
        ("user.login", "failure", None, None),
        ("api_key.use", "failure", None, None),  # the malformed key was refused unrecorded
    ]


def store_url(store: Store) -> str:
    url: str = store._db.settings.database_url  # the test's own database
    return url


def test_the_actor_is_explicit_and_acting_as_shares_the_pool(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VUTF_DATABASE_URL", database_url)
    monkeypatch.setenv("VUTF_ACTOR", "from-environment")
    monkeypatch.setenv("VUTF_ARGON2_PROFILE", "test")
    with Store.from_settings() as store:
        assert store.actor == "from-environment"
        store.create_user("dave", "dave@example.com", password=PASSWORD)
        admin = store.acting_as("admin:erin")
        admin.deactivate_user("dave")
        admin.close()  # leaves the shared pool open
        assert store.get_user("dave").updated_by == "admin:erin"
        assert store.get_user("dave").created_by == "from-environment"
    assert [r["actor"] for r in audit_rows(database_url)] == ["from-environment", "admin:erin"]
    with pytest.raises(Exception, match="actor"):
        Store.from_url(database_url, actor="  ")


def test_a_schema_not_at_head_is_refused(empty_database_url: str) -> None:
    with open_store(empty_database_url) as store, pytest.raises(SchemaOutdated):
        store.get_user("anyone")


# -- concurrency ------------------------------------------------------------------------
def test_one_store_shared_by_eight_threads(store: Store, database_url: str) -> None:
    rounds = 15
    names = [f"user{n}" for n in range(8)]
    issued = {}
    for name in names:
        store.create_user(name, f"{name}@example.com", password=PASSWORD, is_superuser=True)
        issued[name] = store.create_key(name, "svc", scopes=["targets:read"])
    before = len(audit_rows(database_url))
    errors: list[BaseException] = []
    start = threading.Barrier(len(names))

    def worker(name: str) -> None:
        try:
            start.wait()
            for _ in range(rounds):
                assert store.verify_key(issued[name].plaintext).username == name
                assert store.authenticate(name, PASSWORD).username == name
                with pytest.raises(Denied):
                    store.authenticate(name, "not the password at all")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    rows = audit_rows(database_url)[before:]
    assert len(rows) == len(names) * rounds * 3
    by_user: dict[uuid.UUID | str | None, int] = {}
    for row in rows:
        by_user[row["user_id"]] = by_user.get(row["user_id"], 0) + 1
    assert sorted(by_user.values()) == [rounds * 3] * len(names)
    chain_ok(database_url)


def _child_verifies(store: Store, plaintext: str, times: int) -> None:
    for _ in range(times):
        store.verify_key(plaintext)


def test_a_store_inherited_by_forked_processes(store: Store, database_url: str) -> None:
    store.create_user("frank", "frank@example.com", password=PASSWORD, is_superuser=True)
    key = store.create_key("frank", "svc")
    store.verify_key(key.plaintext)  # the parent's pool now holds a connection
    before = len(audit_rows(database_url))
    context = multiprocessing.get_context("fork")
    children = [
        context.Process(target=_child_verifies, args=(store, key.plaintext, 10)) for _ in range(4)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=120)
        assert child.exitcode == 0
    # The parent's connections survived the children.
    assert store.verify_key(key.plaintext).username == "frank"
    rows = audit_rows(database_url)[before:]
    assert len(rows) == 41
    assert {(r["action"], r["status"]) for r in rows} == {("api_key.use", "success")}
    chain_ok(database_url)


def test_a_service_asks_what_a_user_may_do(store: Store, database_url: str) -> None:
    from tests.roles_support import grant_role_at

    store.create_user("erin", "erin@example.com", password=PASSWORD)
    assert store.user_permissions("erin").scopes == ()
    grant_role_at(database_url, "erin", "viewer")
    erin = store.user_permissions("erin@example.com")
    assert (erin.username, erin.is_superuser, erin.scopes) == ("erin", False, ("read",))
    assert [source.sources for source in erin.sources] == [("viewer",)]
    assert erin.grants("read")
    assert not erin.grants("write")
    store.create_user("root_user", "root@example.com", password=PASSWORD, is_superuser=True)
    assert store.user_permissions("root_user").grants("targets:write")
    with pytest.raises(NotFound):
        store.user_permissions("nobody")
