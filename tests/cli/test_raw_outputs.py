"""Raw outputs stay raw: the README's recipes work whatever format is configured.

A raw output (`audit head`, `db ... --sql`, `audit export`, `completion SHELL`)
takes its format from the command line only (docs/architecture.md §5.3):
``VUTF_OUTPUT`` and the config file's ``output`` are for results, so
``anchor=$(vutf audit head)`` is still the anchor and ``vutf audit export >
audit.jsonl`` is still JSON lines.  An explicit ``-o``/``--json`` is honoured
where the command has that form and is exit 2 where it has none.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.cli.conftest import CliResult, RunCli, invoke

COMPLETIONS = Path(__file__).resolve().parents[2] / "completions"
ANCHOR = re.compile(r"[0-9]+:[0-9a-f]{64}\n")
# --sql is offline: nothing listens here.
OFFLINE_POSTGRES = "postgresql://postgres@127.0.0.1:1/vutf_offline"


@pytest.fixture(params=["env", "config"])
def configured_json(request: pytest.FixtureRequest) -> Mapping[str, str]:
    """The environment of a run whose configured format is json: VUTF_OUTPUT or the config file."""
    if request.param == "env":
        return {"VUTF_OUTPUT": "json"}
    Path(os.environ["VUTF_CONFIG"]).write_text('output = "json"\n', encoding="utf-8")
    return {}


def _ok(result: CliResult) -> CliResult:
    assert result.exit_code == 0, result.stderr
    return result


def _some_history(run_cli: RunCli) -> None:
    for name in ("alice", "bob"):
        _ok(run_cli("users", "create", name, "--email", f"{name}@x.org", "--generate-password"))


# -- the README's recipes with a configured json -------------------------------------------
def test_recorded_head_is_an_anchor_for_verify(
    run_cli: RunCli, configured_json: Mapping[str, str]
) -> None:
    _some_history(run_cli)
    anchor = _ok(run_cli("audit", "head", env=configured_json)).stdout
    assert ANCHOR.fullmatch(anchor), anchor
    verified = _ok(run_cli("audit", "verify", "--anchor", anchor.strip(), env=configured_json))
    # verify is a result, not a raw output: it follows the configured format.
    assert verified.json()["ok"] is True


def test_export_is_json_lines(run_cli: RunCli, configured_json: Mapping[str, str]) -> None:
    _some_history(run_cli)
    exported = _ok(run_cli("audit", "export", env=configured_json)).stdout
    lines = exported.splitlines()
    assert [json.loads(line)["seq"] for line in lines] == list(range(1, len(lines) + 1))
    assert len(lines) >= 2
    # --format still chooses.
    csv_text = _ok(run_cli("audit", "export", "--format", "csv", env=configured_json)).stdout
    assert "seq" in csv_text.splitlines()[0].split(",")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["db", "upgrade", "--sql"], "CREATE TABLE users ("),
        (["db", "downgrade", "base", "--sql"], "DROP TABLE audit_log;"),
        (["db", "grant-runtime", "vutf_app", "--create", "--sql"], "GRANT "),
        (["db", "revoke-runtime", "vutf_app", "--sql"], "REVOKE "),
    ],
    ids=["upgrade", "downgrade", "grant-runtime", "revoke-runtime"],
)
def test_sql_is_a_script(
    args: list[str], expected: str, configured_json: Mapping[str, str]
) -> None:
    result = _ok(invoke(args, env={"VUTF_DATABASE_URL": OFFLINE_POSTGRES, **configured_json}))
    assert expected in result.stdout
    assert not result.stdout.lstrip().startswith(("{", "[")), result.stdout[:80]


@pytest.mark.parametrize(
    ("shell", "script"), [("bash", "vutf.bash"), ("zsh", "_vutf"), ("fish", "vutf.fish")]
)
def test_completion_is_the_script(
    shell: str, script: str, configured_json: Mapping[str, str]
) -> None:
    result = _ok(invoke(["completion", shell], env=configured_json))
    assert result.stdout == (COMPLETIONS / script).read_text(encoding="utf-8")


# -- an explicit -o: honoured where the command has that form, exit 2 where not -----------
def test_explicit_json_is_honoured_where_it_has_a_form(run_cli: RunCli) -> None:
    _some_history(run_cli)
    anchor = _ok(run_cli("audit", "head")).stdout.strip()
    seq, row_hash = anchor.split(":")
    for flags in (["-o", "json"], ["--json"]):
        record = _ok(run_cli("audit", "head", *flags, env={"VUTF_OUTPUT": "csv"})).json()
        assert record == {"seq": int(seq), "row_hash": row_hash}
    # -o table names the plain form, even over a configured json.
    plain = _ok(run_cli("-o", "table", "audit", "head", env={"VUTF_OUTPUT": "json"}))
    assert plain.stdout == anchor + "\n"
    array = _ok(run_cli("audit", "export", "-o", "json", env={"VUTF_OUTPUT": "csv"})).json()
    assert [entry["seq"] for entry in array] == list(range(1, len(array) + 1))
    sql = _ok(
        invoke(["db", "upgrade", "--sql", "--json"], env={"VUTF_DATABASE_URL": OFFLINE_POSTGRES})
    )
    assert "CREATE TABLE users (" in sql.json()["sql"]


@pytest.mark.parametrize("flags", [["-o", "json"], ["--json"], ["-o", "csv"], ["-o", "jsonl"]])
def test_completion_refuses_a_format_it_cannot_print(flags: list[str]) -> None:
    result = invoke(["completion", "bash", *flags])
    assert result.exit_code == 2
    assert result.stdout == ""
    fmt = "json" if flags == ["--json"] else flags[1]
    message = "completion bash prints a shell script; -o " + fmt + " is not supported here"
    if fmt in ("json", "jsonl"):
        assert result.stderr.count("\n") == 1
        assert json.loads(result.stderr)["error"]["message"] == message
    else:
        assert result.stderr.startswith(f"error: {message}\n")
    # The plain form may be asked for by name.
    assert _ok(invoke(["-o", "table", "completion", "bash"])).stdout.startswith("#")


def test_export_refuses_two_different_formats(run_cli: RunCli) -> None:
    result = run_cli("audit", "export", "-o", "json", "--format", "csv")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.error()["message"] == "--format csv conflicts with -o json"
    same = _ok(run_cli("audit", "export", "--json", "--format", "json"))
    assert same.json() == []
