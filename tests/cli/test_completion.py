"""``vutf completion``: the committed scripts are current, and ``names`` answers from the database.

The scripts themselves are run in real shells by ``test_completion_shells.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import RunCli, invoke
from vutf_cli.cli import completion_files
from vutf_cli.cli.completion_files import REGENERATE_COMMAND
from vutf_cli.cli.completion_scripts import SCRIPT_FILES

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPLETIONS = REPO_ROOT / "completions"


# -- the committed scripts ---------------------------------------------------------
def test_committed_scripts_are_what_the_app_generates() -> None:
    stale = completion_files.stale_completion_scripts(COMPLETIONS)
    assert not stale, f"stale: {[p.name for p in stale]}; regenerate with: {REGENERATE_COMMAND}"


def test_check_names_a_stale_script_and_write_repairs_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert completion_files.main(["--write", str(tmp_path)]) == 0
    assert completion_files.main(["--check", str(tmp_path)]) == 0
    capsys.readouterr()

    (tmp_path / "_vutf").write_text("#compdef vutf\n# edited by hand\n", encoding="utf-8")
    (tmp_path / "vutf.fish").unlink()
    assert completion_files.main(["--check", str(tmp_path)]) == 1
    stderr = capsys.readouterr().err
    assert f"stale: {tmp_path / '_vutf'}" in stderr
    assert f"stale: {tmp_path / 'vutf.fish'}" in stderr
    assert "vutf.bash" not in stderr
    assert REGENERATE_COMMAND in stderr

    assert completion_files.main(["--write", str(tmp_path)]) == 0
    assert completion_files.main(["--check", str(tmp_path)]) == 0


@pytest.mark.parametrize("shell", sorted(SCRIPT_FILES))
@pytest.mark.parametrize("output", [[], ["-o", "table"]])
def test_vutf_completion_prints_the_committed_script_raw(shell: str, output: list[str]) -> None:
    """VUTF_OUTPUT does not apply and -o table is the script itself (json: test_raw_outputs)."""
    result = invoke([*output, "completion", shell], env={"VUTF_OUTPUT": "csv"})
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == (COMPLETIONS / SCRIPT_FILES[shell]).read_text(encoding="utf-8")


def test_an_unknown_shell_is_a_usage_error() -> None:
    result = invoke(["completion", "powershell"])
    assert result.exit_code == 2
    assert result.stdout == ""


def test_hidden_commands_are_not_completed() -> None:
    # `completion names` is hidden: the scripts call it but never offer it.
    bash = (COMPLETIONS / "vutf.bash").read_text(encoding="utf-8")
    assert "'completion') _vutf_words='bash zsh fish' ;;" in bash
    zsh = (COMPLETIONS / "_vutf").read_text(encoding="utf-8")
    assert "'names:" not in zsh
    fish = (COMPLETIONS / "vutf.fish").read_text(encoding="utf-8")
    assert "-a names" not in fish
    assert "names" not in invoke(["completion", "--help"]).stdout


# -- vutf completion names ---------------------------------------------------------
def _create_user(run_cli: RunCli, name: str) -> None:
    result = run_cli(
        "users", "create", name, "--email", f"{name}@example.com", "--generate-password"
    )
    assert result.exit_code == 0, result.stderr


def test_names_prints_usernames_and_key_prefixes(run_cli: RunCli) -> None:
    for name in ("alice", "alan", "bob"):
        _create_user(run_cli, name)
    run_cli("users", "delete", "bob", "--yes")
    run_cli("users", "add-role", "alice", "admin")  # a key carries no scope its owner lacks
    created = run_cli("keys", "create", "--user", "alice", "--name", "ci", "--json")
    assert created.exit_code == 0, created.stderr
    key_prefix = created.json()["key_prefix"]

    every = run_cli("completion", "names", "users")
    assert (every.exit_code, every.stdout, every.stderr) == (0, "alan\nalice\n", "")
    assert run_cli("completion", "names", "users", "ali").stdout == "alice\n"
    assert run_cli("completion", "names", "users", "zed").stdout == ""
    assert run_cli("completion", "names", "keys").stdout == f"{key_prefix}\n"
    assert run_cli("completion", "names", "keys", key_prefix[:7]).stdout == f"{key_prefix}\n"
    assert run_cli("completion", "names", "keys", "nope").stdout == ""
    # -o does not apply: one candidate a line, as the scripts read them.
    assert run_cli("-o", "json", "completion", "names", "users", "ala").stdout == "alan\n"


@pytest.mark.parametrize("kind", ["users", "keys", "nonsense"])
def test_names_prints_nothing_without_a_database(
    kind: str, tmp_path: Path, isolated_environment: Path
) -> None:
    missing = tmp_path / "missing.db"
    result = invoke(
        ["completion", "names", kind], env={"VUTF_DATABASE_URL": f"sqlite:///{missing}"}
    )
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    assert not missing.exists()
    # The default database is created on first use, but not by a <TAB>.
    result = invoke(["completion", "names", kind])
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    assert not (isolated_environment / "data").exists()


def test_names_prints_nothing_for_a_database_without_schema(
    empty_database_url: str,
) -> None:
    result = invoke(["completion", "names", "users"], env={"VUTF_DATABASE_URL": empty_database_url})
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")


def test_names_prints_nothing_for_an_unreachable_server() -> None:
    # A port nothing listens on (connection refused): no error on the terminal.
    url = "postgresql://postgres@127.0.0.1:9/vutf"
    result = invoke(
        ["completion", "names", "users"], env={"VUTF_DATABASE_URL": url, "VUTF_DB_DEADLINE": "1"}
    )
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
