"""Names and emails that render alike are one identity (issue 11, item 10), on both backends.

Every entry point normalizes with NFKC before the case-insensitive rule
(``vutf_cli.domain.validation.identity_key``): NFD and NFC, full-width forms
and compatibility forms (the ligature ``ﬁ``) of a username or an email are
the same user for create, update, import and every lookup; the stored form
is the normalized one.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import CliResult, RunCli
from vutf_cli.db.database import Database
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.validation import identity_key, normalize_email, validate_username
from vutf_cli.errors import Conflict

PASSWORD = "correct horse battery staple"
NFC_EMAIL = "jos\u00e9@example.com"  # é precomposed
NFD_EMAIL = unicodedata.normalize("NFD", NFC_EMAIL)  # e + combining acute
FULL_WIDTH_ALICE = "\uff41\uff4c\uff49\uff43\uff45"  # "alice" in full-width letters


def ok(result: CliResult) -> CliResult:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def create(run_cli: RunCli, username: str, email: str, *extra: str) -> CliResult:
    return run_cli(
        "users",
        "create",
        username,
        "--email",
        email,
        "--password-stdin",
        "--json",
        *extra,
        input=PASSWORD,
    )


def show(run_cli: RunCli, ident: str) -> dict[str, Any]:
    user: dict[str, Any] = ok(run_cli("users", "show", ident, "--json")).json()
    return user


# -- the rule itself -------------------------------------------------------------------------
def test_nfd_and_nfc_differ_before_normalization() -> None:
    assert NFC_EMAIL != NFD_EMAIL  # the test data really is two spellings


@pytest.mark.parametrize(
    ("spelled", "stored"),
    [
        (FULL_WIDTH_ALICE, "alice"),
        ("\uff21\uff2c\uff29\uff23\uff25", "ALICE"),  # full-width capitals keep their case
        ("\ufb01nn", "finn"),  # the ligature ﬁ
        ("bob\uff3f1", "bob_1"),  # full-width low line
    ],
)
def test_username_compatibility_forms_become_ascii(spelled: str, stored: str) -> None:
    assert validate_username(spelled) == stored


@pytest.mark.parametrize(
    "spelled",
    [
        NFD_EMAIL,
        "JOS\u00c9@EXAMPLE.COM",
        "jos\u00e9\uff20\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com",
    ],
)
def test_email_spellings_normalize_to_one(spelled: str) -> None:
    assert normalize_email(spelled) == NFC_EMAIL
    assert identity_key(spelled) == NFC_EMAIL


# -- create ----------------------------------------------------------------------------------
def test_full_width_username_is_a_duplicate(run_cli: RunCli) -> None:
    ok(create(run_cli, "alice", "alice@example.com"))
    for spelled in (FULL_WIDTH_ALICE, "\uff21\uff2c\uff29\uff23\uff25"):
        result = create(run_cli, spelled, "other@example.com")
        assert result.exit_code == 4, result.stderr
        assert "a user with that username already exists" in result.stderr
        assert result.stdout == ""


def test_full_width_username_is_stored_as_ascii(run_cli: RunCli) -> None:
    created = ok(create(run_cli, "\uff42\uff4f\uff42", "bob@example.com")).json()
    assert created["username"] == "bob"
    assert show(run_cli, "bob")["id"] == created["id"]


def test_nfd_email_is_a_duplicate_of_nfc(run_cli: RunCli) -> None:
    created = ok(create(run_cli, "jose", NFC_EMAIL)).json()
    assert created["email"] == NFC_EMAIL
    result = create(run_cli, "jose2", NFD_EMAIL)
    assert result.exit_code == 4, result.stderr
    assert "a user with that email already exists" in result.stderr


def test_nfd_email_is_stored_nfc(run_cli: RunCli) -> None:
    created = ok(create(run_cli, "jose", NFD_EMAIL)).json()
    assert created["email"] == NFC_EMAIL


def test_ligature_email_is_a_duplicate(run_cli: RunCli) -> None:
    ok(create(run_cli, "finn", "finn@example.com"))
    result = create(run_cli, "finn2", "\ufb01nn@example.com")
    assert result.exit_code == 4, result.stderr


# -- lookups ---------------------------------------------------------------------------------
def test_lookup_by_nfd_email_finds_the_nfc_user(run_cli: RunCli) -> None:
    created = ok(create(run_cli, "jose", NFC_EMAIL)).json()
    assert show(run_cli, NFD_EMAIL)["id"] == created["id"]
    full_width_at = NFD_EMAIL.replace("@", "\uff20")
    assert show(run_cli, full_width_at)["id"] == created["id"]
    ok(run_cli("users", "check-password", NFD_EMAIL, "--password-stdin", input=PASSWORD))
    ok(run_cli("users", "deactivate", NFD_EMAIL))
    assert show(run_cli, "jose")["is_active"] is False


def test_lookup_by_full_width_username_in_key_commands(run_cli: RunCli) -> None:
    created = ok(create(run_cli, "alice", "alice@example.com", "--superuser")).json()
    key = ok(run_cli("keys", "create", "--user", FULL_WIDTH_ALICE, "--name", "ci", "--json")).json()
    assert key["user_id"] == created["id"]
    listed = ok(run_cli("keys", "list", "--user", FULL_WIDTH_ALICE, "--json")).json()
    assert [k["name"] for k in listed] == ["ci"]


# -- update ----------------------------------------------------------------------------------
def test_update_to_another_spelling_of_a_taken_email_is_a_conflict(run_cli: RunCli) -> None:
    ok(create(run_cli, "jose", NFC_EMAIL))
    ok(create(run_cli, "maria", "maria@example.com"))
    result = run_cli("users", "update", "maria", "--email", NFD_EMAIL)
    assert result.exit_code == 4, result.stderr
    assert "a user with that email already exists" in result.stderr
    assert show(run_cli, "maria")["email"] == "maria@example.com"


def test_repository_update_stores_the_normalized_username(run_cli: RunCli, db: Database) -> None:
    # No command renames a user; the repository's update is the entry point that does.
    ok(create(run_cli, "maria", "maria@example.com"))
    ok(create(run_cli, "maria2", "m2@example.com"))

    def rename(uow: UnitOfWork, to: str) -> str:
        user = uow.users.require("maria")
        return uow.users.update(user, username=to).username

    with pytest.raises(Conflict):  # full-width "maria2": taken
        db.run(lambda uow: rename(uow, "\uff4d\uff41\uff52\uff49\uff41\uff12"))
    assert db.run(lambda uow: rename(uow, "\uff4d\uff41\uff52\uff49\uff41\uff13")) == "maria3"
    assert show(run_cli, "maria3")["email"] == "maria@example.com"


# -- import ----------------------------------------------------------------------------------
def test_import_of_two_rows_that_normalize_equal_is_refused_by_line(
    run_cli: RunCli, tmp_path: Path
) -> None:
    rows = [
        {"username": "carol", "email": "carol@example.com", "password": PASSWORD},
        {
            "username": "\uff43\uff41\uff52\uff4f\uff4c",
            "email": "c2@example.com",
            "password": PASSWORD,
        },
        {"username": "dave", "email": NFC_EMAIL, "password": PASSWORD},
        {"username": "erin", "email": NFD_EMAIL, "password": PASSWORD},
    ]
    source = tmp_path / "users.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    result = run_cli("users", "import", str(source))
    assert result.exit_code == 2, result.stderr
    problems = [line for line in result.stderr.splitlines() if line.startswith("line ")]
    assert problems == [
        "line 2: username 'carol' is already on line 1",
        f"line 4: email {NFC_EMAIL!r} is already on line 3",
    ]
    assert ok(run_cli("users", "list", "--json")).json() == []


def test_import_of_another_spelling_of_an_existing_user_is_a_conflict(
    run_cli: RunCli, tmp_path: Path
) -> None:
    ok(create(run_cli, "jose", NFC_EMAIL))
    source = tmp_path / "users.jsonl"
    row = {"username": "\uff4a\uff4f\uff53\uff45", "email": NFD_EMAIL, "password": PASSWORD}
    source.write_text(json.dumps(row) + "\n", encoding="utf-8")
    result = run_cli("users", "import", str(source))
    assert result.exit_code == 4, result.stderr
    assert "user 'jose' already exists" in result.stderr
    assert [u["username"] for u in ok(run_cli("users", "list", "--json")).json()] == ["jose"]


def test_history_of_a_hard_deleted_user_is_found_by_any_spelling(run_cli: RunCli) -> None:
    """Review finding 5: ``audit list --user`` history resolution uses the one identity rule."""
    created = ok(create(run_cli, "alice", "alice@example.org")).json()
    ok(run_cli("users", "delete", "alice", "--hard", "--yes"))
    for spelled in ("alice", FULL_WIDTH_ALICE, "alice\uff20example.org", "ALICE@EXAMPLE.ORG"):
        result = run_cli("audit", "list", "--user", spelled, "-o", "jsonl")
        assert result.exit_code == 0, (spelled, result.stderr)
        rows = result.jsonl()
        assert rows, spelled
        assert {row["user_id"] for row in rows} == {created["id"]}, spelled
