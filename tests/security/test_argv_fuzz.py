"""Property-based tests over the argv of every command (issue item 9).

The live command tree is walked (``typer.main.get_command``), and for each
leaf command Hypothesis builds command lines out of its real parameters:
plausible values (seeded usernames, key prefixes, scopes, durations, times)
mixed with hostile ones (control characters, NUL, invalid UTF-8 as Python
sees it in argv - lone surrogates -, huge and negative numbers, NaN,
unknown flags, missing arguments), global options before or after the
command, and sometimes something on stdin (a password, a key, random bytes,
an import file).  Each command line runs in-process on a seeded database, and
three things must hold:

* no traceback on stdout or stderr (unless ``--debug`` asked for one);
* the exit code is in the documented table, and is not 1 (internal error = a bug);
* when the exit code is not 0, nothing was written: the rows of ``users``,
  ``api_keys``, ``audit_log`` (``failure`` rows excepted) and the schema are
  unchanged, and no file appeared or changed in the working or home folder.

SQLite runs the bulk (the seeded file is restored before every example, so
each example starts from the same state and failures shrink reliably);
PostgreSQL runs a smaller sample on one seeded database that accumulates
changes.  With ``CI=true`` the run is derandomized and larger
(``VUTF_FUZZ_SCALE`` multiplies the example counts).

An exit 1 that is an already reported bug (``KNOWN_BUGS``, each with its
``xfail(strict=True)`` named test in ``test_hostile_input.py``) is counted,
not failed; everything else about that example is still checked.

Not generated, on purpose:

* ``db grant-runtime --create`` creates a PostgreSQL role that outlives the
  test database (see ``EXCLUDED``);
* ``audit follow`` always gets a small finite ``--timeout`` (it follows
  forever otherwise; hostile ``--timeout`` values are named cases in
  ``test_hostile_input.py``);
* ``--database-url`` pointing at a server or a new SQLite file (the fault
  tests cover unreachable servers; a new file is a named case).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import _admin_execute
from tests.security import (
    DOCUMENTED_EXIT_CODES,
    PASSWORD,
    WRONG_PASSWORD,
    Leaf,
    Seeded,
    is_sqlite,
    leaf_commands,
    record,
    register_summary,
    run,
    seed,
    sqlite_file,
    state_fingerprint,
    tree_fingerprint,
    value_kind,
)

MODULE = "test_argv_fuzz"
CI = os.environ.get("CI") == "true"
SCALE = float(os.environ.get("VUTF_FUZZ_SCALE", "1"))
# Examples per group on SQLite; about a thousand in all with CI=true, where the
# run is derandomized (the same examples every run: more would find nothing new
# there).  VUTF_FUZZ_SCALE=10 for a long exploratory run.
SQLITE_EXAMPLES = {"db": 60, "users": 300, "keys": 260, "audit": 180, "completion": 30, "root": 60}
POSTGRES_EXAMPLES = 100
LOCAL_FRACTION = 0.2


def _examples(count: int) -> int:
    return max(10, int(count * SCALE * (1 if CI else LOCAL_FRACTION)))


def _settings(count: int) -> settings:
    return settings(
        max_examples=_examples(count),
        deadline=None,
        derandomize=CI,
        database=None,
        print_blob=True,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


@pytest.fixture(scope="module", autouse=True)
def _figures(request: pytest.FixtureRequest) -> None:
    register_summary(request.config)


# -- value strategies ------------------------------------------------------------------------
HOSTILE_CONSTANTS = [
    "",
    " ",
    "-",
    "--",
    "\x00",
    "a\x00b",
    "\x1b[2J",
    "\x1b]8;;https://evil.example/\x07click\x1b]8;;\x07",
    "\x9b31m",
    "\u202eevil",
    "%",
    "_",
    "*",
    "' OR 1=1 --",
    "../../etc/passwd",
    "NaN",
    "inf",
    "-inf",
    "1e309",
    "9" * 40,
    "-1",
    "0",
    "0x10",
    "\u0663",  # ARABIC-INDIC DIGIT THREE: int() reads it
    "\uff11\uff12",  # fullwidth 12
    " 5 ",
    "\udcff",
    "\udcc3\udca9",
    "A" * 5000,
]

# Invalid UTF-8 in a real argv reaches Python as lone surrogates (surrogateescape).
undecodable = st.binary(min_size=1, max_size=12).map(
    lambda raw: raw.decode("utf-8", "surrogateescape")
)
hostile_text = st.one_of(
    st.sampled_from(HOSTILE_CONSTANTS),
    st.text(max_size=30),
    st.text(st.characters(min_codepoint=0, max_codepoint=0xA0), max_size=20),
    undecodable,
    st.tuples(st.sampled_from(["alice", "a@example.com", "read"]), undecodable).map("".join),
)


DURATIONS = ["1s", "15m", "2h", "7d", "2w", "90d", "1h30m", "36500d"]
ODD_DURATIONS = [
    "0d", "0s", "-1d", "1y", "99999999999d", "1.5h", "d", "10", "PT1H", "1e9d", "2h7d", "36501d",
]  # fmt: skip
TIMES = [
    "2030-01-01", "2030-01-01T00:00:00Z", "2030-01-01 12:00", "1970-01-01", "today",
    "yesterday", "now", "15m", "2h", "7d", "2030-01-01T00:00:00+14:00",
]  # fmt: skip
ODD_TIMES = [
    "0001-01-01", "9999-12-31T23:59:59", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+14:00",
    "2030-02-30", "2030-01-01T25:00:00", "-1d", "20300101", "2030-W01-1", "1e9d",
]  # fmt: skip
EMAILS = ["new@example.com", "alice@example.com", "ALICE@EXAMPLE.COM", "Bob@Example.com"]
ODD_EMAILS = [
    "no-at", "@x", "a@", "a@b", "x" * 250 + "@e.com", "a@ex\u00e4mple.com", "a b@c.d",
    "a@b.c\x00", "a@@b.c",
]  # fmt: skip
SCOPES = [
    "read", "write", "delete", "admin", "*", "targets:*", "users:read", "api_keys:delete",
    "read,write", "read, targets:write",
]  # fmt: skip
ODD_SCOPES = ["bogus", "targets", "targets:admin", ",", "READ", "read,,write"]
REVISIONS = ["head", "heads", "base", "-1", "+1", "0001_initial", "base:head"]
ODD_REVISIONS = ["0001", "bogus", "0001_initial:head", "head:base", "-99", "+99", "head-1"]
OUTPUT_FORMATS = ["table", "json", "jsonl", "csv"]
ODD_OUTPUT_FORMATS = ["xml", "JSON", ""]


@dataclass(frozen=True)
class Pools:
    """Runtime values (seeded ids, key prefixes) the strategies draw from."""

    seeded: Seeded
    url: str
    input_paths: tuple[str, ...]
    output_paths: tuple[str, ...]
    import_paths: tuple[str, ...]


def value_strategies(pools: Pools, *, mode: str) -> dict[str, st.SearchStrategy[str]]:
    """A strategy per kind of value.

    ``mode``: "plausible" values only, "hostile" ones only (odd values of the
    kind, and hostile text), or "mixed" (half and half).
    """

    def pick(valid: Any, odd: Any = ()) -> st.SearchStrategy[str]:
        plausible = valid if isinstance(valid, st.SearchStrategy) else st.sampled_from(valid)
        if mode == "plausible":
            return plausible
        bad: list[st.SearchStrategy[str]] = [hostile_text]
        if isinstance(odd, st.SearchStrategy):
            bad.append(odd)
        elif odd:
            bad.append(st.sampled_from(list(odd)))
        if mode == "hostile":
            return st.one_of(*bad)
        return st.one_of(plausible, plausible, *bad)

    s = pools.seeded
    refs = [*s.usernames, *s.emails, *s.user_ids, "ALICE"]
    key_refs = [*s.key_prefixes, *s.key_ids, *(p[:8] for p in s.key_prefixes)]
    cursors = st.binary(max_size=40).map(lambda b: base64.urlsafe_b64encode(b).decode())
    big_numbers = st.one_of(
        st.integers(-(2**70), 2**70), st.sampled_from([2**63, -(2**63) - 1, 0, -1])
    ).map(str)
    floats = st.one_of(
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.sampled_from(["nan", "inf", "-0.0", "1e308", "1e-9"]),
    )
    return {
        "new_username": pick(
            st.one_of(st.from_regex(r"[A-Za-z0-9_-]{3,20}", fullmatch=True), st.sampled_from(refs)),
            ["ab", "a" * 101, "al ice", "ali\u00e7e"],
        ),
        "user_ref": pick(refs, ["nobody", str(uuid.uuid4()), "alice@", "%"]),
        "key_ref": pick(
            key_refs, ["vutf_", "vutf_zzzzzzz", str(uuid.uuid4()), s.plaintexts["active"]]
        ),
        "email": pick(st.one_of(st.sampled_from(EMAILS), st.emails().map(str)), ODD_EMAILS),
        "full_name": pick(st.from_regex(r"[A-Za-z \u00e9'=+@-]{1,30}", fullmatch=True)),
        "text": pick(st.from_regex(r"[A-Za-z0-9 ._@-]{1,20}", fullmatch=True)),
        "int": pick(st.integers(1, 60).map(str), big_numbers),
        "float": pick(["0.01", "0.5", "1", "2"], st.one_of(floats, big_numbers)),
        "follow_timeout": st.sampled_from(["0", "0.02", "0.05"]),
        "follow_interval": pick(["0.01", "0.02"], ["0", "-1", "inf", "nan", "1e-300", "1e308"]),
        "duration": pick(DURATIONS, ODD_DURATIONS),
        "time": pick(TIMES, ODD_TIMES),
        "scope": pick(SCOPES, ODD_SCOPES),
        "sort": pick(["username", "-username", "email", "-email", "created_at", "-created_at"]),
        "cursor": pick(cursors, ["dnV0Zi1hdWRpdC0xOmQ6NTAx", "eyJrIjoxfQ", "AAAA", "=", "\x00"]),
        "status": pick(["success", "failure", "error"], ["SUCCESS", "ok", ""]),
        "action": pick(
            ["user.*", "*.create", "user.create", "api_key.*", "api_key.revoke"], ["[", "**", "?"]
        ),
        "resource_type": pick(["user", "api_key"], ["audit", ""]),
        "resource_id": pick([*s.user_ids, *s.key_ids], ["x", str(uuid.uuid4())]),
        "actor": pick(["tester@test", "nobody@nowhere"]),
        "anchor": pick(
            st.integers(0, 30).map(lambda n: f"{n}:{'a' * 64}"),
            ["0:" + "0" * 64, "x", "-5:" + "0" * 64, ":", "1:" + "F" * 64, "1:abc"],
        ),
        "by": pick(["action", "actor", "resource-type", "status", "day"], ["x", "Day", ""]),
        "seq_or_id": pick(
            st.integers(1, 40).map(str), ["0", "-3", str(uuid.uuid4()), "1.0", "+3", "99" * 20]
        ),
        "revision": pick(REVISIONS, ODD_REVISIONS),
        "role": pick(["postgres", "vutf_no_such_role"], ["PUBLIC", "pg_monitor", '"x"; --']),
        "input_path": st.sampled_from(pools.input_paths),
        "output_path": st.sampled_from(pools.output_paths),
        "import_path": st.sampled_from(pools.import_paths),
        "import_format": pick(["json", "jsonl", "csv"], ["xml", "CSV", ""]),
        "export_format": pick(["json", "jsonl", "csv"], ["table", " CSV ", ""]),
        "output": pick(OUTPUT_FORMATS, ODD_OUTPUT_FORMATS),
        "database_url": pick(
            [pools.url],
            [
                "not a url",
                "mysql://u@h/db",
                "postgresql+asyncpg://u@h/db",
                "sqlite://",
                "",
                "postgresql://u:pw@[::1/x",
                "postgresql://u:pw@h:abc/x",
                "sqlite:///nul\x00.db",
            ],
        ),
    }


# Which strategy each parameter gets: (command path, parameter) first, then the
# parameter's name, then its annotation.
BY_COMMAND_PARAM = {
    (("users", "create"), "username"): "new_username",
    (("users", "import"), "file"): "import_path",
    (("users", "import"), "file_format"): "import_format",
    (("audit", "export"), "export_format"): "export_format",
    (("audit", "follow"), "timeout"): "follow_timeout",
    (("audit", "follow"), "interval"): "follow_interval",
    (("keys", "create"), "name"): "text",
}
BY_NAME = {
    "user": "user_ref",
    "email": "email",
    "full_name": "full_name",
    "password_file": "input_path",
    "key_file": "input_path",
    "secret_file": "output_path",
    "output_file": "output_path",
    "search": "text",
    "sort": "sort",
    "cursor": "cursor",
    "key": "key_ref",
    "keys": "key_ref",
    "description": "text",
    "scope": "scope",
    "require_scope": "scope",
    "expires_in": "duration",
    "grace": "duration",
    "older_than": "duration",
    "expiring_within": "duration",
    "unused_for": "duration",
    "expires_at": "time",
    "since": "time",
    "until": "time",
    "actor": "actor",
    "action": "action",
    "resource_type": "resource_type",
    "resource_id": "resource_id",
    "status": "status",
    "anchor": "anchor",
    "by": "by",
    "seq_or_id": "seq_or_id",
    "revision": "revision",
    "role": "role",
    "output": "output",
    "database_url": "database_url",
}
# Parameters the fuzzer leaves out, with the reason: (command path or None for
# every command, parameter name) -> why.
EXCLUDED = {
    (("db", "grant-runtime"), "create"): "creates a cluster-wide PostgreSQL role, which "
    "outlives the test database",
}


def excluded(path: tuple[str, ...], param: Any) -> bool:
    return (None, param.name) in EXCLUDED or (path, param.name) in EXCLUDED


# Parameters every generated command line carries (bounded commands).
ALWAYS = {(("audit", "follow"), "timeout")}


def strategy_name(path: tuple[str, ...], param: Any) -> str:
    by_command = BY_COMMAND_PARAM.get((path, param.name))
    if by_command is not None:
        return by_command
    if param.name in BY_NAME:
        return BY_NAME[param.name]
    kind = value_kind(param)
    return "input_path" if kind == "path" else kind


def is_flag(param: Any) -> bool:
    return bool(getattr(param, "is_flag", False))


def is_option(param: Any) -> bool:
    return bool(getattr(param, "opts", None)) and param.param_type_name == "option"


# -- stdin -----------------------------------------------------------------------------------
def import_documents() -> st.SearchStrategy[bytes]:
    row = st.fixed_dictionaries(
        {
            "username": st.one_of(
                st.from_regex(r"[a-z]{3,10}", fullmatch=True), st.sampled_from(["alice", "a"])
            ),
            "email": st.one_of(st.emails().map(str), st.sampled_from(["alice@example.com", "x"])),
        },
        optional={
            "full_name": hostile_text,
            "password": st.sampled_from([PASSWORD, "short", ""]),
            "is_superuser": st.sampled_from(["true", "no", "maybe", ""]),
            "bogus": st.just("1"),
        },
    )
    rows = st.lists(row, max_size=5)

    def as_csv(items: list[dict[str, str]]) -> bytes:
        header = sorted({k for item in items for k in item}) or ["username", "email"]
        lines = [",".join(header)]
        for item in items:
            lines.append(",".join('"' + item.get(k, "").replace('"', '""') + '"' for k in header))
        return ("\r\n".join(lines) + "\r\n").encode("utf-8", "surrogatepass")

    def as_json(items: list[dict[str, str]]) -> bytes:
        return json.dumps(items).encode()

    def as_jsonl(items: list[dict[str, str]]) -> bytes:
        return "\n".join(json.dumps(item) for item in items).encode()

    return st.one_of(rows.map(as_csv), rows.map(as_json), rows.map(as_jsonl))


def stdin_strategy(pools: Pools, *, hostile: bool) -> st.SearchStrategy[str | bytes | None]:
    keys = pools.seeded.plaintexts
    plausible = st.one_of(
        st.none(),
        st.sampled_from(
            [PASSWORD, PASSWORD + "\n", WRONG_PASSWORD, keys["active"], keys["active"] + "\n"]
        ),
        st.sampled_from([keys["bot"], keys["revoked"]]),
        import_documents(),
    )
    if not hostile:
        return plausible
    return st.one_of(
        plausible,
        st.sampled_from(["vutf_" + "A" * 38, "\x00", PASSWORD + "\x00", "\r\n"]),
        st.text(max_size=40),
        st.binary(max_size=40),
    )


# -- a whole invocation ----------------------------------------------------------------------
@dataclass(frozen=True)
class Invocation:
    leaf: str
    argv: list[str]
    stdin: str | bytes | None

    def __repr__(self) -> str:  # what Hypothesis prints for a failing example
        return f"Invocation(argv={self.argv!r}, stdin={self.stdin!r})"


@dataclass(frozen=True)
class Strategies:
    """The value strategies of one database, in each mode of :func:`value_strategies`."""

    plausible: dict[str, st.SearchStrategy[str]]
    mixed: dict[str, st.SearchStrategy[str]]
    hostile: dict[str, st.SearchStrategy[str]]
    pools: Pools

    @classmethod
    def for_pools(cls, pools: Pools) -> Strategies:
        return cls(
            *(value_strategies(pools, mode=m) for m in ("plausible", "mixed", "hostile")), pools
        )


def global_options(
    values: dict[str, st.SearchStrategy[str]], *, hostile: bool
) -> st.SearchStrategy[list[str]]:
    fragments: list[st.SearchStrategy[list[str]]] = [
        st.sampled_from([["--json"], ["--quiet"], ["--yes"], ["--no-color"], ["--debug"]]),
        values["output"].map(lambda v: ["-o", v]),
        values["output"].map(lambda v: [f"--output={v}"]),
        st.sampled_from(OUTPUT_FORMATS).map(lambda v: [f"-o{v}"]),
        values["actor"].map(lambda v: ["--actor", v]),
        values["database_url"].map(lambda v: ["--database-url", v]),
    ]
    if hostile:
        fragments.append(
            st.sampled_from([["--version"], ["--help"], ["-h"], ["completion", "bash"]])
        )
    return st.lists(st.one_of(fragments), max_size=3).map(_flatten)


def _flatten(parts: list[list[str]]) -> list[str]:
    return [word for part in parts for word in part]


JUNK = st.sampled_from([["--bogus"], ["--bogus=1"], ["-Z"], ["extra"], ["--"], ["--help"]])


# How hostile one command line is: not at all, in exactly one place (so that
# the hostile value meets code past the parser), or everywhere at once.
MODES = ("plausible", "plausible", "one", "one", "one", "chaos")
# Hostile places besides the parameters.
SPOTS = ("globals", "stdin", "junk", "separator")


@st.composite
def invocations(draw: st.DrawFn, leaves: list[Leaf], strategies: Strategies) -> Invocation:
    """One command line for one of ``leaves`` (see MODES)."""
    leaf = draw(st.sampled_from(leaves))
    params = [p for p in leaf.command.params if not excluded(leaf.path, p)]
    mode = draw(st.sampled_from(MODES))
    target: Any = None
    if mode == "one":
        target = draw(st.sampled_from([*(p.name for p in params if not is_flag(p)), *SPOTS]))

    def hostile(spot: str) -> bool:
        return mode == "chaos" or spot == target

    options: list[list[str]] = []
    arguments: list[str] = []
    for param in params:
        bad = hostile(param.name)
        if mode == "chaos":
            values = strategies.mixed
        else:
            values = strategies.hostile if bad else strategies.plausible
        strategy = values[strategy_name(leaf.path, param)]
        if is_option(param):
            if is_flag(param):
                names = [*param.opts, *param.secondary_opts]
                if draw(st.integers(0, 3)) == 0:
                    options.append([draw(st.sampled_from(names))])
                continue
            # A hostile required option is sometimes simply missing.
            if (leaf.path, param.name) in ALWAYS:
                wanted = True
            elif param.required:
                wanted = not bad or draw(st.integers(0, 4)) > 0
            else:
                wanted = bad or draw(st.integers(0, 9)) < 3
            if not wanted:
                continue
            repeats = draw(st.integers(1, 3)) if getattr(param, "multiple", False) else 1
            for _ in range(repeats):
                name = draw(st.sampled_from(param.opts))
                value = draw(strategy)
                if name.startswith("--") and draw(st.integers(0, 4)) == 0:
                    options.append([f"{name}={value}"])
                else:
                    options.append([name, value])
        elif param.nargs == -1:
            arguments += draw(st.lists(strategy, min_size=0 if bad else 1, max_size=3))
        elif param.required:
            # A hostile required argument is sometimes simply missing.
            if not bad or draw(st.integers(0, 4)) > 0:
                arguments.append(draw(strategy))
        elif bad or draw(st.booleans()):
            arguments.append(draw(strategy))
    options = draw(st.permutations(options)) if options else options
    # "--" ends the options (arguments starting with "-" need it); global
    # options after it are arguments, no longer hoisted.
    separator = ["--"] if hostile("separator") and draw(st.booleans()) else []
    global_values = strategies.mixed if hostile("globals") else strategies.plausible
    globals_before = draw(global_options(global_values, hostile=hostile("globals")))
    globals_after = (
        draw(global_options(global_values, hostile=hostile("globals")))
        if not separator and draw(st.integers(0, 3)) == 0
        else []
    )
    junk = draw(JUNK) if hostile("junk") and not separator else []
    argv = [
        *globals_before,
        *leaf.path,
        *_flatten(options),
        *separator,
        *arguments,
        *globals_after,
        *junk,
    ]
    stdin = draw(stdin_strategy(strategies.pools, hostile=hostile("stdin")))
    return Invocation(leaf.name, argv, stdin)


@st.composite
def root_invocations(draw: st.DrawFn, strategies: Strategies) -> Invocation:
    """Lines that are not a well-formed command: typos, groups alone, options alone."""
    words = st.one_of(
        st.sampled_from(["users", "keys", "audit", "db", "user", "key", "list", "help", "-h"]),
        hostile_text,
    )
    argv = draw(global_options(strategies.mixed, hostile=True))
    argv += draw(st.lists(words, max_size=4))
    return Invocation("(root)", argv, None)


# -- the environment of one fuzzed test ------------------------------------------------------
# Paths handed to path options, relative to the working folder (besides its files).
# Output paths get NULL_DEVICE, a private stand-in for /dev/null, never the real
# one: a regression that chmod-ed or removed it would break the whole machine.
NULL_DEVICE = "null.dev"
INPUT_PATHS = ("sub", "missing.txt", "/dev/null", "", "sub/../password.txt", "nul\x00.txt")
OUTPUT_PATHS = (
    "new.key", "out.jsonl", "sub/new.key", "nodir/x.key", "password.txt", "sub", "", NULL_DEVICE,
    "nul\x00.key",
)  # fmt: skip
IMPORT_PATHS = (
    "users.csv", "users.json", "users.jsonl", "dupes.csv", "wrong.csv", "binary.bin", "nul.txt",
    "empty.txt", "missing.csv", "sub", "-", "nul\x00.csv",
)  # fmt: skip


def _is_null_device(path: Path) -> bool:
    status = path.lstat()
    return (
        stat.S_ISCHR(status.st_mode)
        and stat.S_IMODE(status.st_mode) == 0o666
        and status.st_rdev == os.makedev(1, 3)
    )


def dev_null_state() -> tuple[int, int, int]:
    """Type, mode and device of /dev/null, compared before and after each command."""
    status = os.lstat("/dev/null")
    return status.st_mode, status.st_rdev, status.st_ino


class Harness:
    """A seeded database, a working folder of files to point at, and the invariants."""

    def __init__(self, url: str, tmp_path: Path, home: Path, *, restore_each: bool) -> None:
        self.url = url
        self.home = home
        self.work = tmp_path / "work"
        self.work.mkdir()
        os.chdir(self.work)
        self.seeded = seed(url)
        keys = self.seeded.plaintexts
        self.files: dict[str, bytes] = {
            "password.txt": PASSWORD.encode() + b"\n",
            "weak.txt": b"short\n",
            "key.txt": keys["active"].encode() + b"\n",
            "revoked.key": keys["revoked"].encode(),
            "empty.txt": b"",
            "binary.bin": b"\xff\xfe\x00\x80garbage",
            "nul.txt": b"correct horse\x00battery staple",
            "users.csv": b"username,email,password\r\nerin,erin@example.com," + PASSWORD.encode(),
            "users.json": json.dumps(
                [{"username": "fred", "email": "fred@example.com", "password": PASSWORD}]
            ).encode(),
            "users.jsonl": b'{"username": "gina", "email": "gina@example.com"}\n',
            "dupes.csv": (
                b"\xef\xbb\xbfusername,email\r\nhal,hal@example.com\r\nhal,hal@example.com\r\n"
            ),
            "wrong.csv": b"name,mail\nx,y\n",
        }
        self.dirs = ["sub"]
        self._reset_files()
        self.pools = Pools(
            seeded=self.seeded,
            url=url,
            input_paths=(*sorted(self.files), *INPUT_PATHS),
            output_paths=OUTPUT_PATHS,
            import_paths=IMPORT_PATHS,
        )
        self.strategies = Strategies.for_pools(self.pools)
        self.restore_each = restore_each
        self.pristine: Path | None = None
        if restore_each:
            assert is_sqlite(url)
            self.pristine = tmp_path / "seeded.db"
            shutil.copyfile(sqlite_file(url), self.pristine)
        self.examples = 0
        self.known_bugs = 0
        self.exit_codes: dict[int, int] = {}

    def _reset_files(self) -> None:
        for child in list(self.work.iterdir()):
            if child.name in self.files or child.name in self.dirs:
                continue
            if child.name == NULL_DEVICE and _is_null_device(child):
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        for name in self.dirs:
            folder = self.work / name
            if folder.exists():
                for inner in folder.iterdir():
                    if inner.is_dir():
                        shutil.rmtree(inner)
                    else:
                        inner.unlink()
            folder.mkdir(exist_ok=True)
        for name, content in self.files.items():
            path = self.work / name
            if not path.exists() or path.read_bytes() != content:
                path.write_bytes(content)
            path.chmod(0o644)
        null_device = self.work / NULL_DEVICE
        if not null_device.exists():
            # Only root may make a device node; otherwise the path stays missing.
            with contextlib.suppress(PermissionError):
                os.mknod(null_device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
                null_device.chmod(0o666)

    def _restore_database(self) -> None:
        assert self.pristine is not None
        db = sqlite_file(self.url)
        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(self.pristine, db)
        db.chmod(0o600)

    def check(self, invocation: Invocation, on_success: Callable[[Invocation], None]) -> None:
        if self.restore_each:
            self._restore_database()
        self._reset_files()
        before = state_fingerprint(self.url)
        files_before = tree_fingerprint(self.work, self.home)
        dev_null_before = dev_null_state()
        null_device = self.work / NULL_DEVICE
        has_null_device = null_device.exists()
        started = time.monotonic()
        result = run(self.url, *invocation.argv, input=invocation.stdin)
        elapsed = time.monotonic() - started
        self.examples += 1
        self.exit_codes[result.exit_code] = self.exit_codes.get(result.exit_code, 0) + 1
        shown = (
            f"exit {result.exit_code}\n"
            f"stdout: {result.stdout[:2000]!r}\nstderr: {result.stderr[:2000]!r}"
        )
        if "--debug" not in invocation.argv:
            assert "Traceback" not in result.stdout + result.stderr, shown
        if result.exit_code == 1 and known_bug(invocation, result.stderr) is not None:
            self.known_bugs += 1
        else:
            assert result.exit_code in DOCUMENTED_EXIT_CODES, shown
        assert elapsed < 20, f"took {elapsed:.1f}s\n{shown}"
        # As root, chmod-ing or removing /dev/null would break every other
        # program on the machine; NULL_DEVICE is where output paths aim instead.
        assert dev_null_state() == dev_null_before, f"/dev/null changed\n{shown}"
        if has_null_device:
            assert null_device.exists(), f"{NULL_DEVICE} removed\n{shown}"
            assert _is_null_device(null_device), f"{NULL_DEVICE} changed\n{shown}"
        if result.exit_code != 0:
            assert state_fingerprint(self.url) == before, f"database written\n{shown}"
            assert tree_fingerprint(self.work, self.home) == files_before, f"files written\n{shown}"
        else:
            on_success(invocation)


@dataclass(frozen=True)
class KnownBug:
    """An exit 1 already reported, tolerated here until its xfail(strict) test starts passing."""

    leaf: str
    stderr_fragment: str
    named_test: str


# When one of these is fixed, its named test XPASSes (strict) and fails: then
# delete the entry here too.
KNOWN_BUGS: tuple[KnownBug, ...] = ()


def known_bug(invocation: Invocation, stderr: str) -> KnownBug | None:
    for bug in KNOWN_BUGS:
        if invocation.leaf == bug.leaf and bug.stderr_fragment in stderr:
            return bug
    return None


def _no_follow_up(_: Invocation) -> None:
    return None


@pytest.fixture
def home(isolated_environment: Path) -> Path:
    return isolated_environment


@pytest.fixture
def restore_cwd() -> Iterator[None]:
    cwd = Path.cwd()
    try:
        yield
    finally:
        os.chdir(cwd)


def _roles(url: str) -> set[str]:
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT rolname FROM pg_roles")
            return {row[0] for row in cur.fetchall()}
    finally:
        conn.close()


def _leaves(group: str) -> list[Leaf]:
    return [leaf for leaf in leaf_commands() if leaf.path[0] == group]


def _finish(harness: Harness, backend: str, label: str, *, expect_success: bool = True) -> None:
    record(MODULE, cases=1, examples=harness.examples)
    codes = ", ".join(f"{code}: {n}" for code, n in sorted(harness.exit_codes.items()))
    print(
        f"{label} [{backend}]: {harness.examples} examples; exit codes {codes}; "
        f"known bugs met {harness.known_bugs}"
    )
    # A fuzzer that only ever hits the parser tests little: most examples must
    # reach a command body (exit 0 or a domain refusal).
    if expect_success:
        assert harness.exit_codes.get(0, 0) > 0, harness.exit_codes


# -- the tests -------------------------------------------------------------------------------
def test_the_walk_finds_every_command_group_and_their_options() -> None:
    leaves = leaf_commands()
    groups = {leaf.path[0] for leaf in leaves}
    # The groups, and the commands at the root (doctor; plan, apply, export-state: issue 16;
    # batch: issue 14).
    assert groups == {"db", "users", "keys", "roles", "audit", "completion"} | {
        "doctor",
        "plan",
        "apply",
        "export-state",
        "batch",
    }
    names = {leaf.name for leaf in leaves}
    for expected in ("users create", "users import", "keys verify", "audit follow", "db upgrade"):
        assert expected in names
    # Every value-taking parameter has a strategy that exists.
    values = value_strategies(
        Pools(Seeded(plaintexts={"active": "k"}), "sqlite://", ("a",), ("b",), ("c",)),
        mode="mixed",
    )
    for leaf in leaves:
        for param in leaf.command.params:
            if not is_flag(param):
                assert strategy_name(leaf.path, param) in values, (leaf.name, param.name)
    record(MODULE, cases=1)


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("group", ["db", "users", "keys", "audit", "completion"])
def test_fuzzed_argv_of_each_group_on_sqlite(
    group: str, database_url: str, tmp_path: Path, home: Path, restore_cwd: None
) -> None:
    harness = Harness(database_url, tmp_path, home, restore_each=True)
    leaves = _leaves(group)

    @_settings(SQLITE_EXAMPLES[group])
    @given(data=st.data())
    def fuzz(data: st.DataObject) -> None:
        invocation = data.draw(invocations(leaves, harness.strategies), label="argv")
        harness.check(invocation, _no_follow_up)

    fuzz()
    _finish(harness, "sqlite", f"vutf {group}")


@pytest.mark.parametrize("backend", ["sqlite"])
def test_fuzzed_argv_at_the_root_on_sqlite(
    database_url: str, tmp_path: Path, home: Path, restore_cwd: None
) -> None:
    harness = Harness(database_url, tmp_path, home, restore_each=True)

    @_settings(SQLITE_EXAMPLES["root"])
    @given(data=st.data())
    def fuzz(data: st.DataObject) -> None:
        harness.check(data.draw(root_invocations(harness.strategies), label="argv"), _no_follow_up)

    fuzz()
    _finish(harness, "sqlite", "vutf (root)", expect_success=False)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_fuzzed_argv_of_every_command_on_postgresql(
    database_url: str, tmp_path: Path, home: Path, restore_cwd: None
) -> None:
    """A smaller sample over every command, on one database that accumulates changes."""
    harness = Harness(database_url, tmp_path, home, restore_each=False)
    leaves = leaf_commands()
    name = database_url.rsplit("/", 1)[1]
    template = f"{name}_seed"
    roles_before = _roles(database_url)
    _admin_execute(f'CREATE DATABASE "{template}" TEMPLATE "{name}"')

    def rebuild_after_downgrade(invocation: Invocation) -> None:
        # A successful downgrade drops the schema: start again from the seeded copy.
        if "downgrade" in invocation.argv and "--sql" not in invocation.argv:
            _admin_execute(
                f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                f'CREATE DATABASE "{name}" TEMPLATE "{template}"',
            )

    try:

        @_settings(POSTGRES_EXAMPLES)
        @given(data=st.data())
        def fuzz(data: st.DataObject) -> None:
            invocation = data.draw(invocations(leaves, harness.strategies), label="argv")
            harness.check(invocation, rebuild_after_downgrade)

        fuzz()
    finally:
        _admin_execute(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
    _finish(harness, "postgresql", "every command")
    assert _roles(database_url) == roles_before  # nothing outlives the test database
