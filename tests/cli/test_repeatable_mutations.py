"""Repeatable scripts (issue 12, item 4): every mutation a re-run script may repeat has an
idempotent form, the same in every group, on SQLite and PostgreSQL.

* ``--if-exists`` (``users delete|restore|deactivate``, ``keys revoke|delete``): a
  subject that does not exist is exit 0, a notice on stderr, nothing on stdout and
  nothing written, not even a failure row.  Without it: exit 3 and a failure row.
* ``--if-not-exists`` (``users create``, ``keys create``): an existing subject is exit 0
  with a notice; for a key no secret is printed and no ``--secret-file`` is made.
* A state change that already holds (activate an active user, deactivate an inactive
  one, delete a deleted one, restore a live one, revoke a revoked key, delete a deleted
  key) is exit 0 with a notice and no audit row.
* A revoked or expired key keeps its name until ``keys delete``; the conflict names it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.cli.conftest import CliResult, RunCli


def ok(result: CliResult) -> CliResult:
    assert result.exit_code == 0, result.stderr
    return result


def audit_tail(run_cli: RunCli) -> list[tuple[str, str]]:
    rows = ok(run_cli("audit", "list", "--reverse", "--json")).json()
    return [(row["action"], row["status"]) for row in rows]


def make_user(run_cli: RunCli, name: str) -> dict[str, Any]:
    # A superuser holds every scope, so any key can be issued for them.
    created = run_cli(
        "users", "create", name, "--email", f"{name}@example.com", "--generate-password",
        "--superuser", "--json",
    )  # fmt: skip
    user: dict[str, Any] = ok(created).json()
    return user


def make_key(run_cli: RunCli, user: str, name: str) -> dict[str, Any]:
    key: dict[str, Any] = ok(run_cli("keys", "create", "-u", user, "-n", name, "--json")).json()
    return key


# -- --if-exists -------------------------------------------------------------------------
def test_if_exists_on_a_missing_user_is_exit_0_and_writes_nothing(run_cli: RunCli) -> None:
    make_user(run_cli, "keeper")
    before = audit_tail(run_cli)
    for command in (
        ("--yes", "users", "delete", "ghost", "--if-exists"),
        ("--yes", "users", "delete", "ghost", "--hard", "--if-exists"),
        ("users", "restore", "ghost", "--if-exists"),
        ("users", "deactivate", "ghost", "--if-exists"),
        ("users", "deactivate", "ghost", "--if-exists", "--json"),
    ):
        result = ok(run_cli(*command))
        assert result.stdout == "", command
        assert "user 'ghost' does not exist; nothing to" in result.stderr, command
    assert audit_tail(run_cli) == before  # not even a failure row
    # Without it: exit 3, and the refusal is on the record.
    assert run_cli("--yes", "users", "delete", "ghost").exit_code == 3
    assert audit_tail(run_cli)[len(before) :] == [("user.delete", "failure")]


def test_if_exists_on_keys_skips_missing_ones_only(run_cli: RunCli) -> None:
    make_user(run_cli, "kim")
    key = make_key(run_cli, "kim", "ci")
    before = audit_tail(run_cli)
    missing = ok(run_cli("--yes", "keys", "revoke", "vutf_zzzzzzz", "--if-exists", "--json"))
    assert missing.json() == []
    assert "no API key 'vutf_zzzzzzz'; nothing to revoke (--if-exists)" in missing.stderr
    nobody = ok(run_cli("--yes", "keys", "revoke", "--user", "ghost", "--all", "--if-exists"))
    assert "nothing to revoke" in nobody.stderr
    assert audit_tail(run_cli) == before
    # One missing, one real: the real one is revoked, all in one go.
    both = ok(
        run_cli(
            "--yes", "keys", "revoke", "vutf_zzzzzzz", key["key_prefix"], "--if-exists", "--json"
        )
    )
    assert [(row["key_prefix"], row["changed"]) for row in both.json()] == [
        (key["key_prefix"], True)
    ]
    assert audit_tail(run_cli)[len(before) :] == [("api_key.revoke", "success")]
    # Without it, one unknown KEY and nothing at all is revoked (exit 3).
    assert run_cli("--yes", "keys", "revoke", "vutf_zzzzzzz").exit_code == 3


# -- a state change that already holds ----------------------------------------------------
def test_repeating_a_user_state_change_is_exit_0_with_a_notice(run_cli: RunCli) -> None:
    make_user(run_cli, "sam")
    ok(run_cli("users", "deactivate", "sam"))
    ok(run_cli("--yes", "users", "delete", "sam"))
    before = audit_tail(run_cli)
    again = ok(run_cli("--yes", "users", "delete", "sam", "--json"))
    assert again.json()["is_deleted"] is True
    assert "user 'sam' is already deleted; nothing changed" in again.stderr
    ok(run_cli("users", "restore", "sam"))
    live = ok(run_cli("users", "restore", "sam", "--json"))
    assert live.json()["is_deleted"] is False
    assert "user 'sam' is already live (not deleted); nothing changed" in live.stderr
    inactive = ok(run_cli("users", "deactivate", "sam"))
    assert "already inactive; nothing changed" in inactive.stderr
    ok(run_cli("users", "activate", "sam"))
    active = ok(run_cli("users", "activate", "sam"))
    assert "already active; nothing changed" in active.stderr
    # Only the two real changes were recorded.
    assert audit_tail(run_cli)[len(before) :] == [
        ("user.restore", "success"),
        ("user.activate", "success"),
    ]


def test_repeating_a_key_state_change_is_exit_0_with_a_notice(run_cli: RunCli) -> None:
    make_user(run_cli, "rae")
    key = make_key(run_cli, "rae", "ci")
    prefix = key["key_prefix"]
    ok(run_cli("--yes", "keys", "revoke", prefix))
    before = audit_tail(run_cli)
    again = ok(run_cli("--yes", "keys", "revoke", prefix, "--json"))
    assert [row["changed"] for row in again.json()] == [False]
    assert "already revoked (unchanged)" in again.stderr
    ok(run_cli("--yes", "keys", "delete", prefix))
    deleted = ok(run_cli("--yes", "keys", "delete", prefix, "--json"))
    assert [(row["state"], row["changed"]) for row in deleted.json()] == [("deleted", False)]
    assert "already deleted (unchanged)" in deleted.stderr
    assert audit_tail(run_cli)[len(before) :] == [("api_key.delete", "success")]


# -- --if-not-exists ------------------------------------------------------------------------
def test_users_create_if_not_exists(run_cli: RunCli) -> None:
    first = make_user(run_cli, "ada")
    before = audit_tail(run_cli)
    again = ok(
        run_cli(
            "users", "create", "ada", "--email", "ada@example.com", "--generate-password",
            "--superuser", "--if-not-exists", "--json",
        )
    )  # fmt: skip
    assert again.json()["id"] == first["id"]
    assert "password" not in again.json()  # no new password: nothing was created
    assert "already exists; left unchanged" in again.stderr
    assert audit_tail(run_cli) == before


def test_users_create_if_not_exists_looks_up_before_reading_a_password(run_cli: RunCli) -> None:
    make_user(run_cli, "ali")
    before = audit_tail(run_cli)
    # A script with no secret on stdin: the user exists, so none is needed.
    again = ok(
        run_cli(
            "users", "create", "ali", "--email", "other@example.com", "--password-stdin",
            "--if-not-exists", input="",
        )
    )  # fmt: skip
    assert "user 'ali' already exists; left unchanged" in again.stderr
    assert "differs from the request in: email, is_superuser" in again.stderr
    assert "empty password" not in again.stderr
    assert audit_tail(run_cli) == before
    # A new user still needs one.
    new = run_cli(
        "users", "create", "ola", "--email", "ola@example.com", "--password-stdin",
        "--if-not-exists", input="",
    )  # fmt: skip
    assert new.exit_code == 2
    assert "password" in new.stderr


def test_keys_create_if_not_exists_prints_no_secret(run_cli: RunCli, tmp_path: Path) -> None:
    make_user(run_cli, "bea")
    first = make_key(run_cli, "bea", "ci")
    before = audit_tail(run_cli)
    secret = tmp_path / "ci.key"
    again = ok(
        run_cli(
            "keys", "create", "-u", "bea", "-n", "ci", "--secret-file", str(secret),
            "--if-not-exists", "--json",
        )
    )  # fmt: skip
    shown = again.json()
    assert shown["id"] == first["id"]
    assert "key" not in shown
    assert "secret_file" not in shown
    assert not secret.exists()  # no file: there is no secret to put in it
    assert "already exists" in again.stderr
    assert "no new secret" in again.stderr
    table = ok(run_cli("keys", "create", "-u", "bea", "-n", "ci", "--if-not-exists"))
    assert table.stdout == ""  # a mutation in table mode: nothing on stdout, no key at all
    assert "already exists" in table.stderr
    assert "database: " in table.stderr
    assert "differs" not in table.stderr  # the same request: nothing to warn about
    assert audit_tail(run_cli) == before
    # A new name is created as usual.
    created = ok(run_cli("keys", "create", "-u", "bea", "-n", "cd", "--if-not-exists", "--json"))
    assert created.json()["key"].startswith("vutf_")


def test_keys_create_if_not_exists_warns_when_the_key_differs(run_cli: RunCli) -> None:
    make_user(run_cli, "bob")
    first = ok(
        run_cli("keys", "create", "-u", "bob", "-n", "scoped", "--scope", "read", "--json")
    ).json()
    before = audit_tail(run_cli)
    asked = ("keys", "create", "-u", "bob", "-n", "scoped", "--if-not-exists")
    # The same request (the 90-day default expiry, read): no warning.
    same = ok(run_cli(*asked, "--scope", "read", "--json"))
    assert "warning" not in same.stderr
    # A re-run script that now wants a write key that expires tomorrow is told it has not.
    wider = ("--scope", "admin,write", "--expires-in", "1d")
    differs = ok(run_cli("-q", *asked, *wider, "--json"))
    assert differs.stderr.splitlines() == [
        "warning: the existing API key 'scoped' of bob differs from the request in: "
        "scopes, expires_at"
    ]
    shown = differs.json()
    assert (shown["id"], shown["created"], shown["scopes"]) == (first["id"], False, ["read"])
    assert "key" not in shown  # `jq -er .key` fails instead of yielding "null"
    assert "description" in ok(run_cli(*asked, "--description", "other")).stderr
    assert "expires_at" in ok(run_cli(*asked, "--no-expiry")).stderr
    # Bad input is still exit 2, as create would say.
    assert run_cli(*asked, "--scope", "bogus").exit_code == 2
    assert audit_tail(run_cli) == before


def test_revoking_a_deleted_key_is_a_state_that_already_holds(run_cli: RunCli) -> None:
    make_user(run_cli, "tom")
    prefix = make_key(run_cli, "tom", "tmp")["key_prefix"]
    ok(run_cli("--yes", "keys", "revoke", prefix))
    ok(run_cli("--yes", "keys", "delete", prefix))
    before = audit_tail(run_cli)
    # A script that revokes and then deletes runs a second time.
    for extra in ((), ("--if-exists",)):
        again = ok(run_cli("--yes", "keys", "revoke", prefix, *extra, "--json"))
        assert [(row["state"], row["changed"]) for row in again.json()] == [("deleted", False)]
        assert f"already deleted (unchanged): {prefix}" in again.stderr
        assert "no API key" not in again.stderr
    assert audit_tail(run_cli) == before  # nothing changed, nothing refused


def test_key_mutations_in_table_mode_print_a_summary_and_the_database(run_cli: RunCli) -> None:
    make_user(run_cli, "ula")
    first = make_key(run_cli, "ula", "one")["key_prefix"]
    second = make_key(run_cli, "ula", "two")["key_prefix"]
    for command, summary in (
        (("keys", "revoke", first), "revoked 1 API key(s)"),
        (("keys", "revoke", first), "revoked 0 API key(s)"),
        (("keys", "delete", first), "deleted 1 API key(s)"),
        (("keys", "prune-expired"), "pruned 0 API key(s)"),
    ):
        result = ok(run_cli("--yes", *command))
        assert result.stdout == "", command
        assert summary in result.stderr.splitlines(), command
        assert result.stderr.splitlines()[-1].startswith("database: "), command
        assert ok(run_cli("-q", "--yes", *command)).stdout == "", command
    quiet = ok(run_cli("-q", "--yes", "keys", "revoke", second))
    assert (quiet.stdout, quiet.stderr) == ("", "")
    # -o json keeps the records.
    records = ok(run_cli("--yes", "keys", "delete", second, "-o", "json")).json()
    assert [(row["key_prefix"], row["changed"]) for row in records] == [(second, True)]
    pruned = ok(run_cli("--yes", "keys", "prune-expired", "-o", "json")).json()
    assert pruned["pruned"] == 0


# -- a revoked key's name ------------------------------------------------------------------
def test_a_revoked_key_holds_its_name_until_keys_delete(run_cli: RunCli) -> None:
    make_user(run_cli, "cyd")
    old = make_key(run_cli, "cyd", "ci")
    prefix = old["key_prefix"]
    ok(run_cli("--yes", "keys", "revoke", prefix))
    for extra in ((), ("--if-not-exists",)):
        clash = run_cli("keys", "create", "-u", "cyd", "-n", "ci", *extra, "-o", "json")
        assert clash.exit_code == 4, clash.stderr
        error = clash.error()
        assert f"({prefix}, revoked)" in error["message"]
        assert error["hint"] == f"free the name: vutf keys delete {prefix}"
    ok(run_cli("--yes", "keys", "delete", prefix))
    new = ok(run_cli("keys", "create", "-u", "cyd", "-n", "ci", "--json")).json()
    assert new["id"] != old["id"]
    assert new["name"] == "ci"
    # The deleted key's history stays readable.
    history = ok(run_cli("audit", "list", "--resource-id", old["id"], "--reverse", "--json"))
    assert [row["action"] for row in history.json()] == [
        "api_key.create",
        "api_key.revoke",
        "api_key.delete",
    ]


def test_an_active_key_name_clash_names_rotate_and_delete(run_cli: RunCli) -> None:
    make_user(run_cli, "dee")
    prefix = make_key(run_cli, "dee", "ci")["key_prefix"]
    clash = run_cli("keys", "create", "-u", "dee", "-n", "ci", "-o", "json")
    assert clash.exit_code == 4
    assert f"vutf keys rotate {prefix}" in clash.error()["hint"]
    assert f"vutf keys delete {prefix}" in clash.error()["hint"]


def test_keys_delete_ends_an_active_key_and_needs_yes(run_cli: RunCli) -> None:
    make_user(run_cli, "eve")
    prefix = make_key(run_cli, "eve", "ci")["key_prefix"]
    refused = run_cli("keys", "delete", prefix)
    assert refused.exit_code == 2
    assert "--yes" in refused.stderr
    deleted = ok(run_cli("--yes", "keys", "delete", prefix, "--json")).json()
    assert [(row["state"], row["changed"]) for row in deleted] == [("deleted", True)]
    assert deleted[0]["revoked_at"] is not None  # it stopped working too
    assert run_cli("--yes", "keys", "delete", "vutf_zzzzzzz").exit_code == 3
