"""Refusals name their subject; ``audit list --user`` outlives the user (issue 13, item 2).

A refused change of a user or a key appends a ``failure`` row with the
``user_id`` of the user it was about (the key's owner, for a key) whenever
that user exists, and the name as typed in ``changes["identifier"]``; so
``vutf audit list --user NAME --status failure`` finds it.  After a hard
delete, ``--user NAME`` is resolved through the audit history; a name held
by several users over time is refused (exit 2) naming their ids.
"""

from __future__ import annotations

from typing import Any

from tests.cli.conftest import CliResult, RunCli

PASSWORD = "correct horse battery staple"


def ok(result: CliResult) -> CliResult:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def create_user(run_cli: RunCli, name: str) -> str:
    # Superusers: a key carries no scope its owner lacks.
    created = ok(
        run_cli(
            "users",
            "create",
            name,
            "--email",
            f"{name}@example.com",
            "--superuser",
            "--password-stdin",
            "--json",
            input=PASSWORD,
        )
    )
    user_id: str = created.json()["id"]
    return user_id


def audit(run_cli: RunCli, *filters: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = ok(
        run_cli("audit", "list", "--reverse", *filters, "--json")
    ).json()
    return rows


def summary(rows: list[dict[str, Any]]) -> list[tuple[str, str, Any]]:
    return [
        (row["action"], row["status"], (row["changes"] or {}).get("identifier")) for row in rows
    ]


def test_refused_user_and_key_changes_carry_the_subjects_user_id(run_cli: RunCli) -> None:
    alice = create_user(run_cli, "alice")
    create_user(run_cli, "bob")
    key = ok(
        run_cli("keys", "create", "--user", "alice", "--name", "ci", "--no-expiry", "--json")
    ).json()

    # Refusals of every kind, each naming alice or her key as typed.
    assert run_cli("users", "update", "ALICE", "--email", "bob@example.com").exit_code == 4
    assert run_cli("users", "update", "alice", "--email", "BOB@example.com").exit_code == 4
    stale = run_cli("users", "update", "alice", "--expected-version", "99", "--full-name", "A")
    assert stale.exit_code == 4
    assert run_cli("keys", "create", "--user", "alice@example.com", "--name", "ci").exit_code == 4
    assert run_cli("keys", "revoke", key["key_prefix"], "--yes").exit_code == 0
    assert run_cli("keys", "rotate", key["key_prefix"]).exit_code == 4
    # A refusal about nobody that exists names no user, but keeps the name.
    assert run_cli("users", "update", "zed", "--full-name", "Z").exit_code == 3

    failures = audit(run_cli, "--user", "alice", "--status", "failure")
    assert summary(failures)[:5] == [
        ("user.update", "failure", "ALICE"),
        ("user.update", "failure", "alice"),
        ("user.update", "failure", "alice"),
        ("api_key.create", "failure", "alice@example.com"),
        ("api_key.rotate", "failure", key["key_prefix"]),
    ]
    assert {row["user_id"] for row in failures} == {alice}
    assert all(row["error_message"] for row in failures)
    # resource_id stays what the refused command was given.
    assert failures[0]["resource_id"] == "ALICE"
    # Successes are still there too.
    everything = audit(run_cli, "--user", "alice")
    assert {"success", "failure"} <= {row["status"] for row in everything}

    nobody = audit(run_cli, "--action", "user.update", "--status", "failure")[-1]
    assert (nobody["user_id"], nobody["changes"]) == (None, {"identifier": "zed"})


def test_revoke_all_of_an_unknown_user_and_of_a_known_one(run_cli: RunCli) -> None:
    carol = create_user(run_cli, "carol")
    # An ambiguous or unknown key reference names nobody; --user names the owner.
    assert run_cli("keys", "revoke", "vutf_nonexis", "--yes").exit_code == 3
    (unknown,) = audit(run_cli, "--action", "api_key.revoke", "--status", "failure")
    assert unknown["user_id"] is None
    assert unknown["changes"] == {"identifier": "vutf_nonexis"}
    ok(run_cli("users", "delete", "carol", "--yes"))
    # Soft-deleted: a key for her is refused (not found among live users), naming her.
    assert run_cli("keys", "create", "--user", "carol", "--name", "x").exit_code == 3
    (refused,) = audit(run_cli, "--user", "carol", "--action", "api_key.create")
    assert (refused["status"], refused["user_id"]) == ("failure", carol)


def test_audit_list_user_after_a_hard_delete(run_cli: RunCli) -> None:
    dave = create_user(run_cli, "dave")
    ok(run_cli("users", "update", "dave", "--email", "dave2@example.com"))
    wrong = run_cli("users", "check-password", "dave", "--password-stdin", input="not the one!!!")
    assert wrong.exit_code == 5
    stale = run_cli("users", "update", "dave", "--expected-version", "9", "--full-name", "D")
    assert stale.exit_code == 4
    ok(run_cli("users", "delete", "dave", "--hard", "--yes"))
    assert run_cli("users", "show", "dave").exit_code == 3

    rows = audit(run_cli, "--user", "dave")
    assert [(row["action"], row["status"]) for row in rows] == [
        ("user.create", "success"),
        ("user.update", "success"),
        ("user.login", "failure"),
        ("user.update", "failure"),
        ("user.delete", "success"),
    ]
    assert {row["user_id"] for row in rows} == {dave}
    failures = audit(run_cli, "--user", "DAVE", "--status", "failure")
    assert [row["action"] for row in failures] == ["user.login", "user.update"]
    # By any email the user ever had, and by id.
    for name in ("dave@example.com", "Dave2@example.com", dave):
        assert audit(run_cli, "--user", name) == rows
    # Table output works as well (the default format).
    table = ok(run_cli("audit", "list", "--user", "dave"))
    assert "user.login" in table.stdout


def test_a_name_held_by_several_users_over_time_is_refused_naming_them(run_cli: RunCli) -> None:
    first = create_user(run_cli, "erin")
    ok(run_cli("users", "delete", "erin", "--hard", "--yes"))
    second = create_user(run_cli, "erin")
    # While a row exists, the name means that user.
    assert {row["user_id"] for row in audit(run_cli, "--user", "erin")} == {second}
    ok(run_cli("users", "delete", "erin", "--hard", "--yes"))

    refused = run_cli("audit", "list", "--user", "erin")
    assert refused.exit_code == 2
    assert refused.stdout == ""
    assert refused.stderr.startswith("error: user 'erin' was 2 different users over time: ")
    assert f"{first}, {second}" in refused.stderr
    assert "hint: give one of the user ids with --user" in refused.stderr
    assert [row["action"] for row in audit(run_cli, "--user", first)] == [
        "user.create",
        "user.delete",
    ]

    unknown = run_cli("audit", "list", "--user", "nobody-ever")
    assert unknown.exit_code == 3
    assert "not found, now or in the audit history" in unknown.stderr
