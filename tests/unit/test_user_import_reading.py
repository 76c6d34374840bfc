"""Reading and validating import files (vutf_cli.services.user_import), no database.

The CSV reader and the row validation have fast paths for the common case
(no apostrophe-escaped cell, no problem in the row); these tests pin what
the uncommon cases still give: formula escapes undone in every column but
``password``, blank rows skipped without shifting line numbers, and every
problem of a row reported, in order, with its line.
"""

from __future__ import annotations

import pytest

from vutf_cli.errors import InvalidInput
from vutf_cli.security.passwords import Passwords
from vutf_cli.services.user_import import ImportRow, RowProblem, parse_records, validate_records

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def passwords() -> Passwords:
    return Passwords("test")


def validate(passwords: Passwords, text: str) -> tuple[list[ImportRow], list[RowProblem]]:
    parsed = parse_records(text.encode("utf-8"), fmt="csv")
    return validate_records(
        parsed.records,
        check_strength=passwords.check_strength,
        is_argon2id_hash=passwords.is_argon2id_hash,
    )


def test_formula_escapes_are_undone_except_in_passwords() -> None:
    text = (
        "username,email,full_name,password\n"
        f"ann,ann@example.com,'=SUM(A1),'={PASSWORD}\n"
        f"ben,ben@example.com,'plain apostrophe,'-{PASSWORD}\n"
        f"cat,cat@example.com,'@home,{PASSWORD}\n"
    )

    records = parse_records(text.encode(), fmt="csv").records

    assert [dict(record.values) for record in records] == [
        {
            "username": "ann",
            "email": "ann@example.com",
            "full_name": "=SUM(A1)",
            "password": f"'={PASSWORD}",
        },
        {
            "username": "ben",
            "email": "ben@example.com",
            "full_name": "'plain apostrophe",  # not before a formula trigger: kept
            "password": f"'-{PASSWORD}",
        },
        {
            "username": "cat",
            "email": "cat@example.com",
            "full_name": "@home",
            "password": PASSWORD,
        },
    ]


def test_blank_rows_are_skipped_and_lines_still_count() -> None:
    text = (
        "username,email,password\n"
        f"ann,ann@example.com,{PASSWORD}\n"
        " , ,\t\n"
        "\n"
        ",,\n"
        f'ben,ben@example.com,"{PASSWORD}\nover two lines"\n'
        f"cat,cat@example.com,{PASSWORD}\n"
    )

    records = parse_records(text.encode(), fmt="csv").records

    assert [(record.line, record.values["username"]) for record in records] == [
        (2, "ann"),
        (6, "ben"),
        (8, "cat"),
    ]


def test_every_problem_of_a_row_is_reported_in_order(passwords: Passwords) -> None:
    text = (
        "username,email,full_name,is_active,is_deleted,password,password_hash\n"
        "x,not-an-email,ok,perhaps,yes,short,\n"
        f"good,good@example.com,,,,{PASSWORD},\n"
        'both,both@example.com,,,,secret,"$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA"\n'
        "none,none@example.com,,no,no,,\n"
        "hash,hash@example.com,,,,,$argon2id$nonsense\n"
        "a,b\n"
    )

    rows, problems = validate(passwords, text)

    assert [(row.line, row.username, row.is_active) for row in rows] == [(3, "good", True)]
    assert [str(problem) for problem in problems] == [
        "line 2: invalid username 'x': use 3 to 100 characters from A-Z, a-z, 0-9, '_' and '-'",
        "line 2: invalid email address 'not-an-email': it must contain exactly one '@'",
        "line 2: is_active must be true or false, not 'perhaps'",
        "line 2: the user is deleted; deleted users are not imported",
        "line 2: password too short: it must be at least 15 characters (got 5)",
        "line 4: give either password or password_hash, not both",
        "line 5: a password or a password_hash is required",
        "line 6: password_hash is not an argon2id PHC string "
        "($argon2id$v=19$m=...,t=...,p=...$salt$hash) with sane parameters",
        "line 7: the row has 2 cells, the header has another number",
    ]


def test_json_values_of_the_wrong_type_are_problems_of_their_row(passwords: Passwords) -> None:
    data = (
        '{"username": "ann", "email": "ann@example.com", "password": 5}\n'
        '{"username": "ben", "email": "ben@example.com", "is_active": "yes",'
        f' "password": "{PASSWORD}"}}\n'
    ).encode()

    records = parse_records(data, fmt="jsonl").records
    rows, problems = validate_records(
        records,
        check_strength=passwords.check_strength,
        is_argon2id_hash=passwords.is_argon2id_hash,
    )

    assert rows == []
    assert [str(problem) for problem in problems] == [
        "line 1: password must be a string, not a number",
        "line 2: is_active must be true or false, not a string",
    ]


@pytest.mark.parametrize(
    ("fmt", "text", "line"),
    [
        ("jsonl", '{"username": "a1"}\n{"username": "a2", "email": "e", "username": "a3"}\n', 2),
        ("json", '[{"username": "a1"},\n {"email": "e", "email": "f"}]', 2),
        ("json", '[{"username": "a1", "meta": {"k": 1, "k": 2}}]', 1),
    ],
    ids=["jsonl", "json", "nested"],
)
def test_a_key_repeated_in_one_object_is_refused(fmt: str, text: str, line: int) -> None:
    # json keeps the last of repeated keys: an import would silently pick one.
    with pytest.raises(InvalidInput) as caught:
        parse_records(text.encode("utf-8"), fmt=fmt)
    assert caught.value.message.startswith(f"line {line}: not valid JSON: the key ")
    assert "appears twice in one object" in caught.value.message


def test_objects_of_a_json_array_know_their_line_and_number() -> None:
    text = '[{"username": "a"}, {"username": "b"},\n\n  {"username": "c"}\n,{"username": "d"}]'
    records = parse_records(text.encode("utf-8"), fmt="json").records
    assert [(r.row, r.line, r.location) for r in records] == [
        (1, 1, "line 1, object 1"),
        (2, 1, "line 1, object 2"),
        (3, 3, "line 3, object 3"),
        (4, 4, "line 4, object 4"),
    ]
