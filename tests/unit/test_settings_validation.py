"""Numeric settings out of range are exit 2 at start-up, with one line naming them.

``VUTF_DB_DEADLINE``, ``VUTF_CONNECT_TIMEOUT``, ``VUTF_STATEMENT_TIMEOUT`` and
``VUTF_MIN_PASSWORD_LENGTH`` (and the same keys in the config file) that are
not finite, out of range or empty never reach the code that uses them: a
deadline of ``nan`` or ``inf`` used to retry an unreachable server forever,
``1e308`` ended in an internal error (exit 1).  Issue 11 item 8.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli.conftest import RunCli, invoke, run_cli  # noqa: F401 (fixture)

ENVIRONMENT = ("VUTF_DB_DEADLINE", "VUTF_CONNECT_TIMEOUT", "VUTF_STATEMENT_TIMEOUT",
               "VUTF_MIN_PASSWORD_LENGTH")  # fmt: skip
NOT_NUMBERS = ("nan", "NaN", "inf", "-inf", "Infinity", "1e308", "-1", "0", "", " ", "abc",
               "1e999", "9" * 400)  # fmt: skip
# Out of range for one setting only (in range for others).
OUT_OF_RANGE = [
    ("VUTF_DB_DEADLINE", "3601"),
    ("VUTF_CONNECT_TIMEOUT", "0.0"),
    ("VUTF_STATEMENT_TIMEOUT", "2147483648"),
    ("VUTF_STATEMENT_TIMEOUT", "1.5"),
    ("VUTF_MIN_PASSWORD_LENGTH", "7"),
    ("VUTF_MIN_PASSWORD_LENGTH", "1025"),
]
# The config file's spellings: TOML has nan and inf too.
FILE_VALUES = [
    ("db_deadline", "nan"),
    ("db_deadline", "inf"),
    ("db_deadline", "-inf"),
    ("db_deadline", "1e308"),
    ("db_deadline", "-1"),
    ("db_deadline", "0"),
    ("connect_timeout", "+inf"),
    ("connect_timeout", "0.0"),
    ("statement_timeout_ms", "0"),
    ("statement_timeout_ms", "-5"),
    ("statement_timeout_ms", "99999999999999999999"),
    ("min_password_length", "7"),
    ("min_password_length", "4096"),
    ("pool_size", "0"),
    ("max_overflow", "-1"),
]
UNREACHABLE = "postgresql://vutf@127.0.0.1:1/vutf_nowhere"


def _refused_at_start_up(args: list[str], env: dict[str, str], names: str) -> None:
    result = invoke(args, env=env)
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()  # one line, no traceback, no hint needed
    assert line.startswith("error: "), line
    assert names in line, line
    assert not Path(os.environ["VUTF_DATA_DIR"]).exists()  # nothing ran: no database made


@pytest.mark.parametrize("value", NOT_NUMBERS, ids=lambda v: repr(v)[:12])
@pytest.mark.parametrize("name", ENVIRONMENT)
def test_a_numeric_variable_that_is_not_a_usable_number_is_exit_2(name: str, value: str) -> None:
    """Against the default database, so a failure to refuse would create it."""
    _refused_at_start_up(["users", "list"], {name: value}, f"{name} (environment) must be")


@pytest.mark.parametrize(("name", "value"), OUT_OF_RANGE)
def test_a_numeric_variable_out_of_its_range_is_exit_2(name: str, value: str) -> None:
    _refused_at_start_up(["users", "list"], {name: value}, f"{name} (environment) must be")


@pytest.mark.parametrize(("key", "value"), FILE_VALUES)
def test_a_numeric_config_setting_out_of_range_is_exit_2(key: str, value: str) -> None:
    config = Path(os.environ["VUTF_CONFIG"])
    config.write_text(f"{key} = {value}\n")
    _refused_at_start_up(["users", "list"], {}, f"config file {config}: {key} must be")


@pytest.mark.parametrize("value", ["nan", "inf", "1e308"])
def test_an_endless_deadline_never_retries_an_unreachable_server(value: str) -> None:
    """Before, ``nan`` and ``inf`` retried forever; now nothing connects at all."""
    result = invoke(["--database-url", UNREACHABLE, "db", "ping"], env={"VUTF_DB_DEADLINE": value})
    assert result.exit_code == 2, result.stderr
    assert "VUTF_DB_DEADLINE (environment) must be" in result.stderr


def test_the_message_states_the_range() -> None:
    result = invoke(["users", "list"], env={"VUTF_STATEMENT_TIMEOUT": "0"})
    assert result.stderr == (
        "error: VUTF_STATEMENT_TIMEOUT (environment) must be a whole number of milliseconds "
        "from 1 to 2147483647, got '0'\n"
    )


def test_a_huge_value_is_shortened_in_the_message() -> None:
    result = invoke(["users", "list"], env={"VUTF_DB_DEADLINE": "9" * 5000})
    assert result.exit_code == 2
    assert len(result.stderr) < 200


def test_the_environment_does_not_hide_a_bad_config_file() -> None:
    """Each source is checked: a bad file is named even when the environment overrides it."""
    config = Path(os.environ["VUTF_CONFIG"])
    config.write_text("db_deadline = nan\n")
    _refused_at_start_up(
        ["users", "list"], {"VUTF_DB_DEADLINE": "5"}, f"config file {config}: db_deadline"
    )


# -- values in range work, on both backends ------------------------------------------------
LOW = {"VUTF_DB_DEADLINE": "3600", "VUTF_CONNECT_TIMEOUT": "0.5",
       "VUTF_STATEMENT_TIMEOUT": "1000", "VUTF_MIN_PASSWORD_LENGTH": "8"}  # fmt: skip
HIGH = {"VUTF_DB_DEADLINE": "0.25", "VUTF_CONNECT_TIMEOUT": "3600",
        "VUTF_STATEMENT_TIMEOUT": "2147483647", "VUTF_MIN_PASSWORD_LENGTH": "1024"}  # fmt: skip


@pytest.mark.parametrize(
    "env",
    [LOW, HIGH, {"VUTF_DB_DEADLINE": " 7 ", "VUTF_STATEMENT_TIMEOUT": "30000"}],
    ids=["low", "high", "spaces"],
)
def test_numeric_settings_in_range_are_used(
    run_cli: RunCli,  # noqa: F811
    env: dict[str, str],
) -> None:
    result = run_cli("-o", "json", "db", "status", env=env)
    assert result.exit_code == 0, result.stderr
    status = result.json()
    if "VUTF_DB_DEADLINE" in env:
        assert status["db_deadline"] == float(env["VUTF_DB_DEADLINE"])
    if "VUTF_STATEMENT_TIMEOUT" in env:
        assert status["statement_timeout_ms"] == int(env["VUTF_STATEMENT_TIMEOUT"])


def test_config_file_numbers_in_range_are_used(run_cli: RunCli) -> None:  # noqa: F811
    config = Path(os.environ["VUTF_CONFIG"])
    config.write_text("db_deadline = 2.5\nconnect_timeout = 1\nstatement_timeout_ms = 4321\n")
    result = run_cli("-o", "json", "db", "status")
    assert result.exit_code == 0, result.stderr
    status = result.json()
    assert (status["db_deadline"], status["connect_timeout"], status["statement_timeout_ms"]) == (
        2.5,
        1,
        4321,
    )


def test_a_config_path_below_a_file_is_no_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # XDG_CONFIG_HOME naming a file: config.toml cannot exist there, so there is none.
    from vutf_cli.settings import load_settings

    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(not_a_folder))
    settings = load_settings(env={})
    assert settings.config_file is None


def test_a_config_file_vutf_config_names_must_exist(tmp_path: Path) -> None:
    """A typo in VUTF_CONFIG would otherwise run against the default database."""
    below_a_file = tmp_path / "file"
    below_a_file.write_text("")
    for named in (tmp_path / "no-such.toml", below_a_file / "config.toml"):
        _hinted_refusal({"VUTF_CONFIG": str(named)}, f"config file {named} does not exist")
    _hinted_refusal({"VUTF_CONFIG": ""}, "VUTF_CONFIG is empty")
    # /dev/null is the way to say "no config file".
    result = invoke(["users", "list", "-o", "json"], env={"VUTF_CONFIG": os.devnull})
    assert (result.exit_code, result.stdout) == (0, "[]\n"), result.stderr


def _hinted_refusal(env: dict[str, str], message: str) -> None:
    result = invoke(["users", "list"], env=env)
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    line, hint = result.stderr.splitlines()
    assert line.startswith(f"error: {message}"), line
    assert "VUTF_CONFIG=/dev/null" in hint, hint
    assert not Path(os.environ["VUTF_DATA_DIR"]).exists()  # nothing ran: no database made


def test_a_config_file_nested_too_deeply_is_exit_2() -> None:
    config = Path(os.environ["VUTF_CONFIG"])
    config.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    _refused_at_start_up(["users", "list"], {}, f"config file {config} is not valid TOML")
