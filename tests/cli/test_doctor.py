"""`vutf doctor` (issue 12, item 15) on both backends, through the real entry point.

It names what a command would act on (config file, data dir, actor, the
masked database URL), tells whether the key pepper and the audit key are set
by fingerprint only, and exits 0 when the database is reachable and at head,
8 when it is not at head (or an explicit SQLite file is missing), 7 when it
cannot be reached: the report on stdout either way, the verdict on stderr.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import RunCli, invoke
from vutf_cli.security.api_keys import pepper_fingerprint
from vutf_cli.security.audit_chain import audit_key_fingerprint
from vutf_cli.services.doctor import versions

PEPPER = "pepper-Sentinel-6e0c-long-enough-to-keep"
AUDIT_KEY = "audit-Sentinel-91fa-long-enough-to-keep"


def test_a_healthy_database_is_exit_0_with_fingerprints_never_values(
    run_cli: RunCli, database_url: str, tmp_path: Path
) -> None:
    result = run_cli(
        "doctor",
        "--json",
        env={
            "VUTF_KEY_PEPPER": PEPPER,
            "VUTF_AUDIT_KEY": AUDIT_KEY,
            "VUTF_ACTOR": "ops@example",
            "VUTF_DATA_DIR": str(tmp_path / "data"),
        },
    )
    assert result.exit_code == 0, result.stderr
    report = result.json()
    assert report["healthy"] is True
    assert report["reachable"] is True
    assert report["at_head"] is True
    assert report["current"] == report["head"] == versions().schema_head
    assert report["actor"] == "ops@example"
    assert report["data_dir"] == str(tmp_path / "data")
    assert report["key_pepper_set"] is True
    assert report["audit_key_set"] is True
    assert report["key_pepper_fingerprint"] == pepper_fingerprint(PEPPER)
    assert report["audit_key_fingerprint"] == audit_key_fingerprint(AUDIT_KEY)
    assert report["key_pepper_fingerprint"] != report["audit_key_fingerprint"]
    assert len(report["key_pepper_fingerprint"]) == 16
    assert PEPPER not in result.stdout + result.stderr
    assert AUDIT_KEY not in result.stdout + result.stderr
    assert report["config_file"] is None
    assert report["dialect"] in database_url


def test_unset_secrets_and_the_config_file_read_are_reported(
    run_cli: RunCli, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[vutf]\nconnect_timeout = 3\n")
    result = run_cli("doctor", "-o", "json", env={"VUTF_CONFIG": str(config)})
    assert result.exit_code == 0, result.stderr
    report = result.json()
    assert report["config_file"] == str(config)
    # The fingerprint keys made without a pepper store, to compare with `keys list -o json`.
    assert (report["key_pepper_set"], report["key_pepper_fingerprint"]) == (
        False,
        pepper_fingerprint(None),
    )
    assert (report["audit_key_set"], report["audit_key_fingerprint"]) == (False, None)


def test_the_table_names_the_target_with_its_password_masked() -> None:
    url = "postgresql://vutf:Secret-Pw-77@127.0.0.1:1/vutf"
    result = invoke(["doctor"], env={"VUTF_DATABASE_URL": url, "VUTF_DB_DEADLINE": "1"})
    assert result.exit_code == 7
    assert "postgresql://vutf:***@127.0.0.1:1/vutf" in result.stdout
    assert "Secret-Pw-77" not in result.stdout + result.stderr
    assert "reachable" in result.stdout
    assert result.stderr.startswith("error: database unavailable")
    assert "\nhint: " in result.stderr
    assert "Error:" not in result.stderr


def test_a_database_not_at_head_is_exit_8(empty_database_url: str) -> None:
    result = invoke(["doctor", "--json"], env={"VUTF_DATABASE_URL": empty_database_url})
    assert result.exit_code == 8, result.stderr
    report = result.json()
    assert (report["at_head"], report["healthy"]) == (False, False)
    assert report["current"] is None
    # PostgreSQL answers (an empty database); an empty SQLite URL names no file yet.
    assert report["reachable"] is empty_database_url.startswith("postgresql")
    assert result.error()["exit_code"] == 8
    assert "vutf db upgrade" in result.error()["hint"]


def test_a_missing_sqlite_file_is_exit_8_and_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.db"
    result = invoke(["doctor"], env={"VUTF_DATABASE_URL": f"sqlite:///{missing}"})
    assert result.exit_code == 8
    assert not missing.exists()


@pytest.mark.parametrize("args", [["doctor"], ["doctor", "--json"]])
def test_the_default_database_not_yet_created_is_healthy_and_stays_absent(
    tmp_path: Path, args: list[str]
) -> None:
    data_dir = tmp_path / "data"
    result = invoke(args, env={"VUTF_DATA_DIR": str(data_dir)})
    assert result.exit_code == 0, result.stderr
    assert not data_dir.exists()
