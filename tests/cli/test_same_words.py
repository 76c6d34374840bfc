"""Same words, same meaning (issue 12, item 11), through the real entry point on both backends.

* ``-o`` is the output format everywhere: `audit export --format` and
  `users import --format` (an input format) are old spellings, hidden and
  warned about; `users import --input-format` is the new one.
* Every export writes a file with ``--output-file`` (0600, ``--force`` to
  replace), `users export` as `audit export`.
* ``-y`` is ``--yes`` and ``-q`` is ``--quiet``, anywhere on the line.
* ``--actor`` is the global option wherever it stands: audit filters are
  ``--by-actor``; an ``--actor`` where the old filter was meant is exit 2.
* ``--since TIME`` and ``--since-seq N`` on `audit list`, `export` and `follow`.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import typer.main

from tests.cli.conftest import RunCli
from vutf_cli.cli.root import app


def _user(run_cli: RunCli, name: str) -> None:
    made = run_cli("users", "create", name, "--email", f"{name}@example.com", "--generate-password")
    assert made.exit_code == 0, made.stderr


def test_no_visible_option_is_called_format() -> None:
    """-o is the output format; nothing beside it is spelled --format (old names are hidden)."""
    root = typer.main.get_command(app)
    ctx = root.make_context("vutf", [], resilient_parsing=True)
    pending = [(root, ctx)]
    while pending:
        command, context = pending.pop()
        for param in command.get_params(context):
            if not getattr(param, "hidden", False):
                assert "--format" not in param.opts, command.name
        if hasattr(command, "list_commands"):
            for name in command.list_commands(context):
                sub = command.get_command(context, name)
                pending.append(
                    (sub, sub.make_context(name, [], parent=context, resilient_parsing=True))
                )


def test_import_takes_input_format_and_the_old_name_with_a_warning(
    run_cli: RunCli, tmp_path: Path
) -> None:
    source = tmp_path / "users.txt"
    source.write_text(json.dumps({"username": "ann", "email": "ann@example.com",
                                  "password": "a long enough password"}) + "\n")  # fmt: skip
    new = run_cli("users", "import", str(source), "--input-format", "jsonl", "--dry-run")
    assert new.exit_code == 0, new.stderr
    assert "deprecated" not in new.stderr
    old = run_cli("users", "import", str(source), "--format", "jsonl", "--dry-run")
    assert old.exit_code == 0, old.stderr
    assert "warning: --format is deprecated; use --input-format" in old.stderr
    clash = run_cli("users", "import", str(source), "--format", "csv", "--input-format", "jsonl")
    assert (clash.exit_code, clash.stdout) == (2, "")
    assert clash.stderr.startswith("error: --format csv conflicts with --input-format jsonl")


def test_audit_export_takes_o_and_the_old_format_with_a_warning(run_cli: RunCli) -> None:
    _user(run_cli, "bea")
    new = run_cli("audit", "export", "-o", "csv")
    assert new.exit_code == 0, new.stderr
    assert new.stdout.startswith("id,seq,")
    old = run_cli("audit", "export", "--format", "csv")
    assert (old.exit_code, old.stdout) == (0, new.stdout)
    assert "warning: --format is deprecated; use -o" in old.stderr


def test_users_export_writes_an_output_file_like_audit_export(
    run_cli: RunCli, tmp_path: Path
) -> None:
    _user(run_cli, "cid")
    target = tmp_path / "users.jsonl"
    done = run_cli("users", "export", "-o", "jsonl", "--output-file", str(target))
    assert (done.exit_code, done.stdout) == (0, ""), done.stderr
    assert [row["username"] for row in map(json.loads, target.read_text().splitlines())] == ["cid"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert f"exported 1 user(s) to {target}" in done.stderr
    again = run_cli("users", "export", "--output-file", str(target))
    assert (again.exit_code, again.stdout) == (4, "")
    assert target.read_text().startswith("{")  # untouched: still the jsonl export
    forced = run_cli("users", "export", "--output-file", str(target), "--force")
    assert forced.exit_code == 0, forced.stderr
    assert json.loads(target.read_text())[0]["username"] == "cid"


def test_y_and_q_are_yes_and_quiet_anywhere(run_cli: RunCli) -> None:
    _user(run_cli, "dan")
    quiet = run_cli("users", "deactivate", "dan", "-q")
    assert (quiet.exit_code, quiet.stderr) == (0, "")
    deleted = run_cli("users", "delete", "dan", "-y")
    assert deleted.exit_code == 0, deleted.stderr
    assert run_cli("-y", "users", "restore", "dan").exit_code == 0
    assert run_cli("users", "show", "dan", "--json").json()["is_deleted"] is False
    bundled = run_cli("users", "delete", "dan", "-yq")  # as Click bundles short flags
    assert (bundled.exit_code, bundled.stderr) == (0, "")
    assert run_cli("users", "show", "dan", "--json").json()["is_deleted"] is True


def test_actor_is_the_acting_user_wherever_it_stands(run_cli: RunCli) -> None:
    for name, args in (
        ("eve", ["--actor", "ops-a", "users", "create", "eve"]),
        ("fay", ["users", "create", "fay", "--actor", "ops-b"]),
    ):
        done = run_cli(*args, "--email", f"{name}@example.org", "--generate-password")
        assert done.exit_code == 0, done.stderr
    rows = run_cli("audit", "list", "--json", "--action", "user.create").json()
    assert {row["actor"] for row in rows} == {"ops-a", "ops-b"}
    by_a = run_cli("audit", "list", "--json", "--by-actor", "ops-a").json()
    assert [row["actor"] for row in by_a] == ["ops-a"]
    for args in (["--actor", "ops-a", "audit", "list"], ["audit", "export", "--actor", "ops-a"]):
        refused = run_cli(*args)
        assert (refused.exit_code, refused.stdout) == (2, "")
        assert refused.stderr == (
            "error: --actor names who is acting, not whose entries to show\n"
            "hint: filter with --by-actor ops-a\n"
        )


def test_since_seq_filters_list_and_export_like_since(run_cli: RunCli) -> None:
    for name in ("gus", "hal", "ivy"):
        _user(run_cli, name)
    listed = run_cli("audit", "list", "--json", "--since-seq", "2", "--reverse").json()
    assert [row["seq"] for row in listed] == [2, 3]
    exported = run_cli("audit", "export", "--since-seq", "3", "--by-actor", "tester@test")
    assert [json.loads(line)["seq"] for line in exported.stdout.splitlines()] == [3]
    both = run_cli("audit", "list", "--json", "--since-seq", "2", "--since", "1h").json()
    assert [row["seq"] for row in both] == [3, 2]
    for command in ("list", "export", "follow"):
        text = " ".join(run_cli("audit", command, "--help").stdout.split())
        assert "--since TIME" in text
        assert "--since-seq SEQ" in text
    bad = run_cli("audit", "list", "--since-seq", "0")
    assert (bad.exit_code, bad.stdout) == (2, "")
