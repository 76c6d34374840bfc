"""Validating the records of an import file into rows to register, or problems.

Every problem is kept (all rows are checked), each with the record it belongs
to; a username or email repeated within the file is a problem of the later
rows.  A ``password_hash`` outside the configured profile's bounds (weaker,
or more than ``COST_BOUND`` times its memory or passes:
``Passwords.weakness``) is a problem too, unless such hashes are allowed:
then a weaker one is marked ``weak_hash`` and replaced at the user's next
successful login, and a costlier one is kept (docs/architecture.md §3.4).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from vutf_cli.domain.validation import (
    PASSWORD_HASH_MAX_LENGTH,
    normalize_email,
    validate_full_name,
    validate_username,
)
from vutf_cli.errors import InvalidInput, VutfError
from vutf_cli.services.user_import.records import ImportRow, RawRecord, RowProblem, json_type

if TYPE_CHECKING:
    from vutf_cli.security.passwords import Weakness

__all__ = ["validate_records"]

_BOOLEAN_DEFAULTS: Final = {"is_superuser": False, "is_active": True, "is_verified": False}
_TRUE_WORDS: Final = frozenset({"true", "t", "yes", "y", "1"})
_FALSE_WORDS: Final = frozenset({"false", "f", "no", "n", "0"})


def _text(values: Mapping[str, Any], name: str, csv_row: bool) -> str | None:
    """A text column: None when absent, null, or (in CSV) empty."""
    value = values.get(name)
    if value is None or (csv_row and value == ""):
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string, not {json_type(value)}")
    return value


def _boolean(values: Mapping[str, Any], name: str, csv_row: bool) -> bool:
    value = values.get(name)
    if value is None or (csv_row and value.strip() == ""):
        return _BOOLEAN_DEFAULTS.get(name, False)
    if isinstance(value, bool):
        return value
    if csv_row and isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        raise InvalidInput(f"{name} must be true or false, not {value[:20]!r}")
    raise InvalidInput(f"{name} must be true or false, not {json_type(value)}")


def _checked(problems: list[str], check: Callable[..., Any], *args: Any) -> Any:
    """``check(*args)``, or None with its message added to ``problems`` if it refuses."""
    try:
        return check(*args)
    except VutfError as exc:
        problems.append(exc.message)
        return None


def _full_name(values: Mapping[str, Any], csv_row: bool) -> str | None:
    return validate_full_name(_text(values, "full_name", csv_row))


def _validate_one(
    record: RawRecord,
    check_strength: Callable[[str], None],
    is_argon2id_hash: Callable[[str], bool],
    weakness: Callable[[str], Weakness | None] | None,
    allow_weak_hashes: bool,
) -> tuple[ImportRow | None, list[RowProblem]]:
    if record.cell_count is not None:
        message = f"the row has {record.cell_count} cells, the header has another number"
        return None, [record.problem(message)]
    values = record.values
    csv_row = record.from_csv
    # Messages, made RowProblems at the end: most rows have none.
    problems: list[str] = []
    username = _checked(problems, _required, values, "username", csv_row, validate_username)
    email = _checked(problems, _required, values, "email", csv_row, normalize_email)
    full_name = _checked(problems, _full_name, values, csv_row)
    is_superuser = _checked(problems, _boolean, values, "is_superuser", csv_row)
    is_active = _checked(problems, _boolean, values, "is_active", csv_row)
    is_verified = _checked(problems, _boolean, values, "is_verified", csv_row)
    if _checked(problems, _boolean, values, "is_deleted", csv_row):
        problems.append("the user is deleted; deleted users are not imported")
    known_problems = len(problems)
    weak_hash = False
    password = _checked(problems, _text, values, "password", csv_row)
    password_hash = _checked(problems, _text, values, "password_hash", csv_row)
    if len(problems) > known_problems:
        pass  # a password column of the wrong type, already reported
    elif password is not None and password_hash is not None:
        problems.append("give either password or password_hash, not both")
    elif password is None and password_hash is None:
        problems.append("a password or a password_hash is required")
    elif password is not None:
        _checked(problems, check_strength, password)
    elif len(password_hash) > PASSWORD_HASH_MAX_LENGTH:
        problems.append(f"password_hash is longer than {PASSWORD_HASH_MAX_LENGTH} characters")
    elif not is_argon2id_hash(password_hash):
        problems.append(
            "password_hash is not an argon2id PHC string "
            "($argon2id$v=19$m=...,t=...,p=...$salt$hash) with sane parameters"
        )
    elif weakness is not None and (weak := weakness(password_hash)) is not None:
        # Only a weaker hash is replaced at login; a costlier one is kept as it is.
        weak_hash = weak.replaced_on_login
        if not allow_weak_hashes:
            fate = "to be rehashed at the next login" if weak_hash else "as it is"
            problems.append(
                f"password_hash is outside the configured argon2 profile's bounds ({weak}); "
                f"--allow-weak-hashes imports it {fate}"
            )
    if problems:
        return None, [record.problem(message) for message in problems]
    return (
        ImportRow(
            row=record.row,
            line=record.line,
            location=record.location,
            username=username,
            email=email,
            full_name=full_name,
            is_superuser=bool(is_superuser),
            is_active=bool(is_active),
            is_verified=bool(is_verified),
            password=password,
            password_hash=password_hash,
            weak_hash=weak_hash,
        ),
        [],
    )


def _required(
    values: Mapping[str, Any], name: str, csv_row: bool, validate: Callable[[str], str]
) -> str:
    value = _text(values, name, csv_row)
    if value is None:
        raise InvalidInput(f"{name} is required")
    return validate(value)


def validate_records(
    records: Sequence[RawRecord],
    *,
    check_strength: Callable[[str], None],
    is_argon2id_hash: Callable[[str], bool],
    weakness: Callable[[str], Weakness | None] | None = None,
    allow_weak_hashes: bool = False,
) -> tuple[list[ImportRow], list[RowProblem]]:
    """Validated rows and the problems of the others (duplicates within the file included).

    A username or email that appears twice (compared case-insensitively) is a
    problem of every later row that repeats it.  ``weakness`` says what makes
    a hash weaker than the configured profile (None: nothing); such a hash is
    a problem unless ``allow_weak_hashes``.
    """
    rows: list[ImportRow] = []
    problems: list[RowProblem] = []
    for record in records:
        row, found = _validate_one(
            record, check_strength, is_argon2id_hash, weakness, allow_weak_hashes
        )
        problems.extend(found)
        if row is not None:
            rows.append(row)
    first_username: dict[str, ImportRow] = {}
    first_email: dict[str, ImportRow] = {}
    unique: list[ImportRow] = []
    for row in rows:
        clashes = []
        first = first_username.setdefault(row.username.lower(), row)
        if first is not row:
            clashes.append(f"username {row.username!r} is already on {first.location}")
        first = first_email.setdefault(row.email, row)
        if first is not row:
            clashes.append(f"email {row.email!r} is already on {first.location}")
        if clashes:
            problems.extend(row.problem(clash) for clash in clashes)
        else:
            unique.append(row)
    problems.sort(key=lambda problem: problem.row)
    return unique, problems
