"""`vutf plan`, `vutf apply` and `vutf export-state` (issue 16) through the real entry point.

On both backends (``database_url`` is parametrized): a plan's audit rows are
the rows apply appends; a moved audit head refuses a plan file; applying
twice changes nothing; ``--prune`` deactivates and revokes, never deletes;
secrets reach only the secrets folder, with private modes; the round trip
with export-state is empty; bad files are reported with line and column and
write nothing.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import CliResult, RunCli

AFTER_APPLY = "(known after apply)"
CHANGES_PENDING = 10
PASSWORD = "correct horse battery staple"

IDENTITY = """\
apiVersion: vutf/v1
kind: Identity
users:
  - username: alice
    email: alice@example.com
    full_name: Alice Admin
    superuser: true
  - username: bob
    email: bob@example.com
apiKeys:
  - owner: alice
    name: ci deploy
    scopes: [read, write]
    expires_at: 2031-01-01T00:00:00Z
  - owner: alice
    name: reports
"""


def write(tmp_path: Path, text: str, name: str = "identity.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def audit_rows(run_cli: RunCli) -> list[dict[str, Any]]:
    result = run_cli("audit", "list", "--all", "-o", "json")
    assert result.exit_code == 0, result.stderr
    rows: list[dict[str, Any]] = result.json()
    return sorted(rows, key=lambda row: int(row["seq"]))


def plan_json(run_cli: RunCli, *args: str) -> tuple[int, dict[str, Any]]:
    result = run_cli("plan", *args, "-o", "json")
    assert result.exit_code in (0, CHANGES_PENDING), (result.stdout, result.stderr)
    document: dict[str, Any] = result.json()
    return result.exit_code, document


def apply_ok(run_cli: RunCli, *args: str) -> CliResult:
    result = run_cli("apply", *args, "--yes")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def assert_rows_match(planned: list[dict[str, Any]], written: list[dict[str, Any]]) -> None:
    """The plan's rows are the appended rows: same actions, resources and changes, in order."""
    assert len(planned) == len(written)
    for plan_row, row in zip(planned, written, strict=True):
        assert row["status"] == "success"
        assert (plan_row["action"], plan_row["resource_type"]) == (
            row["action"],
            row["resource_type"],
        )
        if plan_row["resource_id"] != AFTER_APPLY:
            assert plan_row["resource_id"] == row["resource_id"]
        assert set(plan_row["changes"]) == set(row["changes"])
        for name, value in plan_row["changes"].items():
            if value != AFTER_APPLY:
                assert row["changes"][name] == value, (name, plan_row, row)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- plan, apply, idempotence, secrets ---------------------------------------------------------
def test_plan_shows_the_rows_apply_appends_and_a_second_apply_changes_nothing(
    run_cli: RunCli, tmp_path: Path
) -> None:
    path = write(tmp_path, IDENTITY)
    code, planned = plan_json(run_cli, "-f", str(path))
    assert code == CHANGES_PENDING
    assert planned["head"] is None
    assert planned["changes"] == 4
    assert [row["action"] for row in planned["audit"]] == [
        "user.create",
        "user.create",
        "api_key.create",
        "api_key.create",
    ]
    assert audit_rows(run_cli) == []  # planning writes nothing

    secrets = tmp_path / "secrets"
    applied = apply_ok(run_cli, "-f", str(path), "--secrets-dir", str(secrets), "-o", "json")
    written = audit_rows(run_cli)
    assert_rows_match(planned["audit"], written)
    assert applied.json()["audit_seqs"] == [int(row["seq"]) for row in written]

    # The secrets are in the folder only: 0700 folder, one 0600 file each, never on stdout.
    assert mode(secrets) == 0o700
    files = sorted(p.name for p in secrets.iterdir())
    assert files == ["alice.ci_deploy.key", "alice.password", "alice.reports.key", "bob.password"]
    assert all(mode(secrets / name) == 0o600 for name in files)
    key = (secrets / "alice.ci_deploy.key").read_text().strip()
    assert key.startswith("vutf_")
    password = (secrets / "bob.password").read_text().strip()
    assert key not in applied.stdout + applied.stderr
    assert password not in applied.stdout + applied.stderr
    assert key not in json.dumps(written)
    assert password not in json.dumps(written)
    verified = run_cli("keys", "verify", "--key-file", str(secrets / "alice.ci_deploy.key"))
    assert verified.exit_code == 0, verified.stderr
    checked = run_cli("users", "check-password", "bob", "--password-stdin", input=password)
    assert checked.exit_code == 0, checked.stderr
    assert run_cli("keys", "list", "--user", "alice", "-o", "json").json()[0]["expires_at"]

    # Idempotent: the second plan is empty (exit 0), the second apply appends nothing.
    head = planned_head(audit_rows(run_cli))
    assert plan_json(run_cli, "-f", str(path)) == (
        0,
        {"changes": 0, "prune": False, "head": head, "audit": []},
    )
    again = apply_ok(run_cli, "-f", str(path), "--secrets-dir", str(secrets))
    assert "nothing to apply" in again.stderr
    assert audit_rows(run_cli)[: len(written)] == written
    # After the rows of the two checks above (api_key.use, user.login), nothing more.
    assert len(audit_rows(run_cli)) == len(written) + 2


def planned_head(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"seq": int(rows[-1]["seq"]), "hash": rows[-1]["row_hash"]}


def test_updates_show_old_and_new_values(run_cli: RunCli, tmp_path: Path) -> None:
    apply_ok(run_cli, "-f", str(write(tmp_path, IDENTITY)), "--secrets-dir", str(tmp_path / "s"))
    before = len(audit_rows(run_cli))
    changed = IDENTITY.replace("alice@example.com", "alice@corp.example").replace(
        "email: bob@example.com", "email: bob@example.com\n    active: false\n    verified: true"
    )
    changed = changed.replace("scopes: [read, write]", "scopes: [read]").replace(
        "2031-01-01", "2032-06-01"
    )
    path = write(tmp_path, changed, "changed.yaml")
    code, planned = plan_json(run_cli, "-f", str(path))
    assert code == CHANGES_PENDING
    by_action = {row["action"]: row for row in planned["audit"]}
    assert list(by_action) == [
        "user.update",
        "user.deactivate",
        "user.verify",
        "api_key.set_scopes",
        "api_key.extend",
    ]
    assert by_action["user.update"]["changes"] == {
        "email": {"old": "alice@example.com", "new": "alice@corp.example"}
    }
    assert by_action["api_key.set_scopes"]["changes"] == {
        "scopes": {"old": ["read", "write"], "new": ["read"]}
    }
    assert by_action["api_key.extend"]["changes"]["expires_at"]["new"].startswith("2032-06-01")
    table = run_cli("plan", "-f", str(path))
    assert table.exit_code == CHANGES_PENDING
    assert '~ user.update user alice {"email":{"old":"alice@example.com"' in table.stdout
    assert "5 change(s)" in table.stderr

    apply_ok(run_cli, "-f", str(path))
    assert_rows_match(planned["audit"], audit_rows(run_cli)[before:])
    bob = run_cli("users", "show", "bob", "-o", "json").json()
    assert (bob["is_active"], bob["is_verified"]) == (False, True)
    assert plan_json(run_cli, "-f", str(path))[0] == 0


def test_prune_deactivates_and_revokes_never_deletes(run_cli: RunCli, tmp_path: Path) -> None:
    apply_ok(run_cli, "-f", str(write(tmp_path, IDENTITY)), "--secrets-dir", str(tmp_path / "s"))
    created = run_cli(
        "users", "create", "carol", "--email", "carol@example.com", "--password-stdin",
        input=PASSWORD,
    )  # fmt: skip
    assert created.exit_code == 0, created.stderr
    # Without --prune, carol and the unmentioned key are left alone.
    only_alice = IDENTITY.replace("  - owner: alice\n    name: reports\n", "")
    path = write(tmp_path, only_alice, "pruned.yaml")
    assert plan_json(run_cli, "-f", str(path)) [0] == 0  # fmt: skip
    code, planned = plan_json(run_cli, "-f", str(path), "--prune")
    assert code == CHANGES_PENDING
    assert [(row["action"], row["resource"]) for row in planned["audit"]] == [
        ("api_key.revoke", "alice/reports"),
        ("user.deactivate", "carol"),
    ]
    before = len(audit_rows(run_cli))
    apply_ok(run_cli, "-f", str(path), "--prune")
    assert_rows_match(planned["audit"], audit_rows(run_cli)[before:])
    carol = run_cli("users", "show", "carol", "-o", "json").json()
    assert carol["is_active"] is False
    assert carol["is_deleted"] is False
    keys = {k["name"]: k for k in run_cli("keys", "list", "--any-state", "-o", "json").json()}
    assert keys["reports"]["state"] == "revoked"
    assert plan_json(run_cli, "-f", str(path), "--prune")[0] == 0


# -- plan files and the audit head ----------------------------------------------------------
def test_a_plan_file_is_applied_only_at_its_audit_head(run_cli: RunCli, tmp_path: Path) -> None:
    path = write(tmp_path, IDENTITY)
    plan_file = tmp_path / "reviewed.plan"
    made = run_cli("plan", "-f", str(path), "--out", str(plan_file))
    assert made.exit_code == CHANGES_PENDING, made.stderr
    assert mode(plan_file) == 0o600
    saved = json.loads(plan_file.read_text())
    assert (saved["kind"], saved["head"], len(saved["audit"])) == ("Plan", None, 4)

    moved = run_cli(
        "users", "create", "dave", "--email", "dave@example.com", "--password-stdin",
        input=PASSWORD,
    )  # fmt: skip
    assert moved.exit_code == 0
    rows_before = audit_rows(run_cli)
    refused = run_cli("apply", str(plan_file), "--secrets-dir", str(tmp_path / "s"), "--yes")
    assert refused.exit_code == 4, refused.stderr
    assert "audit log moved since the plan was made" in refused.stderr
    assert "user.create user" in refused.stderr  # names what changed
    assert refused.stdout == ""
    assert not (tmp_path / "s" / "alice.password").exists()
    after = audit_rows(run_cli)
    assert after[: len(rows_before)] == rows_before
    assert [(r["action"], r["status"]) for r in after[len(rows_before) :]] == [
        ("identity.apply", "failure")
    ]
    assert run_cli("users", "show", "alice").exit_code == 3

    # A plan file edited after review is refused, even at its head.
    assert run_cli("plan", "-f", str(path), "--out", str(plan_file), "--overwrite").exit_code == 10
    edited = json.loads(plan_file.read_text())
    edited["identity"]["users"][1]["superuser"] = True
    tampered = tmp_path / "tampered.plan"
    tampered.write_text(json.dumps(edited))
    refused = run_cli("apply", str(tampered), "--secrets-dir", str(tmp_path / "s"), "--yes")
    assert refused.exit_code == 4, refused.stderr
    assert "not what its identity declares now" in refused.stderr

    # A fresh plan, applied as reviewed.
    assert run_cli("plan", "-f", str(path), "--out", str(plan_file), "--overwrite").exit_code == 10
    reviewed = json.loads(plan_file.read_text())
    before = len(audit_rows(run_cli))
    apply_ok(run_cli, str(plan_file), "--secrets-dir", str(tmp_path / "s"))
    assert_rows_match(reviewed["audit"], audit_rows(run_cli)[before:])


def test_apply_is_all_or_nothing(run_cli: RunCli, tmp_path: Path) -> None:
    # bob holds no scope, so his key is denied: alice, created before it, is rolled back too.
    text = IDENTITY + "  - owner: bob\n    name: too much\n    scopes: [admin]\n"
    path = write(tmp_path, text)
    result = run_cli("apply", "-f", str(path), "--secrets-dir", str(tmp_path / "s"), "--yes")
    assert result.exit_code == 5, result.stderr
    assert "does not hold scope" in result.stderr
    assert run_cli("users", "show", "alice").exit_code == 3
    assert [(r["action"], r["status"]) for r in audit_rows(run_cli)] == [
        ("identity.apply", "failure")
    ]
    assert list((tmp_path / "s").iterdir()) == []


def test_a_file_cannot_widen_a_key_beyond_its_owner(run_cli: RunCli, tmp_path: Path) -> None:
    # carol holds `read` through the viewer role; her key may not gain `write` by a file edit.
    text = (
        "apiVersion: vutf/v1\nkind: Identity\nusers:\n"
        "  - username: carol\n    email: carol@example.com\n    roles: [{name: viewer}]\n"
        "apiKeys:\n  - owner: carol\n    name: reader\n    scopes: [read]\n"
    )
    path = write(tmp_path, text)
    apply_ok(run_cli, "-f", str(path), "--secrets-dir", str(tmp_path / "s"))
    before = audit_rows(run_cli)
    widened = write(tmp_path, text.replace("scopes: [read]", "scopes: [read, write]"))
    result = run_cli("apply", "-f", str(widened), "--secrets-dir", str(tmp_path / "s2"), "--yes")
    assert result.exit_code == 5, result.stderr
    assert "does not hold scope" in result.stderr
    key = run_cli("keys", "list", "--user", "carol", "-o", "json").json()[0]
    assert key["scopes"] == ["read"]
    after = audit_rows(run_cli)
    assert [(r["action"], r["status"]) for r in after[len(before) :]] == [
        ("identity.apply", "failure")
    ]


# -- refusals before anything is written --------------------------------------------------------
def test_apply_needs_yes_without_a_terminal_and_a_secrets_dir_for_keys(
    run_cli: RunCli, tmp_path: Path
) -> None:
    path = write(tmp_path, IDENTITY)
    unconfirmed = run_cli("apply", "-f", str(path), "--secrets-dir", str(tmp_path / "s"))
    assert unconfirmed.exit_code == 2
    assert "confirmation required" in unconfirmed.stderr
    no_folder = run_cli("apply", "-f", str(path), "--yes")
    assert no_folder.exit_code == 2
    assert "need --secrets-dir" in no_folder.stderr
    both = run_cli("apply", str(path), "-f", str(path), "--yes")
    assert both.exit_code == 2
    assert audit_rows(run_cli) == []
    assert not (tmp_path / "s").exists()


def test_new_users_without_a_secrets_dir_have_no_usable_password(
    run_cli: RunCli, tmp_path: Path
) -> None:
    path = write(tmp_path, IDENTITY.partition("apiKeys:")[0])
    result = apply_ok(run_cli, "-f", str(path))
    assert "no usable password" in result.stderr
    checked = run_cli("users", "check-password", "bob", "--password-stdin", input=PASSWORD)
    assert checked.exit_code == 5, checked.stderr


def test_no_passwords_writes_only_the_keys_and_a_password_can_be_set_later(
    run_cli: RunCli, tmp_path: Path
) -> None:
    folder = tmp_path / "keys"
    path = write(tmp_path, IDENTITY)
    result = apply_ok(run_cli, "-f", str(path), "--secrets-dir", str(folder), "--no-passwords")
    assert "2 new user(s) have no usable password" in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == [
        "alice.ci_deploy.key",
        "alice.reports.key",
    ]
    denied = run_cli("users", "check-password", "bob", "--password-stdin", input=PASSWORD)
    assert denied.exit_code == 5, denied.stderr
    set_ = run_cli("users", "set-password", "bob", "--password-stdin", input=PASSWORD)
    assert set_.exit_code == 0, set_.stderr
    checked = run_cli("users", "check-password", "bob", "--password-stdin", input=PASSWORD)
    assert checked.exit_code == 0, checked.stderr
    assert plan_json(run_cli, "-f", str(path))[0] == 0


def test_an_open_secrets_dir_is_refused(run_cli: RunCli, tmp_path: Path) -> None:
    folder = tmp_path / "open"
    folder.mkdir()
    os.chmod(folder, 0o750)  # noqa: S103 - open to the group: what is refused
    result = run_cli("apply", "-f", str(write(tmp_path, IDENTITY)), "--secrets-dir", str(folder))
    assert result.exit_code == 2
    assert "open to other users" in result.stderr
    assert audit_rows(run_cli) == []


@pytest.mark.parametrize(
    ("name", "text", "where", "what"),
    [
        (
            "bad.yaml",
            "apiVersion: vutf/v1\nkind: Identity\nusers:\n  - username: alice\n"
            "    email: a@example.com\n    superuser: maybe\n",
            ":6:16:",
            "users/0/superuser: 'maybe' is not of type 'boolean'",
        ),
        (
            "bad.yaml",
            "apiVersion: vutf/v1\nkind: Identity\nusers:\n  - username: alice\n"
            "    emial: a@example.com\n",
            ":4:5:",
            "'email' is a required property",
        ),
        (
            "bad.yaml",
            "apiVersion: vutf/v1\nkind: Identity\nusers: [\n",
            ":4:1:",
            "invalid YAML",
        ),
        (
            "bad.json",
            '{"apiVersion": "vutf/v1", "kind": "Identity",\n\t"apiKeys": [\n'
            '\t\t{"owner": "alice", "name": "k", "scopes": ["fly"]}]}\n',
            ":3:3:",
            "apiKeys/0: unknown scope",
        ),
        ("bad.json", '{"apiVersion": "vutf/v1",\n  "kind": }\n', ":2:11:", "invalid JSON"),
        (
            "bad.yaml",
            "apiVersion: vutf/v2\nkind: Identity\n",
            ":1:13:",
            "apiVersion: 'vutf/v1' was expected",
        ),
    ],
)
def test_bad_files_name_line_and_column_and_write_nothing(
    run_cli: RunCli, tmp_path: Path, name: str, text: str, where: str, what: str
) -> None:
    path = write(tmp_path, text, name)
    for command in (("plan", "-f", str(path)), ("apply", "-f", str(path), "--yes")):
        result = run_cli(*command)
        assert result.exit_code == 2, result.stderr
        first = result.stderr.splitlines()[0]
        assert first.startswith(f"error: {path}{where}"), first
        assert what in first
        assert "Traceback" not in result.stderr
    assert audit_rows(run_cli) == []


# -- export-state and -o yaml --------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_export_state_round_trip_is_empty(run_cli: RunCli, tmp_path: Path, fmt: str) -> None:
    apply_ok(run_cli, "-f", str(write(tmp_path, IDENTITY)), "--secrets-dir", str(tmp_path / "s"))
    exported = tmp_path / f"state.{fmt}"
    result = run_cli("export-state", "-o", fmt, "--output-file", str(exported))
    assert result.exit_code == 0, result.stderr
    assert mode(exported) == 0o600
    text = exported.read_text()
    assert "password" not in text
    assert "vutf_" not in text.replace("vutf/v1", "")
    assert plan_json(run_cli, "-f", str(exported), "--prune")[0] == 0
    # It declares what is there (names and emails as stored).
    assert "ci deploy" in text
    assert "alice@example.com" in text


def test_yaml_is_an_output_format(run_cli: RunCli, tmp_path: Path) -> None:
    import yaml

    assert run_cli("users", "list", "-o", "yaml").stdout == "[]\n"
    apply_ok(run_cli, "-f", str(write(tmp_path, IDENTITY)), "--secrets-dir", str(tmp_path / "s"))
    listed = yaml.safe_load(run_cli("users", "list", "-o", "yaml").stdout)
    assert [user["username"] for user in listed] == ["alice", "bob"]
    shown = yaml.safe_load(run_cli("users", "show", "alice", "-o", "yaml").stdout)
    assert shown["email"] == "alice@example.com"
    assert shown["created_at"].endswith("Z")
    missing = run_cli("users", "show", "nobody", "-o", "yaml")
    assert missing.exit_code == 3
    assert missing.error()["code"] == "not_found"


# -- roles and memberships --------------------------------------------------------------------
ROLES = """\
apiVersion: vutf/v1
kind: Identity
roles:
  - name: deployers
    description: ship to targets
    scopes: [targets:write, read]
users:
  - username: erin
    email: erin@example.com
    roles:
      - deployers
      - name: viewer
        expires_at: 2031-01-01T00:00:00Z
apiKeys:
  - owner: erin
    name: deploy
    scopes: [targets:write]
"""


def test_roles_and_memberships_are_declared(run_cli: RunCli, tmp_path: Path) -> None:
    path = write(tmp_path, ROLES, "roles.yaml")
    code, planned = plan_json(run_cli, "-f", str(path))
    assert code == CHANGES_PENDING
    assert [(row["action"], row["resource"]) for row in planned["audit"]] == [
        ("role.create", "deployers"),
        ("user.create", "erin"),
        ("user_role.assign", "erin/deployers"),
        ("user_role.assign", "erin/viewer"),
        ("api_key.create", "erin/deploy"),
    ]
    # erin is no superuser: her key is allowed by the role assigned before it.
    apply_ok(run_cli, "-f", str(path), "--secrets-dir", str(tmp_path / "s"))
    assert_rows_match(planned["audit"], audit_rows(run_cli))
    shown = run_cli("users", "show", "erin", "--permissions", "-o", "json")
    assert shown.exit_code == 0, shown.stderr
    assert "targets:write" in shown.stdout
    assert plan_json(run_cli, "-f", str(path))[0] == 0

    # Changing the role's scopes, dropping viewer and a new expiry of deployers.
    changed = ROLES.replace("[targets:write, read]", "[targets:write, targets:read]").replace(
        "      - deployers\n      - name: viewer\n        expires_at: 2031-01-01T00:00:00Z\n",
        "      - name: deployers\n        expires_at: 2032-01-01T00:00:00Z\n",
    )
    path = write(tmp_path, changed, "changed.yaml")
    code, planned = plan_json(run_cli, "-f", str(path))
    assert [(row["action"], row["resource"]) for row in planned["audit"]] == [
        ("role.update", "deployers"),
        ("user_role.remove", "erin/deployers"),
        ("user_role.assign", "erin/deployers"),
        ("user_role.remove", "erin/viewer"),
    ]
    assert planned["audit"][0]["changes"] == {
        "scopes": {"old": ["read", "targets:write"], "new": ["targets:read", "targets:write"]}
    }
    before = len(audit_rows(run_cli))
    apply_ok(run_cli, "-f", str(path))
    assert_rows_match(planned["audit"], audit_rows(run_cli)[before:])
    assert plan_json(run_cli, "-f", str(path))[0] == 0

    # export-state declares the role and the membership: the round trip is empty.
    exported = tmp_path / "state.yaml"
    assert run_cli("export-state", "--output-file", str(exported)).exit_code == 0
    text = exported.read_text()
    assert "deployers" in text
    assert "2032-01-01T00:00:00Z" in text
    assert "user-manager" not in text  # built-in roles are the schema's, not declared
    assert plan_json(run_cli, "-f", str(exported), "--prune")[0] == 0


def test_built_in_roles_and_unknown_roles_are_refused(run_cli: RunCli, tmp_path: Path) -> None:
    builtin = "apiVersion: vutf/v1\nkind: Identity\nroles:\n  - name: viewer\n    scopes: [write]\n"
    result = run_cli("plan", "-f", str(write(tmp_path, builtin)))
    assert result.exit_code == 4
    assert "built in" in result.stderr
    unknown = ROLES.replace("      - deployers\n", "      - nobody-has-this\n")
    result = run_cli("plan", "-f", str(write(tmp_path, unknown, "unknown.yaml")))
    assert result.exit_code == 3
    assert "nobody-has-this" in result.stderr
    assert audit_rows(run_cli) == []


def test_an_email_held_by_an_undeclared_user_is_a_conflict(run_cli: RunCli, tmp_path: Path) -> None:
    created = run_cli(
        "users", "create", "carol", "--email", "carol@example.com", "--password-stdin",
        input=PASSWORD,
    )  # fmt: skip
    assert created.exit_code == 0, created.stderr
    text = "apiVersion: vutf/v1\nkind: Identity\nusers:\n  - username: dave\n"
    result = run_cli("plan", "-f", str(write(tmp_path, text + "    email: Carol@Example.com\n")))
    assert result.exit_code == 4
    assert "belongs to user 'carol'" in result.stderr


def test_a_secret_never_replaces_a_file(run_cli: RunCli, tmp_path: Path) -> None:
    folder = tmp_path / "s"
    folder.mkdir(mode=0o700)
    (folder / "bob.password").write_text("old\n")
    result = run_cli(
        "apply", "-f", str(write(tmp_path, IDENTITY)), "--secrets-dir", str(folder), "--yes"
    )
    assert result.exit_code == 4
    assert "bob.password exists" in result.stderr
    assert (folder / "bob.password").read_text() == "old\n"
    assert audit_rows(run_cli) == []
