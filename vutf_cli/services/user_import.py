"""Reading user files for ``vutf users import``, and hashing their passwords.

This module knows file formats and password hashing; it never touches the
database (``vutf_cli.services.users.import_users`` does, using what is parsed
here).  It is also what a password-hashing worker process imports, so it stays
free of SQLAlchemy.

Formats (``--format``, else the file's suffix, else sniffed from the first
character: ``[`` json, ``{`` jsonl, anything else csv):

* ``json``: one array of objects;
* ``jsonl``: one object per line (blank lines are skipped);
* ``csv``: a header row, then one row per user; UTF-8 with or without a byte
  order mark, ``\\n`` or ``\\r\\n`` line ends.

Columns:

* ``username`` and ``email`` (required), ``full_name``, ``is_superuser``,
  ``is_active`` (default true), ``is_verified``;
* exactly one of ``password`` (plaintext, subject to the password policy) and
  ``password_hash`` (an argon2id PHC string, e.g. from ``users export
  --include-hashes``);
* the other columns of ``users export`` (``id``, timestamps, ``version``...)
  are accepted and ignored, since the database assigns them anew, so an export
  can be imported as it is.  A row with ``is_deleted`` true is refused: a
  deleted user is not brought back to life by an import.
* Any other column is an error naming it.

In CSV, booleans are ``true/false``, ``yes/no``, ``1/0`` (empty: the
default), an empty ``full_name`` is none, an empty ``password`` or
``password_hash`` is absent, and one leading apostrophe before ``=``, ``+``,
``-``, ``@``, tab or CR is removed (it is how ``-o csv`` defuses spreadsheet
formulas) in every column except ``password``.

Every problem is reported with the line it was found on (for JSON, the line
where the object starts); line 1 of a CSV file is its header.
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import operator
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Final

from vutf_cli.domain.validation import (
    PASSWORD_HASH_MAX_LENGTH,
    normalize_email,
    validate_full_name,
    validate_username,
)
from vutf_cli.errors import Conflict, InvalidInput, VutfError

__all__ = [
    "EXPORT_ONLY_COLUMNS",
    "FORMATS",
    "IMPORT_COLUMNS",
    "PARALLEL_THRESHOLD",
    "ImportConflict",
    "ImportRejected",
    "ImportRow",
    "ParsedFile",
    "ProgressFactory",
    "RawRecord",
    "RowProblem",
    "detect_format",
    "hash_passwords",
    "parse_records",
    "validate_records",
]

FORMATS: Final = ("json", "jsonl", "csv")
IMPORT_COLUMNS: Final = (
    "username",
    "email",
    "full_name",
    "is_superuser",
    "is_active",
    "is_verified",
    "password",
    "password_hash",
)
REQUIRED_COLUMNS: Final = ("username", "email")
# The rest of what `users export` writes: accepted so an export imports as it
# is, and ignored because the database assigns them (is_deleted is checked).
EXPORT_ONLY_COLUMNS: Final = (
    "id",
    "verified_at",
    "last_login_at",
    "last_login_ip",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
    "version",
    "is_deleted",
    "deleted_at",
    "deleted_by",
)
_KNOWN_COLUMNS: Final = frozenset(IMPORT_COLUMNS) | frozenset(EXPORT_ONLY_COLUMNS)
_BOOLEAN_DEFAULTS: Final = {"is_superuser": False, "is_active": True, "is_verified": False}
_TRUE_WORDS: Final = frozenset({"true", "t", "yes", "y", "1"})
_FALSE_WORDS: Final = frozenset({"false", "f", "no", "n", "0"})
# What csv_safe (vutf_cli.output.sanitize) puts an apostrophe in front of.
_FORMULA_TRIGGERS: Final = ("=", "+", "-", "@", "\t", "\r")
_SUFFIX_FORMATS: Final = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}

# Below this many plaintext passwords, starting worker processes costs more
# than it saves.
PARALLEL_THRESHOLD: Final = 8
# Most passwords handed to a hashing worker at once.
_MAX_CHUNK: Final = 16


# -- results and errors ----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RowProblem:
    """Something wrong with record number ``row`` of the file (from 1), which starts on ``line``.

    ``row`` tells records apart (several objects of a compact JSON array share
    a line); ``location`` is how messages name the record.
    """

    row: int
    line: int
    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"

    def as_json(self) -> dict[str, Any]:
        return {"row": self.row, "line": self.line, "message": self.message}


def _summary(problems: Sequence[RowProblem]) -> str:
    count = len({problem.row for problem in problems})
    rows = "row" if count == 1 else "rows"
    return f"import refused: {len(problems)} problem(s) in {count} {rows}; nothing was written"


class _RefusedRows(VutfError):
    """Rows of the file that stop the import; ``problems`` says where and why."""

    refusal_hint: str

    def __init__(self, problems: Sequence[RowProblem], *, message: str | None = None) -> None:
        super().__init__(message or _summary(problems), hint=self.refusal_hint)
        self.problems = tuple(problems)

    def details(self) -> dict[str, Any]:
        return {"problems": [problem.as_json() for problem in self.problems]}


class ImportRejected(_RefusedRows, InvalidInput):
    """Rows of the file are invalid (exit 2)."""

    code = "invalid_import"
    refusal_hint = "fix the rows listed above and run it again"


class ImportConflict(_RefusedRows, Conflict):
    """Rows of the file clash with existing users (exit 4)."""

    code = "import_conflict"
    refusal_hint = "remove those rows, or use --skip-existing to leave existing users alone"


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record as read from the file, before validation.

    ``row`` is its number among the file's records (from 1), ``line`` the line
    it starts on; ``in_array`` marks the objects of a JSON array, which may
    share a line.  ``from_csv`` changes how values are read (everything is
    text there); ``cell_count`` is set when a CSV row has not as many cells
    as the header.
    """

    row: int
    line: int
    values: Mapping[str, Any]
    from_csv: bool = False
    cell_count: int | None = None
    in_array: bool = False

    @property
    def location(self) -> str:
        if self.in_array:
            return f"line {self.line}, object {self.row}"
        return f"line {self.line}"

    def problem(self, message: str) -> RowProblem:
        return RowProblem(self.row, self.line, self.location, message)


@dataclass(frozen=True, slots=True)
class ParsedFile:
    format: str
    records: tuple[RawRecord, ...]


@dataclass(frozen=True, slots=True)
class ImportRow:
    """A validated row: what will be registered.  Secrets are kept out of repr().

    ``row`` and ``location`` are those of its :class:`RawRecord`.
    """

    row: int
    line: int
    location: str
    username: str
    email: str
    full_name: str | None
    is_superuser: bool
    is_active: bool
    is_verified: bool
    password: str | None = field(default=None, repr=False)
    password_hash: str | None = field(default=None, repr=False)

    def problem(self, message: str) -> RowProblem:
        return RowProblem(self.row, self.line, self.location, message)


# -- format ---------------------------------------------------------------------
def detect_format(text: str, *, explicit: str | None, source: str | None) -> str:
    """``explicit`` if given, else from the file suffix, else from the first character."""
    if explicit is not None:
        fmt = explicit.strip().lower()
        if fmt not in FORMATS:
            raise InvalidInput(
                f"unknown import format {explicit!r}", hint="use one of: " + ", ".join(FORMATS)
            )
        return fmt
    if source and source != "-":
        by_suffix = _SUFFIX_FORMATS.get(PurePath(source).suffix.lower())
        if by_suffix is not None:
            return by_suffix
    first = text.lstrip()[:1]
    if first == "[":
        return "json"
    if first == "{":
        return "jsonl"
    return "csv"


def decode(data: bytes) -> str:
    """UTF-8 text (a byte order mark is dropped); InvalidInput for anything else."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the import file is not valid UTF-8 (at byte {exc.start})") from None


def parse_records(data: bytes, *, fmt: str | None = None, source: str | None = None) -> ParsedFile:
    """Read every record of ``data``; InvalidInput for a file that is not usable at all."""
    text = decode(data)
    if not text.strip():
        raise InvalidInput("the import file is empty")
    chosen = detect_format(text, explicit=fmt, source=source)
    if chosen == "json":
        records = list(_json_records(text))
    elif chosen == "jsonl":
        records = list(_jsonl_records(text))
    else:
        records = list(_csv_records(text))
    if chosen != "csv":
        _check_columns({name for record in records for name in record.values})
    return ParsedFile(format=chosen, records=tuple(records))


def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\r\n":
        index += 1
    return index


def _json_error(text: str, exc: json.JSONDecodeError) -> InvalidInput:
    return InvalidInput(f"line {exc.lineno}: not valid JSON: {exc.msg} (column {exc.colno})")


def _json_records(text: str) -> Iterator[RawRecord]:
    """The objects of a JSON array, each with the line it starts on."""
    decoder = _DECODER
    index = _skip_space(text, 0)
    if text[index : index + 1] != "[":
        raise InvalidInput(
            f"line {_line_of(text, index)}: expected a JSON array of user objects",
            hint="for one object per line use --format jsonl",
        )
    index = _skip_space(text, index + 1)
    if text[index : index + 1] == "]":
        index += 1
    else:
        row = 1
        # Counted on from the previous object: counting from the top for each
        # one made a 10,000-object file take seconds.
        line, counted_to = 1, 0
        while True:
            start = index
            line += text.count("\n", counted_to, start)
            counted_to = start
            try:
                value, index = decoder.raw_decode(text, index)
            except json.JSONDecodeError as exc:
                raise _json_error(text, exc) from None
            except RecursionError:
                raise _too_deep(line) from None
            except _DuplicateKey as exc:
                raise exc.at(line) from None
            yield _object_record(value, row, line, in_array=True)
            row += 1
            index = _skip_space(text, index)
            separator = text[index : index + 1]
            if separator == "]":
                index += 1
                break
            if separator != ",":
                raise InvalidInput(
                    f"line {_line_of(text, index)}: not valid JSON: expected ',' or ']'"
                )
            index = _skip_space(text, index + 1)
    if _skip_space(text, index) != len(text):
        raise InvalidInput(
            f"line {_line_of(text, index)}: not valid JSON: extra data after the array"
        )


def _jsonl_records(text: str) -> Iterator[RawRecord]:
    row = 1
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = _DECODER.decode(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"line {number}: not valid JSON: {exc.msg}") from None
        except RecursionError:
            raise _too_deep(number) from None
        except _DuplicateKey as exc:
            raise exc.at(number) from None
        yield _object_record(value, row, number)
        row += 1


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key

    def at(self, line: int) -> InvalidInput:
        return InvalidInput(f"line {line}: the key {self.key!r} appears twice in one object")


def _object_without_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json keeps the last of repeated keys; for an import that would silently
    # pick one of two usernames (or passwords).
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key[:60])
            seen.add(key)
    return value


_DECODER: Final = json.JSONDecoder(object_pairs_hook=_object_without_duplicate_keys)


def _too_deep(line: int) -> InvalidInput:
    # The json module recurses once per nesting level; no user record nests.
    return InvalidInput(f"line {line}: not valid JSON: nested too deeply")


def _object_record(value: Any, row: int, line: int, *, in_array: bool = False) -> RawRecord:
    if not isinstance(value, dict):
        raise InvalidInput(f"line {line}: expected a JSON object, got {_json_type(value)}")
    return RawRecord(row=row, line=line, values=value, in_array=in_array)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _check_columns(names: set[str]) -> None:
    unknown = sorted(names - _KNOWN_COLUMNS)
    if unknown:
        raise InvalidInput(
            "unknown column(s): " + ", ".join(repr(name)[:60] for name in unknown),
            hint="known columns: " + ", ".join(IMPORT_COLUMNS) + " (plus those of users export)",
        )


_starts_with_apostrophe: Final = operator.methodcaller("startswith", "'")


def _unescape_formula(cell: str) -> str:
    if len(cell) > 1 and cell[0] == "'" and cell[1:].startswith(_FORMULA_TRIGGERS):
        return cell[1:]
    return cell


def _csv_records(text: str) -> Iterator[RawRecord]:
    # newline="": the csv module sees the raw line ends, so "\r\n" and quoted
    # newlines inside cells are read correctly.
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except csv.Error as exc:
        raise InvalidInput(f"line 1: not valid CSV: {exc}") from None
    columns = [name.strip() for name in header]
    duplicated = sorted({name for name in columns if columns.count(name) > 1})
    if duplicated:
        raise InvalidInput("line 1: duplicate column(s): " + ", ".join(duplicated))
    _check_columns(set(columns))
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise InvalidInput("line 1: missing required column(s): " + ", ".join(missing))
    row = 0
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InvalidInput(f"line {start}: not valid CSV: {exc}") from None
        if not "".join(cells).strip():
            continue
        row += 1
        if len(cells) != len(columns):
            # Reported as a problem of this row, not the whole file.
            yield RawRecord(row, start, {}, from_csv=True, cell_count=len(cells))
            continue
        values = dict(zip(columns, cells, strict=True))
        if any(map(_starts_with_apostrophe, cells)):  # rare: only then look cell by cell
            values = {
                name: cell if name == "password" else _unescape_formula(cell)
                for name, cell in values.items()
            }
        yield RawRecord(row, start, values, from_csv=True)


# -- validation -----------------------------------------------------------------
def _text(values: Mapping[str, Any], name: str, csv_row: bool) -> str | None:
    """A text column: None when absent, null, or (in CSV) empty."""
    value = values.get(name)
    if value is None or (csv_row and value == ""):
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string, not {_json_type(value)}")
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
    raise InvalidInput(f"{name} must be true or false, not {_json_type(value)}")


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
) -> tuple[list[ImportRow], list[RowProblem]]:
    """Validated rows and the problems of the others (duplicates within the file included).

    A username or email that appears twice (compared case-insensitively) is a
    problem of every later row that repeats it.
    """
    rows: list[ImportRow] = []
    problems: list[RowProblem] = []
    for record in records:
        row, found = _validate_one(record, check_strength, is_argon2id_hash)
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


# -- hashing --------------------------------------------------------------------
# What Terminal.progress is: (total, description) -> context yielding advance(steps).
ProgressFactory = Callable[[int | None, str], AbstractContextManager[Callable[[int], None]]]

_worker_passwords: Any = None


def _init_worker(profile: str, min_length: int) -> None:
    global _worker_passwords  # one hasher per worker process
    from vutf_cli.security.passwords import Passwords

    _worker_passwords = Passwords(profile, min_length=min_length)


def _hash_in_worker(password: str) -> str:
    result: str = _worker_passwords.hash(password)
    return result


def _no_progress(_steps: int = 1) -> None:
    return None


def _bar(progress: ProgressFactory | None, total: int) -> AbstractContextManager[Any]:
    if progress is None:
        return nullcontext(_no_progress)
    return progress(total, "hashing passwords")


def _pool_context() -> multiprocessing.context.BaseContext:
    """fork on Linux (cheap, nothing re-imported), spawn elsewhere.

    The pool's processes are started before the progress bar (and its
    refresh thread) exists, so the fork happens in a single-threaded process.
    spawn re-imports the main module in each worker, which is why it is not
    the first choice.
    """
    method = "fork" if sys.platform == "linux" else "spawn"
    return multiprocessing.get_context(method)


def hash_passwords(
    passwords: Sequence[str],
    *,
    profile: str,
    min_length: int,
    workers: int | None = None,
    progress: ProgressFactory | None = None,
) -> list[str]:
    """argon2id hashes of ``passwords``, in order.

    argon2 is CPU-bound, so with more than :data:`PARALLEL_THRESHOLD`
    passwords the work is spread over a process pool of ``workers`` processes
    (default ``os.cpu_count()``).  If the pool cannot be started the
    passwords are hashed here, one by one.  ``progress`` (like
    ``Terminal.progress``) shows a bar while hashing.
    """
    count = len(passwords)
    pool_size = min(workers if workers is not None else (os.cpu_count() or 1), count)
    if count > PARALLEL_THRESHOLD and pool_size > 1:
        try:
            return _hash_in_pool(passwords, profile, min_length, pool_size, progress)
        except (BrokenProcessPool, OSError):
            pass  # e.g. not allowed to start processes: do it here instead
    from vutf_cli.security.passwords import Passwords

    hasher = Passwords(profile, min_length=min_length)
    hashes = []
    with _bar(progress if count else None, count) as advance:
        for password in passwords:
            hashes.append(hasher.hash(password))
            advance(1)
    return hashes


def _hash_in_pool(
    passwords: Sequence[str],
    profile: str,
    min_length: int,
    pool_size: int,
    progress: ProgressFactory | None,
) -> list[str]:
    # Chunks, not one task per password, so IPC is paid per chunk; but small
    # ones, so the progress bar moves steadily and no worker sits idle at the
    # end while another finishes a long chunk (a hash is 0.1 s or more,
    # passing a chunk of 16 around costs well under a millisecond).
    chunk = max(1, min(_MAX_CHUNK, len(passwords) // (pool_size * 4)))
    with ProcessPoolExecutor(
        max_workers=pool_size,
        mp_context=_pool_context(),
        initializer=_init_worker,
        initargs=(profile, min_length),
    ) as pool:
        # map() submits every chunk now, which starts the workers now.
        results = pool.map(_hash_in_worker, passwords, chunksize=chunk)
        hashes = []
        with _bar(progress, len(passwords)) as advance:
            for digest in results:
                hashes.append(digest)
                advance(1)
        return hashes
