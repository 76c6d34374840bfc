"""`vutf roles …`, `vutf users add-role | remove-role`, `vutf users show --permissions`
through the real entry point, on SQLite and PostgreSQL: stdout, stderr and exit codes."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from tests.cli.conftest import RunCli

PASSWORD = "correct horse battery staple"


def _ok(result: object) -> None:
    assert result.exit_code == 0, (result.stdout, result.stderr)  # type: ignore[attr-defined]


@pytest.fixture
def users(run_cli: RunCli) -> None:
    for name in ("alice", "bob"):
        _ok(run_cli("users", "create", name, "--email", f"{name}@example.com", "--password-stdin",
                    input=PASSWORD))  # fmt: skip


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "table"])
def test_list_in_every_format(run_cli: RunCli, fmt: str) -> None:
    result = run_cli("roles", "list", "-o", fmt)
    _ok(result)
    if fmt == "json":
        names = [row["name"] for row in result.json()]
    elif fmt == "jsonl":
        names = [row["name"] for row in result.jsonl()]
    elif fmt == "csv":
        names = [row["name"] for row in csv.DictReader(io.StringIO(result.stdout))]
    else:
        # The table's layout is the renderer's; the names lead their rows.
        first_words = [line.split()[0] for line in result.stdout.splitlines() if line.split()]
        names = [
            word
            for word in first_words
            if word in ("admin", "key-manager", "user-manager", "viewer")
        ]
    assert names == ["admin", "key-manager", "user-manager", "viewer"]


def test_create_show_update_delete_restore(run_cli: RunCli) -> None:
    created = run_cli("roles", "create", "deployer", "--scope", "targets:write,sessions:write",
                      "--description", "ships releases", "-o", "json")  # fmt: skip
    _ok(created)
    assert created.json()["scopes"] == ["sessions:write", "targets:write"]
    assert created.stderr == "created role 'deployer'\n"
    again = run_cli("roles", "create", "Deployer", "--scope", "read")
    assert again.exit_code == 4
    assert again.stdout == ""
    assert again.stderr.startswith("error: role 'deployer' already exists\n")
    same = run_cli("roles", "create", "deployer", "--scope", "read", "--if-not-exists", "--json")
    _ok(same)
    assert same.json()["scopes"] == ["sessions:write", "targets:write"]
    assert "differs from the request in: permissions, description" in same.stderr
    updated = run_cli("roles", "update", "deployer", "--scope", "read", "--json")
    _ok(updated)
    assert updated.json()["version"] == 2
    stale = run_cli("roles", "update", "deployer", "--scope", "write", "--expected-version", "1")
    assert stale.exit_code == 4
    assert run_cli("roles", "show", "deployer", "--json").json()["scopes"] == ["read"]
    unconfirmed = run_cli("roles", "delete", "deployer")
    assert unconfirmed.exit_code == 2
    assert "--yes" in unconfirmed.stderr
    _ok(run_cli("--yes", "roles", "delete", "deployer"))
    gone = run_cli("--yes", "roles", "delete", "deployer")
    assert gone.exit_code == 3
    assert gone.stderr.startswith("error: role 'deployer' not found\n")
    if_exists = run_cli("--yes", "roles", "delete", "deployer", "--if-exists")
    _ok(if_exists)
    assert if_exists.stdout == ""
    assert "does not exist; nothing to delete" in if_exists.stderr
    _ok(run_cli("roles", "restore", "deployer"))
    assert run_cli("roles", "show", "deployer", "--json").json()["is_deleted"] is False
    actions = [(row["action"], row["status"]) for row in
               run_cli("audit", "list", "--action", "role.*", "-o", "json").json()]  # fmt: skip
    assert sorted(actions) == sorted(
        [
            ("role.create", "success"),
            ("role.create", "failure"),
            ("role.update", "success"),
            ("role.update", "failure"),
            ("role.delete", "success"),
            ("role.delete", "failure"),
            ("role.restore", "success"),
        ]
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["roles", "create", "x", "--scope", "read"], 2, "invalid role name"),
        (["roles", "create", "ops", "--scope", "bogus"], 2, "unknown scope"),
        (["roles", "create", "ops"], 2, "no scope given"),
        (["roles", "update", "admin", "--scope", "read"], 4, "built in"),
        (["--yes", "roles", "delete", "viewer"], 4, "built in"),
        (["roles", "show", "nope"], 3, "not found"),
        (["roles", "members", "nope"], 3, "not found"),
        (["roles", "update", "viewer"], 2, "nothing to update"),
    ],
)
def test_refusals(run_cli: RunCli, args: list[str], code: int, message: str) -> None:
    result = run_cli(*args)
    assert result.exit_code == code
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert message in result.stderr.splitlines()[0]


def test_json_errors(run_cli: RunCli) -> None:
    result = run_cli("roles", "show", "nope", "-o", "json")
    assert result.exit_code == 3
    assert result.error()["code"] == "not_found"


@pytest.mark.usefixtures("users")
def test_add_role_members_permissions_remove_role(run_cli: RunCli) -> None:
    added = run_cli("users", "add-role", "bob", "key-manager", "--expires-in", "7d", "-o", "json")
    _ok(added)
    [row] = added.json()
    assert (row["username"], row["role"], row["outcome"]) == ("bob", "key-manager", "assigned")
    assert row["expires_at"] is not None
    assert added.stderr == "role 'key-manager': 1 assigned\n"
    twice = run_cli("users", "add-role", "bob", "key-manager")
    assert twice.exit_code == 4
    assert twice.stdout == ""
    assert "already holds role 'key-manager'; nothing was assigned" in twice.stderr
    members = run_cli("roles", "members", "key-manager", "-o", "jsonl")
    assert [m["username"] for m in members.jsonl()] == ["bob"]
    permissions = run_cli("users", "show", "bob", "--permissions", "--json").json()
    assert permissions["scopes"] == ["api_keys:*"]
    assert permissions["sources"][0]["sources"] == ["key-manager"]
    table = run_cli("users", "show", "bob", "--permissions")
    rows = [line.split()[:2] for line in table.stdout.splitlines() if "api_keys:*" in line]
    assert rows == [["api_keys:*", "key-manager"]]
    removed = run_cli("users", "remove-role", "bob", "key-manager", "--json")
    assert removed.json()[0]["outcome"] == "removed"
    assert run_cli("users", "show", "bob", "--permissions", "--json").json()["scopes"] == []
    absent = run_cli("users", "remove-role", "bob", "key-manager")
    assert absent.exit_code == 3
    assert run_cli("users", "remove-role", "bob", "key-manager", "--if-exists").exit_code == 0


@pytest.mark.usefixtures("users")
def test_bulk_from_file_is_all_or_nothing_with_line_numbers(
    run_cli: RunCli, tmp_path: Path
) -> None:
    team = tmp_path / "team.txt"
    team.write_text("alice\n# contractors\n\nghost\nbob\n")
    refused = run_cli("users", "add-role", "--from-file", str(team), "viewer")
    assert refused.exit_code == 3
    assert refused.stdout == ""
    assert refused.stderr.startswith(f"error: {team}:4: user 'ghost' not found; nothing was")
    assert run_cli("roles", "members", "viewer", "--json").json() == []
    team.write_text("alice\nbob\n")
    dry = run_cli("users", "add-role", "--from-file", str(team), "viewer", "--dry-run", "--json")
    _ok(dry)
    assert [(r["username"], r["outcome"], r["dry_run"]) for r in dry.json()] == [
        ("alice", "assigned", True),
        ("bob", "assigned", True),
    ]
    assert run_cli("roles", "members", "viewer", "--json").json() == []
    _ok(run_cli("users", "add-role", "--from-file", str(team), "viewer"))
    members = run_cli("roles", "members", "viewer", "--json").json()
    assert [m["username"] for m in members] == ["alice", "bob"]
    _ok(run_cli("users", "remove-role", "alice", "bob", "viewer"))
    assert run_cli("roles", "members", "viewer", "--json").json() == []


@pytest.mark.usefixtures("users")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["users", "add-role", "viewer"], "no user given"),
        (["users", "add-role"], "missing ROLE"),
        (["users", "add-role", "bob", "viewer", "--expires-in", "soon"], "duration"),
        (["users", "add-role", "bob", "viewer", "--expires-at", "2001-01-01"], "not in the future"),
        (
            [
                "users",
                "add-role",
                "bob",
                "viewer",
                "--expires-in",
                "1d",
                "--expires-at",
                "2099-01-01",
            ],
            "mutually exclusive",
        ),
    ],
)
def test_add_role_bad_input(run_cli: RunCli, args: list[str], message: str) -> None:
    result = run_cli(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert message in result.stderr


def test_prune_expired_with_nothing_to_prune(run_cli: RunCli) -> None:
    result = run_cli("roles", "prune-expired", "-o", "csv")
    _ok(result)
    assert result.stdout.startswith("username,role,outcome,")
    assert "pruned 0 expired assignment(s)" in result.stderr


# -- keys narrowed to their owner ----------------------------------------------------------
@pytest.mark.usefixtures("users")
def test_key_scopes_narrow_when_the_owner_loses_a_role(run_cli: RunCli) -> None:
    _ok(run_cli("users", "add-role", "bob", "key-manager"))
    _ok(run_cli("users", "add-role", "bob", "viewer"))
    created = run_cli("keys", "create", "-u", "bob", "-n", "ci", "--scope", "api_keys:write,read",
                      "--json")  # fmt: skip
    _ok(created)
    key = created.json()["key"] + "\n"
    both = run_cli("keys", "verify", "--require-scope", "api_keys:write", "--json", input=key)
    _ok(both)
    assert both.json()["scopes"] == ["api_keys:write", "read"]
    _ok(run_cli("users", "remove-role", "bob", "key-manager"))
    narrowed = run_cli("keys", "verify", "--require-scope", "api_keys:write", input=key)
    assert narrowed.exit_code == 5
    assert narrowed.stdout == ""
    assert "lacks scope 'api_keys:write'" in narrowed.stderr
    still = run_cli("keys", "verify", "--require-scope", "targets:read", "--json", input=key)
    _ok(still)
    assert still.json()["scopes"] == ["read"]
    [row] = run_cli("audit", "list", "--action", "api_key.use", "--status", "failure",
                    "--json").json()  # fmt: skip
    assert row["changes"]["reason"] == "missing_scope"
    _ok(run_cli("users", "remove-role", "bob", "viewer"))
    assert run_cli("keys", "verify", "--json", input=key).json()["scopes"] == []


@pytest.mark.usefixtures("users")
def test_keys_create_refuses_scopes_the_owner_lacks_and_force_needs_a_superuser(
    run_cli: RunCli,
) -> None:
    _ok(run_cli("users", "add-role", "bob", "viewer"))
    refused = run_cli("keys", "create", "-u", "bob", "-n", "ci", "--scope", "targets:write,read")
    assert refused.exit_code == 5
    assert refused.stdout == ""
    assert "does not hold scope(s) targets:write" in refused.stderr
    failures = run_cli("audit", "list", "--action", "api_key.create", "--json").json()
    assert [row["status"] for row in failures] == ["failure"]
    _ok(run_cli("keys", "create", "-u", "bob", "-n", "reader", "--scope", "targets:read"))
    not_super = run_cli("keys", "create", "-u", "bob", "-n", "ci", "--scope", "targets:write",
                        "--force", "--actor", "alice")  # fmt: skip
    assert not_super.exit_code == 5
    assert "--force needs the acting user ('alice') to be an active superuser" in not_super.stderr
    _ok(run_cli("users", "update", "alice", "--superuser"))
    forced = run_cli("keys", "create", "-u", "bob", "-n", "ci", "--scope", "targets:write",
                     "--force", "--actor", "alice", "--json")  # fmt: skip
    _ok(forced)
    key = forced.json()["key"] + "\n"
    rows = run_cli("audit", "list", "--action", "api_key.create", "--status", "success",
                   "--json").json()  # fmt: skip
    assert rows[0]["actor"] == "alice"
    assert rows[0]["changes"]["forced_scopes"] == ["targets:write"]
    # Forced, but verification still narrows it to what bob holds.
    assert run_cli("keys", "verify", "--require-scope", "targets:write", input=key).exit_code == 5
    _ok(run_cli("users", "add-role", "bob", "admin"))
    _ok(run_cli("keys", "verify", "--require-scope", "targets:write", input=key))


def test_role_names_complete_from_the_database(run_cli: RunCli) -> None:
    _ok(run_cli("roles", "create", "deployer", "--scope", "read"))
    result = run_cli("completion", "names", "roles", "de")
    assert (result.exit_code, result.stdout) == (0, "deployer\n")
    assert run_cli("completion", "names", "roles").stdout.split() == [
        "admin", "deployer", "key-manager", "user-manager", "viewer",
    ]  # fmt: skip


@pytest.mark.usefixtures("users")
def test_set_scopes_refuses_scopes_the_owner_lacks(run_cli: RunCli) -> None:
    _ok(run_cli("users", "add-role", "bob", "viewer"))
    created = run_cli(
        "keys", "create", "-u", "bob", "-n", "ci", "--scope", "targets:read", "--json"
    )
    _ok(created)
    prefix = created.json()["key_prefix"]
    refused = run_cli("keys", "set-scopes", prefix, "--scope", "targets:write")
    assert refused.exit_code == 5
    assert "does not hold scope(s) targets:write" in refused.stderr
    assert run_cli("keys", "show", prefix, "--json").json()["scopes"] == ["targets:read"]
    _ok(run_cli("keys", "set-scopes", prefix, "--scope", "read"))
