"""Which audit key and which key pepper wrote what (issue 11, item 3), on both backends.

* Every audit row's ``metadata`` names the audit key it was hashed with:
  ``audit_key`` = a 16-hex-digit keyed digest of ``VUTF_AUDIT_KEY`` (null
  without one), never the key; it is hashed with the rest of the row.
* ``audit verify`` with another key (or none) than the rows name reports
  ``other_key`` at that row, saying both fingerprints, exit 6; a row that
  names this vutf's key and does not verify is ``edited``; a row written
  without the key in the middle of a keyed log is named as such.
* Each API key stores the fingerprint of the pepper it was made with
  (creation and rotation); ``keys verify`` of a key made with another pepper
  is exit 5 with the message of any unknown key (no oracle), while the
  audit row's reason (``other_pepper``, both fingerprints) and a ``hint:``
  on stderr tell the operator.
* ``db grant-runtime`` warns on stderr when no ``VUTF_AUDIT_KEY`` is set.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.audit_tampering import tampering
from tests.cli.conftest import CliResult, RunCli, invoke
from vutf_cli.db.audit_sql import AUDIT
from vutf_cli.db.database import Database
from vutf_cli.db.models import ApiKey
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.security.api_keys import pepper_fingerprint
from vutf_cli.security.audit_chain import audit_key_fingerprint
from vutf_cli.services import audit_trail

PASSWORD = "correct horse battery staple"
KEY_ONE = "audit-key-one-Zq8fW2-kept-out-of-the-db"
KEY_TWO = "audit-key-two-Pk3mR9-kept-out-of-the-db"
PEPPER_ONE = "pepper-one-Hs7dQ1-kept-out-of-the-db"
PEPPER_TWO = "pepper-two-Lx4nB6-kept-out-of-the-db"


def ok(result: CliResult) -> CliResult:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def keyed(key: str | None = None, pepper: str | None = None) -> dict[str, str]:
    env = {}
    if key is not None:
        env["VUTF_AUDIT_KEY"] = key
    if pepper is not None:
        env["VUTF_KEY_PEPPER"] = pepper
    return env


def create_user(run_cli: RunCli, name: str, env: dict[str, str]) -> None:
    ok(
        run_cli(
            "users",
            "create",
            name,
            "--email",
            f"{name}@example.com",
            "--password-stdin",
            "--superuser",  # holds every scope, so any key may be made for it
            input=PASSWORD,
            env=env,
        )
    )


def audit_rows(run_cli: RunCli) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = ok(run_cli("audit", "list", "-o", "jsonl")).jsonl()
    return sorted(rows, key=lambda row: row["seq"])


def verify(run_cli: RunCli, env: dict[str, str]) -> CliResult:
    return run_cli("audit", "verify", "--json", env=env)


# -- the audit key -----------------------------------------------------------------------
def test_every_row_names_its_audit_key_by_fingerprint(
    run_cli: RunCli, database_url: str, tmp_path: Path
) -> None:
    create_user(run_cli, "alice", keyed(KEY_ONE))
    source = tmp_path / "users.jsonl"
    source.write_text(
        json.dumps({"username": "bob", "email": "bob@example.com", "password": PASSWORD}) + "\n"
    )
    ok(run_cli("users", "import", str(source), env=keyed(KEY_ONE)))  # the bulk append
    create_user(run_cli, "carol", keyed(None))
    rows = audit_rows(run_cli)
    fingerprint = audit_key_fingerprint(KEY_ONE)
    assert fingerprint is not None
    assert len(fingerprint) == 16
    assert [row["metadata"]["audit_key"] for row in rows] == [fingerprint] * 3 + [None]
    assert all(KEY_ONE not in json.dumps(row) for row in rows)


def test_a_callers_metadata_cannot_name_another_key(db: Database) -> None:
    def write(uow: UnitOfWork) -> Any:
        row = audit_trail.append(
            uow, action="test.row", resource_type="test", metadata={"audit_key": "f" * 16}
        )
        return row.meta

    assert db.run(write)["audit_key"] is None  # this Database has no key: the stamp says so


def test_verify_with_another_key_says_so_and_exits_6(run_cli: RunCli) -> None:
    create_user(run_cli, "alice", keyed(KEY_ONE))
    create_user(run_cli, "bob", keyed(KEY_ONE))
    ok(verify(run_cli, keyed(KEY_ONE)))
    one, two = audit_key_fingerprint(KEY_ONE), audit_key_fingerprint(KEY_TWO)

    other = verify(run_cli, keyed(KEY_TWO))
    assert other.exit_code == 6, other.stderr
    report = other.json()
    assert (report["problem"], report["bad_seq"]) == ("other_key", 1)
    assert f"names another audit key ({one}; this vutf has {two})" in report["detail"]
    assert KEY_ONE not in other.stdout + other.stderr
    assert KEY_TWO not in other.stdout + other.stderr

    none = verify(run_cli, keyed(None))
    assert none.exit_code == 6, none.stderr
    assert none.json()["problem"] == "other_key"
    assert (
        f"names audit key {one}, which cannot be checked here: this vutf has no VUTF_AUDIT_KEY"
        in (none.json()["detail"])
    )
    text = run_cli("audit", "verify", env=keyed(KEY_TWO))
    assert text.exit_code == 6
    assert "error: audit chain broken at seq 1: other_key (" in text.stderr
    assert "hint: verify with the VUTF_AUDIT_KEY the log was written with" in text.stderr


def test_rows_written_without_a_key_are_named_as_such(run_cli: RunCli) -> None:
    create_user(run_cli, "alice", keyed(None))
    result = verify(run_cli, keyed(KEY_ONE))
    assert result.exit_code == 6, result.stderr
    report = result.json()
    assert (report["problem"], report["bad_seq"]) == ("other_key", 1)
    assert "written without an audit key" in report["detail"]
    assert "set VUTF_AUDIT_KEY to the key it was written with" in report["detail"]


def test_a_row_appended_without_the_key_in_a_keyed_log_is_pointed_at(run_cli: RunCli) -> None:
    """What a writer holding INSERT but not the key can append: linked, yet it does not verify."""
    create_user(run_cli, "alice", keyed(KEY_ONE))
    create_user(run_cli, "bob", keyed(KEY_ONE))
    create_user(run_cli, "mallory", keyed(None))  # well linked, plain SHA-256
    result = verify(run_cli, keyed(KEY_ONE))
    assert result.exit_code == 6, result.stderr
    report = result.json()
    assert (report["problem"], report["bad_seq"], report["checked"]) == ("other_key", 3, 2)
    assert "written without an audit key" in report["detail"]
    assert "a writer without this key made the row" in report["detail"]


def test_an_edited_row_that_names_this_key_is_edited(run_cli: RunCli, db: Database) -> None:
    create_user(run_cli, "alice", keyed(KEY_ONE))
    create_user(run_cli, "bob", keyed(KEY_ONE))
    with tampering(db) as conn:
        conn.execute(sa.update(AUDIT).where(AUDIT.c.seq == 2).values(actor="mallory"))
    result = verify(run_cli, keyed(KEY_ONE))
    assert result.exit_code == 6, result.stderr
    report = result.json()
    assert (report["problem"], report["bad_seq"]) == ("edited", 2)
    assert "VUTF_AUDIT_KEY" not in report["detail"]  # the key is known to be the same


def _claim(db: Database, seq: int, fingerprint: str | None, **edits: Any) -> None:
    """Edit row ``seq`` and make it name ``fingerprint`` as its audit key."""
    with tampering(db) as conn:
        metadata = conn.execute(sa.select(AUDIT.c.metadata).where(AUDIT.c.seq == seq)).scalar()
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        metadata["audit_key"] = fingerprint
        conn.execute(sa.update(AUDIT).where(AUDIT.c.seq == seq).values(metadata=metadata, **edits))


def test_an_edited_row_claiming_no_key_is_edited_not_other_key(
    run_cli: RunCli, db: Database
) -> None:
    """Review finding 4: the "no key" claim is checked with the plain hash, not believed."""
    create_user(run_cli, "alice", keyed(KEY_ONE))
    create_user(run_cli, "bob", keyed(KEY_ONE))
    _claim(db, 2, None, actor="mallory")
    result = verify(run_cli, keyed(KEY_ONE))
    assert result.exit_code == 6, result.stderr
    report = result.json()
    assert (report["problem"], report["bad_seq"]) == ("edited", 2)
    assert "it names no audit key, and does not match that either" in report["detail"]


def test_a_row_naming_a_fingerprint_vutf_never_writes_is_edited(
    run_cli: RunCli, db: Database
) -> None:
    create_user(run_cli, "alice", keyed(KEY_ONE))
    create_user(run_cli, "bob", keyed(KEY_ONE))
    _claim(db, 2, "not a fingerprint, and long enough to mislead")
    report = verify(run_cli, keyed(KEY_ONE)).json()
    assert (report["problem"], report["bad_seq"]) == ("edited", 2)
    assert "an audit key vutf never writes" in report["detail"]


# -- the key pepper ------------------------------------------------------------------------
def stored_fingerprints(db: Database) -> dict[str, str | None]:
    def read(uow: UnitOfWork) -> dict[str, str | None]:
        keys = uow.session.scalars(sa.select(ApiKey).order_by(ApiKey.created_at))
        return {key.key_prefix: key.pepper_fingerprint for key in keys}

    return db.run(read, read_only=True)


def test_keys_store_the_fingerprint_of_their_pepper(
    run_cli: RunCli, db: Database, tmp_path: Path
) -> None:
    create_user(run_cli, "alice", {})
    made = ok(
        run_cli("keys", "create", "-u", "alice", "-n", "ci", "--json", env=keyed(pepper=PEPPER_ONE))
    ).json()
    plain = ok(run_cli("keys", "create", "-u", "alice", "-n", "plain", "--json")).json()
    rotated = ok(
        run_cli("keys", "rotate", made["key_prefix"], "--json", env=keyed(pepper=PEPPER_ONE))
    ).json()
    found = stored_fingerprints(db)
    assert found[made["key_prefix"]] == pepper_fingerprint(PEPPER_ONE)
    assert found[rotated["key_prefix"]] == pepper_fingerprint(PEPPER_ONE)
    assert found[plain["key_prefix"]] == pepper_fingerprint(None)
    assert len({*found.values()}) == 2
    assert all(len(value or "") == 16 for value in found.values())
    assert PEPPER_ONE not in json.dumps(found)


def failure_rows(run_cli: RunCli) -> list[dict[str, Any]]:
    return [
        row
        for row in audit_rows(run_cli)
        if row["action"] == "api_key.use" and row["status"] == "failure"
    ]


def test_verify_of_a_key_made_with_another_pepper_tells_the_operator_not_the_caller(
    run_cli: RunCli,
) -> None:
    create_user(run_cli, "alice", {})
    made = ok(
        run_cli("keys", "create", "-u", "alice", "-n", "ci", "--json", env=keyed(pepper=PEPPER_ONE))
    ).json()
    key = made["key"]

    wrong = run_cli("keys", "verify", input=key, env=keyed(pepper=PEPPER_TWO))
    assert wrong.exit_code == 5, wrong.stderr
    lines = wrong.stderr.splitlines()
    assert lines[0] == "error: unknown API key"  # what any unknown key gets
    one, two = pepper_fingerprint(PEPPER_ONE), pepper_fingerprint(PEPPER_TWO)
    assert lines[1] == (
        f"hint: key {made['key_prefix']} was made with another VUTF_KEY_PEPPER "
        f"(fingerprint {one}; this vutf has {two}): check the pepper setting"
    )
    (row,) = failure_rows(run_cli)
    assert row["changes"] == {
        "reason": "other_pepper",
        "usage_recorded": False,
        "pepper_fingerprint": one,
        "our_pepper_fingerprint": two,
    }
    assert (row["resource_id"], row["user_id"]) == (made["id"], made["user_id"])
    assert row["error_message"] == "denied: unknown API key"

    unpeppered = run_cli("keys", "verify", "--no-record", input=key)
    assert unpeppered.exit_code == 5
    assert unpeppered.stderr.splitlines()[0] == "error: unknown API key"
    assert "this vutf has no pepper" in unpeppered.stderr
    assert len(failure_rows(run_cli)) == 1  # --no-record wrote nothing

    assert ok(run_cli("keys", "verify", input=key, env=keyed(pepper=PEPPER_ONE)))
    for text in (wrong.stderr, unpeppered.stderr):
        assert PEPPER_ONE not in text
        assert PEPPER_TWO not in text


def test_a_truly_unknown_key_gets_the_same_message_and_no_hint(run_cli: RunCli) -> None:
    create_user(run_cli, "alice", {})
    made = ok(
        run_cli("keys", "create", "-u", "alice", "-n", "ci", "--json", env=keyed(pepper=PEPPER_ONE))
    ).json()
    # Same pepper, another key: unknown, and nothing to explain.
    from vutf_cli.security.api_keys import generate_api_key

    stranger = run_cli("keys", "verify", input=generate_api_key(), env=keyed(pepper=PEPPER_ONE))
    assert stranger.exit_code == 5
    assert stranger.stderr == "error: unknown API key\n"
    (row,) = failure_rows(run_cli)
    assert row["changes"] == {"reason": "unknown_key", "usage_recorded": False}
    assert row["resource_id"] is None
    assert made["key_prefix"] not in stranger.stderr


# -- grant-runtime ---------------------------------------------------------------------------
PG_URL = "postgresql://owner@127.0.0.1:1/nowhere"  # --sql is offline: never connected to


def test_grant_runtime_warns_without_an_audit_key() -> None:
    unkeyed = invoke(
        ["db", "grant-runtime", "vutf_app", "--sql"], env={"VUTF_DATABASE_URL": PG_URL}
    )
    assert unkeyed.exit_code == 0, unkeyed.stderr
    assert unkeyed.stdout.splitlines()[-1] == "COMMIT;"  # the script is untouched
    assert unkeyed.stderr.startswith("warning: no VUTF_AUDIT_KEY is set: role 'vutf_app' may")
    assert "forged row verifies" in unkeyed.stderr
    quiet = invoke(
        ["--quiet", "db", "grant-runtime", "vutf_app", "--sql"],
        env={"VUTF_DATABASE_URL": PG_URL},
    )
    assert "warning: no VUTF_AUDIT_KEY" in quiet.stderr  # a warning survives --quiet

    with_key = invoke(
        ["db", "grant-runtime", "vutf_app", "--sql"],
        env={"VUTF_DATABASE_URL": PG_URL, "VUTF_AUDIT_KEY": KEY_ONE},
    )
    assert with_key.exit_code == 0, with_key.stderr
    assert with_key.stdout == unkeyed.stdout
    assert with_key.stderr == ""


def test_a_short_pepper_or_audit_key_is_refused_at_start_up(run_cli: RunCli) -> None:
    """Review finding 10: the stored fingerprints let a reader test guesses offline."""
    for name in ("VUTF_KEY_PEPPER", "VUTF_AUDIT_KEY"):
        secret = "s3cret-but-short-Q1"
        result = run_cli("users", "list", env={name: secret})
        assert (result.exit_code, result.stdout) == (2, ""), result.stderr
        assert result.stderr.splitlines()[0] == (
            f"error: {name} is too short: at least 32 characters (it has {len(secret)})"
        )
        assert result.stderr.splitlines()[1].startswith("hint: make one with: python3 -c")
        assert secret not in result.stderr
    assert run_cli("users", "list", env={"VUTF_AUDIT_KEY": "x" * 32}).exit_code == 0


def test_a_pepper_or_audit_key_of_undecodable_bytes_is_refused_at_start_up(
    run_cli: RunCli,
) -> None:
    # b"\xff" in the environment arrives as "\udcff": no UTF-8 bytes for the HMAC
    # to key on (it used to fail later, as if the data were not UTF-8).
    for name in ("VUTF_KEY_PEPPER", "VUTF_AUDIT_KEY"):
        result = run_cli("users", "list", env={name: "\udcff" + "k" * 40})
        assert (result.exit_code, result.stdout) == (2, ""), result.stderr
        assert result.stderr.splitlines()[0] == f"error: {name} is not valid UTF-8 text"


def test_a_store_refuses_a_short_pepper_or_audit_key(database_url: str) -> None:
    from vutf_cli.store import InvalidInput, Store

    for secret in ({"key_pepper": "short"}, {"audit_key": "short"}):
        with pytest.raises(InvalidInput, match="too short: at least 32 characters"):
            Store.from_url(database_url, actor="svc", **secret)
