"""The least-privilege runtime role (`vutf db grant-runtime`), on the real PostgreSQL server.

As the superuser: a fresh migrated database, a LOGIN role (the server trusts
127.0.0.1), ``vutf db grant-runtime ROLE``.  Then, connected as that role:
every vutf command succeeds, and the audit log cannot be changed: UPDATE,
DELETE and TRUNCATE fail with insufficient_privilege (42501), the role may
not set ``session_replication_role``, and even with the append-only
triggers disabled by the superuser the privilege check still refuses.

Roles are cluster-wide: each test makes uniquely named roles and always
drops them (``DROP OWNED BY``; ``DROP ROLE``).  The commands run in-process
through the real entry point (the installed script is exercised by the
pgbouncer tests).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.postgres

PASSWORD = "correct horse battery staple"
RUNTIME = {
    "users": ["SELECT", "INSERT", "UPDATE", "DELETE"],
    "api_keys": ["SELECT", "INSERT", "UPDATE", "DELETE"],
    "audit_log": ["SELECT", "INSERT"],
    "roles": ["SELECT", "INSERT", "UPDATE"],
    "user_roles": ["SELECT", "INSERT", "UPDATE"],
    "alembic_version": ["SELECT"],
}
INSUFFICIENT_PRIVILEGE = "42501"


@pytest.fixture
def backend() -> str:
    """Roles and privileges exist on PostgreSQL only (overrides the two-backend fixture)."""
    return "postgresql"


# -- helpers --------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    args: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return f"vutf {' '.join(self.args)} -> {self.exit_code}\n{self.stdout}\n{self.stderr}"


def vutf(url: str, *args: str, input: str | None = None) -> Run:
    from tests.cli.conftest import invoke

    result = invoke(["--database-url", url, *args], input=input)
    return Run(tuple(args), result.exit_code, result.stdout, result.stderr)


def ok(url: str, *args: str, input: str | None = None) -> Run:
    run = vutf(url, *args, input=input)
    assert run.exit_code == 0, str(run)
    return run


def as_role(database_url: str, role: str) -> str:
    return make_url(database_url).set(username=role).render_as_string(hide_password=False)


def connect(url: str, *, autocommit: bool = False) -> Any:
    import psycopg2

    parts = make_url(url)
    conn = psycopg2.connect(
        host=parts.host,
        port=parts.port or 5432,
        dbname=parts.database,
        user=parts.username,
        connect_timeout=5,
    )
    conn.autocommit = autocommit
    return conn


def admin(database_url: str, *statements: str) -> None:
    conn = connect(database_url, autocommit=True)
    try:
        with conn.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        conn.close()


def admin_rows(
    database_url: str, query: str, params: tuple[Any, ...] = ()
) -> list[tuple[Any, ...]]:
    conn = connect(database_url, autocommit=True)
    try:
        with conn.cursor() as cursor:
            cursor.execute(query, params)
            return list(cursor.fetchall())
    finally:
        conn.close()


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def drop_roles(database_url: str, *roles: str) -> None:
    """DROP OWNED BY (in the test database) and DROP ROLE, whatever state they are in."""
    existing = [
        name
        for (name,) in admin_rows(
            database_url, "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (list(roles),)
        )
    ]
    failures = []
    for role in existing:  # each on its own: one failure must not leave the others behind
        try:
            admin(database_url, f"DROP OWNED BY {quoted(role)}", f"DROP ROLE {quoted(role)}")
        except Exception as exc:
            failures.append(f"{role}: {exc}")
    assert not failures, "roles left on the server: " + "; ".join(failures)


def unique_role(prefix: str = "vutf_rt") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_role(database_url: str) -> Iterator[Callable[..., str]]:
    """Create roles (LOGIN by default) that are dropped when the test ends."""
    made: list[str] = []

    def make(name: str | None = None, *, options: str = "LOGIN") -> str:
        role = name or unique_role()
        made.append(role)
        admin(database_url, f"CREATE ROLE {quoted(role)} {options}")
        return role

    try:
        yield make
    finally:
        drop_roles(database_url, *made)


@pytest.fixture
def forget_role(database_url: str) -> Iterator[Callable[[str], str]]:
    """Remember a role that the test lets vutf create, to drop it at the end."""
    names: list[str] = []

    def remember(name: str) -> str:
        names.append(name)
        return name

    try:
        yield remember
    finally:
        drop_roles(database_url, *names)


def privileges_of(database_url: str, role: str) -> dict[str, list[str]]:
    order = ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"]
    held: dict[str, list[str]] = {table: [] for table in RUNTIME}
    for table in RUNTIME:
        for privilege in order:
            ((granted,),) = admin_rows(
                database_url, "SELECT has_table_privilege(%s, %s, %s)", (role, table, privilege)
            )
            if granted:
                held[table].append(privilege)
    return held


def sqlstate_as(url: str, statement: str) -> str | None:
    """Run ``statement`` in its own transaction; the SQLSTATE it failed with (None: it worked)."""
    import psycopg2

    conn = connect(url)
    try:
        with conn.cursor() as cursor:
            cursor.execute(statement)
        conn.rollback()
        return None
    except psycopg2.Error as exc:
        return str(exc.pgcode)
    finally:
        conn.close()


def audit_rows(database_url: str, action: str) -> list[tuple[Any, ...]]:
    return admin_rows(
        database_url,
        "SELECT status, resource_id, actor FROM audit_log WHERE action = %s ORDER BY seq",
        (action,),
    )


def grant(database_url: str, role: str, *extra: str) -> Run:
    return vutf(database_url, "--yes", "--json", "db", "grant-runtime", role, *extra)


# -- every operation, as the runtime role -----------------------------------------------
def test_the_runtime_role_can_run_every_vutf_command(
    database_url: str, make_role: Callable[..., str], tmp_path: Path
) -> None:
    role = make_role()
    granted = grant(database_url, role)
    assert granted.exit_code == 0, str(granted)
    result = granted.json()
    assert {table: result[table] for table in RUNTIME} == RUNTIME
    assert result["role"] == role
    assert result["created"] is False
    assert result["can_login"] is True
    assert privileges_of(database_url, role) == RUNTIME
    assert audit_rows(database_url, "db.grant_runtime") == [("success", role, "tester@test")]

    url = as_role(database_url, role)
    # users
    ok(url, "users", "create", "alice", "--email", "alice@example.com", "--password-stdin",
       input=PASSWORD)  # fmt: skip
    ok(url, "users", "create", "bob", "--email", "bob@example.com", "--generate-password")
    assert {u["username"] for u in ok(url, "--json", "users", "list").json()} == {"alice", "bob"}
    ok(url, "users", "show", "alice")
    ok(url, "users", "update", "alice", "--full-name", "Alice Liddell")
    ok(url, "users", "set-password", "alice", "--password-stdin", input=PASSWORD + " 2")
    ok(url, "users", "check-password", "alice", "--password-stdin", input=PASSWORD + " 2")
    ok(url, "users", "deactivate", "alice")
    ok(url, "users", "activate", "alice")
    ok(url, "users", "verify", "alice")
    ok(url, "--yes", "users", "delete", "bob")
    ok(url, "users", "restore", "bob")
    ok(url, "--yes", "users", "delete", "bob", "--hard")
    exported = ok(url, "-o", "jsonl", "users", "export", "--include-hashes").stdout
    assert '"alice"' in exported
    assert "$argon2id$" in exported
    to_import = tmp_path / "users.jsonl"
    to_import.write_text(
        json.dumps({"username": "carol", "email": "carol@example.com", "password": PASSWORD}) + "\n"
    )
    ok(url, "users", "import", str(to_import))
    ok(url, "users", "show", "carol")
    # keys (a key never carries more than its owner holds)
    ok(url, "users", "add-role", "alice", "admin")
    created = ok(url, "--json", "keys", "create", "-u", "alice", "-n", "ci").json()
    prefix = created["key_prefix"]
    assert ok(url, "--json", "keys", "list").json()[0]["key_prefix"] == prefix
    ok(url, "keys", "show", prefix)
    ok(url, "keys", "verify", "--record-usage", input=created["key"])
    ok(url, "keys", "set-scopes", prefix, "-s", "read,targets:write")
    ok(url, "keys", "extend", prefix, "--expires-in", "30d")
    rotated = ok(url, "--json", "keys", "rotate", prefix).json()
    ok(url, "--yes", "keys", "revoke", rotated["key_prefix"])
    ok(url, "--yes", "keys", "prune-expired", "--older-than", "1d")
    assert (
        ok(url, "--json", "keys", "show", prefix).json()["usage_count"] == 1
    )  # --record-usage wrote
    # roles
    ok(url, "roles", "create", "deployer", "--scope", "targets:write")
    ok(url, "roles", "list")
    ok(url, "roles", "show", "deployer")
    ok(url, "roles", "update", "deployer", "--scope", "targets:write,sessions:write")
    ok(url, "users", "add-role", "alice", "carol", "deployer", "--expires-in", "7d")
    ok(url, "users", "add-role", "alice", "viewer", "--dry-run")
    ok(url, "roles", "members", "deployer")
    ok(url, "users", "show", "alice", "--permissions")
    ok(url, "users", "remove-role", "carol", "deployer")
    ok(url, "roles", "prune-expired")
    ok(url, "--yes", "roles", "delete", "deployer")
    ok(url, "roles", "restore", "deployer")
    # audit
    entries = ok(url, "--json", "audit", "list", "--limit", "1000").json()
    assert len(entries) > 15
    ok(url, "audit", "show", "1")
    assert len(ok(url, "audit", "export").stdout.splitlines()) == len(entries)
    assert ok(url, "--json", "audit", "verify").json()["ok"] is True
    ok(url, "audit", "head")
    ok(url, "audit", "stats")
    # db
    assert ok(url, "--json", "db", "current").json()["at_head"] is True
    assert ok(url, "--json", "db", "status").json()["users_rows"] == 2  # alice, carol
    ok(url, "db", "ping")
    ok(url, "db", "check")


# -- the audit log stays append-only for that role ----------------------------------------
TAMPERING = (
    "UPDATE audit_log SET actor = 'mallory'",
    "DELETE FROM audit_log",
    "TRUNCATE audit_log",
)


def test_the_runtime_role_cannot_alter_the_audit_log_even_without_the_triggers(
    database_url: str, make_role: Callable[..., str]
) -> None:
    role = make_role()
    assert grant(database_url, role).exit_code == 0
    url = as_role(database_url, role)
    ok(url, "users", "create", "alice", "--email", "alice@example.com", "--generate-password")
    before = admin_rows(database_url, "SELECT seq, actor, row_hash FROM audit_log ORDER BY seq")
    assert len(before) == 2  # the grant and the user

    for statement in TAMPERING:
        assert sqlstate_as(url, statement) == INSUFFICIENT_PRIVILEGE, statement
    # The triggers cannot be side-stepped by the role: setting the parameter
    # is a superuser's privilege, and so is touching the triggers (owner only).
    assert sqlstate_as(url, "SET session_replication_role = replica") == INSUFFICIENT_PRIVILEGE
    assert sqlstate_as(url, "ALTER TABLE audit_log DISABLE TRIGGER USER") == INSUFFICIENT_PRIVILEGE
    assert sqlstate_as(url, "DROP TRIGGER audit_log_append_only ON audit_log") == (
        INSUFFICIENT_PRIVILEGE
    )
    assert sqlstate_as(url, "GRANT UPDATE ON audit_log TO CURRENT_USER") is None  # only a warning
    assert "UPDATE" not in privileges_of(database_url, role)["audit_log"]
    # No DDL: no changes to vutf's tables (nor new tables: PUBLIC lost CREATE on
    # schema public in PostgreSQL 15).
    ((version,),) = admin_rows(database_url, "SELECT current_setting('server_version_num')::int")
    if version >= 150000:
        assert sqlstate_as(url, "CREATE TABLE shadow (id int)") == INSUFFICIENT_PRIVILEGE
    assert sqlstate_as(url, "ALTER TABLE users ADD COLUMN x int") == INSUFFICIENT_PRIVILEGE
    assert sqlstate_as(url, "UPDATE alembic_version SET version_num = 'x'") == (
        INSUFFICIENT_PRIVILEGE
    )

    # Even with the superuser switching the append-only triggers off, the
    # privilege check alone refuses the role.
    admin(database_url, "ALTER TABLE audit_log DISABLE TRIGGER USER")
    try:
        disabled = admin_rows(
            database_url,
            "SELECT tgname, tgenabled FROM pg_trigger "
            "WHERE tgrelid = 'audit_log'::regclass AND NOT tgisinternal",
        )
        assert disabled
        assert all(state == "D" for _, state in disabled)
        for statement in TAMPERING:
            assert sqlstate_as(url, statement) == INSUFFICIENT_PRIVILEGE, statement
    finally:
        admin(
            database_url,
            "ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_append_only",
            "ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_no_truncate",
            "ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_chain_link",
        )
    restored = admin_rows(
        database_url,
        "SELECT tgname, tgenabled FROM pg_trigger "
        "WHERE tgrelid = 'audit_log'::regclass AND NOT tgisinternal",
    )
    assert sorted(restored) == [
        ("audit_log_append_only", "A"),
        ("audit_log_chain_link", "A"),
        ("audit_log_no_truncate", "A"),
    ]
    after = admin_rows(database_url, "SELECT seq, actor, row_hash FROM audit_log ORDER BY seq")
    assert after == before
    assert ok(url, "--json", "audit", "verify").json()["ok"] is True


# -- exactness, scripts and refusals --------------------------------------------------------
def test_grant_leaves_exactly_the_runtime_set_on_a_role_that_had_everything(
    database_url: str, make_role: Callable[..., str]
) -> None:
    role = make_role()
    admin(
        database_url,
        f"GRANT ALL ON audit_log, users, api_keys, roles, user_roles, alembic_version TO {role}",
        f"GRANT UPDATE (actor) ON audit_log TO {role}",
    )
    assert privileges_of(database_url, role)["audit_log"] == [
        "SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER",
    ]  # fmt: skip
    granted = grant(database_url, role)
    assert granted.exit_code == 0, str(granted)
    assert privileges_of(database_url, role) == RUNTIME
    url = as_role(database_url, role)
    assert sqlstate_as(url, "UPDATE audit_log SET actor = 'x'") == INSUFFICIENT_PRIVILEGE
    # Running it again changes nothing.
    assert grant(database_url, role).exit_code == 0
    assert privileges_of(database_url, role) == RUNTIME


def test_no_hard_delete_leaves_out_delete(database_url: str, make_role: Callable[..., str]) -> None:
    role = make_role()
    granted = grant(database_url, role, "--no-hard-delete")
    assert granted.exit_code == 0, str(granted)
    assert granted.json()["hard_delete"] is False
    assert privileges_of(database_url, role)["users"] == ["SELECT", "INSERT", "UPDATE"]
    assert privileges_of(database_url, role)["api_keys"] == ["SELECT", "INSERT", "UPDATE"]
    url = as_role(database_url, role)
    ok(url, "users", "create", "alice", "--email", "alice@example.com", "--generate-password")
    ok(url, "--yes", "users", "delete", "alice")  # soft: an UPDATE
    hard = vutf(url, "--yes", "users", "delete", "alice", "--hard")
    assert hard.exit_code != 0
    assert "permission denied" in hard.stderr
    assert admin_rows(database_url, "SELECT count(*) FROM users") == [(1,)]


def test_the_sql_script_gives_the_same_privileges(
    database_url: str, make_role: Callable[..., str], forget_role: Callable[[str], str]
) -> None:
    role = make_role()
    script = vutf(database_url, "db", "grant-runtime", role, "--sql")
    assert script.exit_code == 0, str(script)
    sql = script.stdout
    assert sql.splitlines()[-1] == "COMMIT;"
    assert "BEGIN;" in sql
    assert "GRANT SELECT, INSERT ON TABLE public.audit_log" in sql
    assert "UPDATE ON TABLE public.audit_log" not in sql
    statements = [line for line in sql.splitlines() if not line.startswith("--")]
    assert not [line for line in statements if "CREATE" in line or "ALTER" in line]  # no DDL
    # Offline: nothing happened yet.
    assert privileges_of(database_url, role)["users"] == []
    admin(database_url, sql)
    assert privileges_of(database_url, role) == RUNTIME
    url = as_role(database_url, role)
    ok(url, "users", "create", "alice", "--email", "alice@example.com", "--generate-password")
    assert ok(url, "--json", "audit", "verify").json()["ok"] is True

    # --create adds a NOLOGIN role; the JSON form carries the script too.
    fresh = forget_role(unique_role())
    rendered = vutf(database_url, "--json", "db", "grant-runtime", fresh, "--create", "--sql")
    assert rendered.exit_code == 0, str(rendered)
    record = rendered.json()
    assert record["role"] == fresh
    assert record["dialect"] == "postgresql"
    assert f"CREATE ROLE {fresh} NOLOGIN;" in record["sql"]
    admin(database_url, record["sql"])
    assert privileges_of(database_url, fresh) == RUNTIME


def test_create_makes_a_nologin_role(database_url: str, forget_role: Callable[[str], str]) -> None:
    role = forget_role(unique_role())
    missing = grant(database_url, role)
    assert missing.exit_code == 3, str(missing)
    created = grant(database_url, role, "--create")
    assert created.exit_code == 0, str(created)
    assert created.json()["created"] is True
    assert created.json()["can_login"] is False
    assert "ALTER ROLE" in created.stderr  # the DBA's step is spelled out
    assert admin_rows(
        database_url, "SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = %s", (role,)
    ) == [(False, False)]
    assert privileges_of(database_url, role) == RUNTIME
    # A second run finds the role.
    assert grant(database_url, role, "--create").json()["created"] is False


def test_role_names_are_quoted_never_spliced_into_sql(
    database_url: str, forget_role: Callable[[str], str]
) -> None:
    role = forget_role(f'vutf rt"; DROP TABLE users; --%s {uuid.uuid4().hex[:6]}')
    script = vutf(database_url, "db", "grant-runtime", role, "--create", "--sql")
    assert script.exit_code == 0, str(script)
    assert f"TO {quoted(role)};" in script.stdout
    created = grant(database_url, role, "--create")
    assert created.exit_code == 0, str(created)
    assert admin_rows(
        database_url, "SELECT count(*) FROM pg_roles WHERE rolname = %s", (role,)
    ) == [(1,)]
    assert admin_rows(database_url, "SELECT to_regclass('users') IS NOT NULL") == [(True,)]
    assert privileges_of(database_url, role) == RUNTIME
    assert audit_rows(database_url, "db.grant_runtime")[-1] == ("success", role, "tester@test")


@pytest.mark.parametrize(
    "name",
    ["", "pg_monitor", "public", "none", "a\nb", "x" * 64, "é" * 32],
    ids=["empty", "pg_prefix", "public", "none", "newline", "64_bytes", "64_utf8_bytes"],
)
def test_invalid_role_names_are_refused_before_anything_runs(database_url: str, name: str) -> None:
    run = vutf(database_url, "--yes", "db", "grant-runtime", name)
    assert run.exit_code == 2, str(run)
    assert run.stdout == ""
    assert vutf(database_url, "db", "grant-runtime", name, "--sql").exit_code == 2
    assert audit_rows(database_url, "db.grant_runtime") == []


def test_sqlite_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "vutf.db"
    url = f"sqlite:///{path}"
    for args in (("--yes", "db", "grant-runtime", "app"), ("db", "grant-runtime", "app", "--sql")):
        run = vutf(url, *args)
        assert run.exit_code == 2, str(run)
        assert "PostgreSQL only" in run.stderr
    run = vutf(url, "--yes", "db", "revoke-runtime", "app")
    assert run.exit_code == 2
    assert "PostgreSQL only" in run.stderr
    assert not path.exists()  # never created, never migrated


def test_a_superuser_or_an_owner_is_refused(
    database_url: str, make_role: Callable[..., str]
) -> None:
    superuser = grant(database_url, "postgres")
    assert superuser.exit_code == 4, str(superuser)
    assert "superuser" in superuser.stderr
    owner_member = make_role()
    admin(database_url, f"GRANT postgres TO {owner_member}")
    refused = grant(database_url, owner_member)
    assert refused.exit_code == 4, str(refused)
    assert "owns" in refused.stderr
    assert [status for status, *_ in audit_rows(database_url, "db.grant_runtime")] == [
        "failure",
        "failure",
    ]


def test_more_through_a_membership_is_refused_and_nothing_changes(
    database_url: str, make_role: Callable[..., str]
) -> None:
    role = make_role()
    admin(database_url, f"GRANT pg_write_all_data TO {role}")
    refused = grant(database_url, role)
    assert refused.exit_code == 4, str(refused)
    assert "audit_log: UPDATE, DELETE" in refused.stderr
    # Rolled back: no SELECT was left behind.
    assert "SELECT" not in privileges_of(database_url, role)["users"]
    assert [status for status, *_ in audit_rows(database_url, "db.grant_runtime")] == ["failure"]


def test_only_an_owner_may_grant(database_url: str, make_role: Callable[..., str]) -> None:
    runtime, other = make_role(), make_role()
    assert grant(database_url, runtime).exit_code == 0
    refused = grant(as_role(database_url, runtime), other)
    assert refused.exit_code == 5, str(refused)
    assert "only their owner" in refused.stderr
    assert privileges_of(database_url, other)["users"] == []


def test_revoke_runtime_takes_it_all_back(database_url: str, make_role: Callable[..., str]) -> None:
    role = make_role()
    assert grant(database_url, role).exit_code == 0
    url = as_role(database_url, role)
    ok(url, "users", "list")
    revoked = vutf(database_url, "--yes", "--json", "db", "revoke-runtime", role)
    assert revoked.exit_code == 0, str(revoked)
    assert {table: revoked.json()[table] for table in RUNTIME} == {table: [] for table in RUNTIME}
    assert privileges_of(database_url, role) == {table: [] for table in RUNTIME}
    refused = vutf(url, "users", "list")
    assert refused.exit_code != 0
    assert "permission denied" in refused.stderr
    assert audit_rows(database_url, "db.revoke_runtime") == [("success", role, "tester@test")]
    script = vutf(database_url, "db", "revoke-runtime", role, "--sql")
    assert script.exit_code == 0
    assert "REVOKE ALL ON TABLE" in script.stdout
    # Without a terminal and without --yes nothing happens.
    assert grant(database_url, role).exit_code == 0
    unconfirmed = vutf(database_url, "db", "revoke-runtime", role)
    assert unconfirmed.exit_code == 2
    assert "--yes" in unconfirmed.stderr
    assert privileges_of(database_url, role) == RUNTIME
