"""`vutf batch` through the real entry point, on SQLite and PostgreSQL (issue 14).

Each line runs as `vutf ARGS` would, in the same process: its own
transaction and audit rows (command path ``batch …``), one JSON result per
line, and the worst exit code of the lines run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cli.conftest import CliResult, RunCli
from vutf_cli.cli.batch import worse
from vutf_cli.errors import ExitCode

PASSWORD = "correct horse battery staple"


def lines(*entries: Any) -> str:
    return "".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in entries)


def create(name: str, **extra: Any) -> dict[str, Any]:
    args = ["users", "create", name, "--email", f"{name}@example.com", "--password-stdin"]
    return {"args": args, "stdin": PASSWORD, **extra}


def audit_rows(run_cli: RunCli) -> list[dict[str, Any]]:
    listed = run_cli("audit", "list", "-o", "jsonl", "--limit", "500")
    assert listed.exit_code == 0, listed.stderr
    return listed.jsonl()


def test_each_line_runs_as_its_own_command_with_its_own_audit_row(run_cli: RunCli) -> None:
    result = run_cli(
        "--actor",
        "ci-bot",
        "batch",
        "--keep-going",
        input=lines(create("alice"), "", "# a comment", create("alice"), create("bob")),
    )
    assert result.exit_code == ExitCode.CONFLICT, result.stderr
    results = result.jsonl()
    assert [(r["line"], r["exit_code"]) for r in results] == [(1, 0), (4, 4), (5, 0)]
    # JSON by default: the command's own JSON object, and the one JSON error object.
    assert results[0]["result"]["username"] == "alice"
    assert results[1]["error"]["code"] == "conflict"
    assert "result" not in results[1]

    rows = [row for row in audit_rows(run_cli) if row["action"] == "user.create"]
    assert [row["status"] for row in rows] == ["success", "failure", "success"]
    assert rows[1]["changes"]["identifier"] == "alice"
    for row in rows:
        assert row["actor"] == "ci-bot"  # the batch's global options apply to every line
        assert row["metadata"]["command"] == "batch users create"
        assert row["metadata"]["options"] == ["--actor", "--email", "--password-stdin"]
    # Each line its own transaction: three request ids.
    assert len({row["metadata"]["request_id"] for row in rows}) == 3
    checked = run_cli("users", "check-password", "bob", "--password-stdin", input=PASSWORD)
    assert checked.exit_code == 0, checked.stderr


def test_the_batch_stops_after_the_first_failing_line_by_default(run_cli: RunCli) -> None:
    result = run_cli("batch", input=lines(create("carol"), create("carol"), create("dave")))
    assert result.exit_code == ExitCode.CONFLICT
    assert [r["line"] for r in result.jsonl()] == [1, 2]
    assert "stopped after line 2 (exit 4)" in result.stderr
    shown = run_cli("users", "show", "dave")
    assert shown.exit_code == ExitCode.NOT_FOUND


def test_bad_lines_are_exit_2_with_their_number_and_change_nothing(run_cli: RunCli) -> None:
    bad = [
        "not json",
        '["users", "list"]',
        '{"argz": ["users", "list"]}',
        '{"args": []}',
        '{"args": ["users", "list"], "stdin": 3}',
        '{"args": ["batch"]}',
        '{"args": ["--json", "completion", "bash"]}',
        # No password and no terminal: refused as a script's prompt would be.
        {"args": ["users", "create", "erin", "--email", "erin@example.com"]},
    ]
    result = run_cli("batch", "--keep-going", input=lines(*bad))
    assert result.exit_code == ExitCode.USAGE
    results = result.jsonl()
    assert [(r["line"], r["exit_code"]) for r in results] == [(n, 2) for n in range(1, 9)]
    for r in results[:7]:
        assert r["error"]["message"].startswith(f"line {r['line']}: "), r
    assert "batch cannot run inside a batch" in results[5]["error"]["message"]
    assert "completion cannot run inside a batch" in results[6]["error"]["message"]
    assert "stdin is not a terminal" in results[7]["error"]["message"]
    assert run_cli("users", "show", "erin").exit_code == ExitCode.NOT_FOUND
    # Invalid input writes nothing, not even a failure row.
    assert [row for row in audit_rows(run_cli) if row["action"] == "user.create"] == []


def test_an_argument_no_command_line_could_hold_is_exit_2_and_writes_nothing(
    run_cli: RunCli, tmp_path: Path
) -> None:
    # No process's argv can hold NUL or a lone surrogate other than the
    # \udc80-\udcff of undecodable bytes; a JSON line can ("\u0000", "\ud800").
    # A path option's own check (its stat) used to fail on them as a bug, exit 1.
    export = tmp_path / "export.json"
    secret = tmp_path / "key.secret"
    create_key = ["keys", "create", "-u", "alice", "-n", "k"]
    cases = {
        "\x00": "an argument cannot contain a NUL character",
        "\ud800": "an argument cannot contain a lone surrogate (text that is not Unicode)",
    }
    for character, message in cases.items():
        bad = [
            {"args": ["audit", "export", "--output-file", f"{export}{character}"]},
            {"args": [*create_key, "--secret-file", f"{secret}{character}"]},
            create(f"n{character}"),
            {"args": ["--database-url", f"sqlite:////tmp/x{character}.db", "users", "list"]},
        ]
        result = run_cli("batch", "--keep-going", input=lines(*bad))
        assert result.exit_code == ExitCode.USAGE, result.stderr
        results = result.jsonl()
        assert [(r["line"], r["exit_code"]) for r in results] == [(n, 2) for n in range(1, 5)]
        for r in results:
            assert r["error"]["message"] == message, r
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(("export", "key"))]
    assert [
        row for row in audit_rows(run_cli) if row["action"] in ("user.create", "api_key.create")
    ] == []


def test_a_stdin_no_pipe_could_carry_is_exit_2_for_its_line(run_cli: RunCli) -> None:
    # JSON can spell a lone surrogate; it used to end the whole batch with exit 1.
    line = {**create("erin"), "stdin": "correct horse\ud800battery staple"}
    result = run_cli("batch", "--keep-going", input=lines(line, create("fay")))
    assert result.exit_code == ExitCode.USAGE, result.stderr
    refused, created = result.jsonl()
    assert refused["error"]["message"] == (
        'line 1: "stdin" cannot contain a lone surrogate (text that is not Unicode)'
    )
    assert created["exit_code"] == 0
    assert run_cli("users", "show", "erin").exit_code == ExitCode.NOT_FOUND


def test_the_exit_code_is_the_worst_by_severity_not_the_highest(run_cli: RunCli) -> None:
    result = run_cli(
        "batch",
        "--keep-going",
        input=lines(
            {"args": ["users", "show", "nobody"]},  # 3
            create("frank"),  # 0
            "{",  # 2
        ),
    )
    assert [r["exit_code"] for r in result.jsonl()] == [3, 0, 2]
    assert result.exit_code == ExitCode.NOT_FOUND  # not found is worse than a usage error
    assert worse(ExitCode.CHANGES_PENDING, ExitCode.USAGE) == ExitCode.USAGE
    assert worse(ExitCode.INTERNAL, ExitCode.NOT_DELIVERED) == ExitCode.INTERNAL
    assert worse(ExitCode.INTERRUPTED, ExitCode.INTERNAL) == ExitCode.INTERRUPTED
    assert worse(ExitCode.OK, ExitCode.CHANGES_PENDING) == ExitCode.CHANGES_PENDING
    assert worse(ExitCode.OK, ExitCode.OK) == ExitCode.OK


def test_a_generated_password_is_in_the_result_and_works(run_cli: RunCli) -> None:
    entry = {"args": ["users", "create", "gina", "--email", "g@example.com", "--generate-password"]}
    result = run_cli("batch", input=lines(entry))
    assert result.exit_code == 0, result.stderr
    (only,) = result.jsonl()
    password = only["result"]["password"]
    assert "shown only this once" in only["stderr"]
    checked = run_cli("users", "check-password", "gina", "--password-stdin", input=password)
    assert checked.exit_code == 0, checked.stderr
    # The audit row never holds it.
    assert password not in json.dumps(audit_rows(run_cli))


def test_a_line_may_ask_for_another_format_and_the_batch_output_is_only_jsonl(
    run_cli: RunCli,
) -> None:
    result = run_cli("batch", input=lines(create("hank"), {"args": ["users", "list", "-o", "csv"]}))
    assert result.exit_code == 0, result.stderr
    listed = result.jsonl()[1]
    assert "result" not in listed
    assert listed["stdout"].splitlines()[0].startswith("id,username,")
    refused = run_cli("batch", "--json", input=lines(create("ivy")))
    assert refused.exit_code == ExitCode.USAGE
    assert "one JSON result per line" in refused.error()["message"]
    assert run_cli("users", "show", "ivy").exit_code == ExitCode.NOT_FOUND


def test_a_missing_batch_file_is_exit_2(run_cli: RunCli, tmp_path: Any) -> None:
    result: CliResult = run_cli("batch", "-f", str(tmp_path / "absent.jsonl"))
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.startswith("error: cannot read batch file")
    assert result.stdout == ""


def test_a_lines_global_options_do_not_leak_into_the_next_line(
    run_cli: RunCli, other_database_url: str
) -> None:
    result = run_cli(
        "batch",
        "--keep-going",
        input=lines(
            {"args": ["--database-url", other_database_url, *create("jack")["args"]], "stdin": "x"},
            {
                **create("jack"),
                "args": ["--database-url", other_database_url, *create("jack")["args"]],
            },
            {"args": ["users", "show", "jack"]},
            {"args": ["users", "show", "jack", "-o", "yaml"]},
            {"args": ["users", "list"]},
        ),
    )
    codes = [r["exit_code"] for r in result.jsonl()]
    # A too-short password is refused (2), then jack is created in the other database
    # only; the lines after it see the default database and JSON again.
    assert codes == [2, 0, 3, 3, 0], result.stdout
    assert result.jsonl()[2]["error"]["code"] == "not_found"
    assert result.jsonl()[4]["result"] == []
