"""Secrets go where they are meant to and nowhere else (issue items 11 and 12).

Sentinels - passwords and API keys no other text can contain by chance - are
run through every command that accepts a secret, on SQLite and PostgreSQL:
``users create`` / ``set-password`` / ``check-password`` (stdin and file),
``users import`` with plaintext passwords (good and refused rows), ``keys
create`` / ``rotate`` (shown once, or written to ``--secret-file``), ``keys
verify`` (stdin and ``--key-file``), plus a real process whose
``--database-url`` carries a password.  Afterwards no sentinel may appear in
a dump of the database (``sqlite3 .dump``, ``pg_dump``), in the raw database
files, in any stderr, in any stdout except the one intended display of a new
key, in any file vutf wrote, or in the audit log's metadata (which records
the command path and option names, never the command line).

Item 12: walking every command's parameters, no option takes a secret as its
value (only ``--password-file``, ``--key-file``, ``--secret-file`` PATH and
flags); secret-looking options that do not exist are refused without echoing
their value; a whole key given where a key reference goes is refused; a
secret given on stdin or typed at the hidden prompt of a pseudo-terminal is
never echoed.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.cli.conftest import CliResult
from tests.roles_support import grant_role_at
from tests.security import (
    PASSWORD,
    REPO_ROOT,
    audit_rows,
    dump_database,
    is_sqlite,
    leaf_commands,
    record,
    register_summary,
    root_command,
    run,
    run_subprocess,
    sqlite_file,
    state_fingerprint,
    value_kind,
)

MODULE = "test_secrets"
# Value-taking options that may carry a secret-looking name: each takes a PATH.
# Paths of files a secret is read from or written to (`apply --secrets-dir`: a folder of them).
SECRET_PATH_OPTIONS = {"--password-file", "--key-file", "--secret-file", "--secrets-dir"}
SECRET_WORDS = re.compile(r"pass|secret|token|pepper|credential|key", re.IGNORECASE)
# Arguments named like a key that are references (id or 12-character prefix), not keys.
KEY_REFERENCES = {"key", "keys"}


@pytest.fixture(scope="module", autouse=True)
def _figures(request: pytest.FixtureRequest) -> None:
    register_summary(request.config)


@pytest.fixture(autouse=True)
def _count_case() -> None:
    record(MODULE, cases=1)


def _sentinel(label: str) -> str:
    return f"Sentinel-{label}-{uuid.uuid4().hex}-long"


@dataclass
class Ledger:
    """Every output to search, and every sentinel to search for."""

    sentinels: dict[str, str] = field(default_factory=dict)
    # (label, text, sentinels allowed in it)
    outputs: list[tuple[str, str, frozenset[str]]] = field(default_factory=list)

    def add(self, label: str, result: CliResult, *, intended_display: str | None = None) -> None:
        allowed = frozenset() if intended_display is None else frozenset({intended_display})
        self.outputs.append((f"{label} (stdout)", result.stdout, allowed))
        self.outputs.append((f"{label} (stderr)", result.stderr, frozenset()))

    def key(self, label: str, plaintext: str) -> None:
        """A key is a sentinel, and so is its random part past the displayed prefix."""
        self.sentinels[label] = plaintext
        self.sentinels[f"{label} (random part)"] = plaintext[5:37]
        self.sentinels[f"{label} (past the prefix)"] = plaintext[12:37]

    def leaks(
        self, label: str, data: bytes | str, allowed: frozenset[str] = frozenset()
    ) -> list[str]:
        text = data if isinstance(data, str) else data.decode("utf-8", "backslashreplace")
        return [
            f"{name} in {label}"
            for name, value in self.sentinels.items()
            if value in text and not any(value in a for a in allowed)
        ]


def _ok(result: CliResult) -> CliResult:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def _refused(result: CliResult, code: int) -> CliResult:
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result


def _scanned_files(root: Path, excluded: set[Path]) -> list[Path]:
    return [p for p in sorted(root.rglob("*")) if p.is_file() and p not in excluded]


def test_sentinels_appear_nowhere_but_the_one_intended_display(
    database_url: str, tmp_path: Path
) -> None:
    url = database_url
    ledger = Ledger()
    pw = {
        "password (stdin)": _sentinel("Pass"),
        "password (file)": _sentinel("FilePass"),
        "new password": _sentinel("NewPass"),
        "wrong password": _sentinel("WrongPass"),
        "imported password (csv)": _sentinel("CsvPass"),
        "imported password (json)": _sentinel("JsonPass"),
        "refused import password": "Sntl" + uuid.uuid4().hex[:8],  # too short: refused
        "weak password": "Weak" + uuid.uuid4().hex[:8],
    }
    ledger.sentinels.update(pw)
    inputs = tmp_path / "inputs"  # what the test itself wrote: not searched
    inputs.mkdir()
    secrets = tmp_path / "secrets"  # --secret-file targets
    secrets.mkdir()
    (inputs / "pw.txt").write_text(pw["password (file)"] + "\n")

    def step(label: str, *args: str, input: str | None = None, code: int = 0) -> CliResult:
        result = run(url, *args, input=input)
        _refused(result, code)
        ledger.add(label, result)
        return result

    # -- passwords ------------------------------------------------------------------------
    step(
        "create (stdin)",
        "users",
        "create",
        "alice",
        "--email",
        "alice@example.com",
        "--password-stdin",
        input=pw["password (stdin)"],
    )
    step(
        "create (file)",
        "users",
        "create",
        "bob",
        "--email",
        "bob@example.com",
        "--password-file",
        str(inputs / "pw.txt"),
    )
    step(
        "create (weak)",
        "users",
        "create",
        "weak",
        "--email",
        "weak@example.com",
        "--password-stdin",
        input=pw["weak password"],
        code=2,
    )
    step(
        "check (right)",
        "users",
        "check-password",
        "alice",
        "--password-stdin",
        input=pw["password (stdin)"],
    )
    step(
        "check (wrong)",
        "users",
        "check-password",
        "alice",
        "--password-stdin",
        input=pw["wrong password"],
        code=5,
    )
    step(
        "check (unknown user)",
        "users",
        "check-password",
        "nobody",
        "--password-stdin",
        input=pw["wrong password"],
        code=5,
    )
    step(
        "set-password", "users", "set-password", "bob", "--password-stdin", input=pw["new password"]
    )
    step(
        "check (file)",
        "users",
        "check-password",
        "bob",
        "--password-file",
        str(inputs / "pw.txt"),
        code=5,
    )
    step(
        "set-password (weak)",
        "-o",
        "json",
        "users",
        "set-password",
        "bob",
        "--password-stdin",
        input=pw["weak password"],
        code=2,
    )

    # -- import with plaintext passwords ------------------------------------------------------
    csv_file = inputs / "users.csv"
    csv_file.write_text(
        f"username,email,password\ncarol,carol@example.com,{pw['imported password (csv)']}\n"
    )
    json_file = inputs / "users.json"
    json_file.write_text(
        json.dumps(
            [
                {
                    "username": "dan",
                    "email": "dan@example.com",
                    "password": pw["imported password (json)"],
                }
            ]
        )
    )
    refused_file = inputs / "refused.csv"
    refused_file.write_text(
        "username,email,password\n"
        f"erin,erin@example.com,{pw['refused import password']}\n"
        f"fay,fay@example.com,{pw['imported password (csv)']}\n"
    )
    step("import csv (dry run)", "users", "import", str(csv_file), "--dry-run")
    step("import csv", "users", "import", str(csv_file))
    step("import json", "-o", "json", "users", "import", str(json_file))
    step("import refused", "users", "import", str(refused_file), code=2)
    step(
        "import refused (json errors)", "-o", "jsonl", "users", "import", str(refused_file), code=2
    )
    step(
        "import from stdin",
        "users",
        "import",
        "-",
        "--format",
        "csv",
        "--skip-existing",
        input=csv_file.read_text(),
    )
    step(
        "check imported",
        "users",
        "check-password",
        "dan",
        "--password-stdin",
        input=pw["imported password (json)"],
    )

    # -- API keys -------------------------------------------------------------------------------
    grant_role_at(url, "alice")  # a key never carries more than its owner holds
    shown = _ok(run(url, "--json", "keys", "create", "-u", "alice", "-n", "ci"))
    ledger.add("keys create (shown once)", shown, intended_display=shown.json()["key"])
    ledger.key("key shown at creation", shown.json()["key"])
    table = _ok(run(url, "keys", "create", "-u", "alice", "-n", "ci-table"))
    table_key = re.search(r"vutf_[0-9A-Za-z]{38}", table.stdout)
    assert table_key is not None, table.stdout
    ledger.add("keys create (table)", table, intended_display=table_key.group(0))
    ledger.key("key shown in a table", table_key.group(0))

    step(
        "keys create (secret file)",
        "keys",
        "create",
        "-u",
        "alice",
        "-n",
        "filed",
        "--secret-file",
        str(secrets / "filed.key"),
    )
    filed_key = (secrets / "filed.key").read_text().strip()
    ledger.key("key written to a file", filed_key)

    (inputs / "key.txt").write_text(filed_key + "\n")
    step("verify (stdin)", "keys", "verify", input=shown.json()["key"])
    step(
        "verify (stdin, record usage)",
        "keys",
        "verify",
        "--record-usage",
        input=shown.json()["key"] + "\n",
    )
    step("verify (key file)", "--json", "keys", "verify", "--key-file", str(inputs / "key.txt"))
    step(
        "verify (missing scope)",
        "keys",
        "verify",
        "--require-scope",
        "admin",
        input=filed_key,
        code=5,
    )
    tampered = filed_key[:-1] + ("A" if filed_key[-1] != "A" else "B")
    ledger.sentinels["tampered key"] = tampered
    step("verify (tampered)", "keys", "verify", input=tampered, code=5)
    step("verify (tampered, json)", "-o", "json", "keys", "verify", input=tampered, code=5)

    prefix = shown.json()["key_prefix"]
    step(
        "rotate (secret file)",
        "keys",
        "rotate",
        prefix,
        "--grace",
        "1h",
        "--secret-file",
        str(secrets / "rotated.key"),
    )
    ledger.key("rotated key (file)", (secrets / "rotated.key").read_text().strip())
    rotated = _ok(run(url, "--json", "keys", "rotate", filed_key[:12]))
    ledger.add("rotate (shown once)", rotated, intended_display=rotated.json()["key"])
    ledger.key("rotated key (shown)", rotated.json()["key"])
    step("verify the old key after rotation", "keys", "verify", input=filed_key, code=5)
    step("whole key as a reference", "keys", "show", rotated.json()["key"], code=2)
    step("whole key to revoke", "--yes", "keys", "revoke", rotated.json()["key"], code=2)

    # -- reading it all back ----------------------------------------------------------------------
    for label, args in {
        "users list": ["-o", "json", "users", "list", "--include-deleted"],
        "users export": ["-o", "jsonl", "users", "export", "--include-deleted", "--include-hashes"],
        "keys list": ["-o", "csv", "keys", "list", "--any-state"],
        "audit export": ["audit", "export", "--format", "json"],
        "audit list": ["audit", "list", "--limit", "500"],
        "audit stats": ["audit", "stats", "--by", "actor"],
    }.items():
        step(label, *args)
    step("audit export to a file", "audit", "export", "--output-file", str(tmp_path / "a.jsonl"))

    # -- a real process: a password in its sys.argv must not reach the audit metadata ----------
    env: dict[str, str] = {"VUTF_DATABASE_URL": url}
    argv = ["users", "create", "gus", "--email", "gus@example.com", "--password-stdin"]
    if not is_sqlite(url):
        # Trust authentication ignores the password, so the URL still works.
        db_password = _sentinel("DbPass")
        ledger.sentinels["database password"] = db_password
        env = {}
        argv = ["--database-url", url.replace("postgres@", f"postgres:{db_password}@", 1), *argv]
    done = run_subprocess(argv, env=env, input=pw["password (stdin)"].encode())
    assert done.returncode == 0, done.stderr
    ledger.outputs.append(("subprocess stdout", done.stdout.decode(), frozenset()))
    ledger.outputs.append(("subprocess stderr", done.stderr.decode(), frozenset()))
    refused = run_subprocess(
        ["keys", "show", rotated.json()["key"]], env={"VUTF_DATABASE_URL": url}
    )
    assert refused.returncode == 2
    ledger.outputs.append(("refused whole key (stderr)", refused.stderr.decode(), frozenset()))

    # -- the search ----------------------------------------------------------------------------
    leaks: list[str] = []
    for label, text, allowed in ledger.outputs:
        leaks += ledger.leaks(label, text, allowed)
    dump = dump_database(url)
    leaks += ledger.leaks("the database dump", dump)
    assert b"audit_log" in dump
    files = _scanned_files(tmp_path, {p for p in inputs.iterdir()})
    secret_files = {
        secrets / "filed.key": "key written to a file",
        secrets / "rotated.key": "rotated key (file)",
    }
    for path in files:
        own = secret_files.get(path)
        allowed = frozenset({ledger.sentinels[own]}) if own else frozenset()
        leaks += ledger.leaks(str(path.relative_to(tmp_path)), path.read_bytes(), allowed)
    if is_sqlite(url):
        assert sqlite_file(url) in files  # the raw database file itself was searched
    rows = audit_rows(url)
    (gus,) = [row for row in rows if (row["changes"] or {}).get("username") == "gus"]
    assert gus["metadata"].get("command") in (None, "users create"), gus["metadata"]
    metadata = "\n".join(json.dumps(row["metadata"], ensure_ascii=False) for row in rows)
    leaks += ledger.leaks("audit metadata", metadata)
    assert leaks == []
    record(
        MODULE,
        sentinels=len(ledger.sentinels),
        outputs_scanned=len(ledger.outputs),
        files_scanned=len(files) + 1,
        sentinels_found=len(leaks),
    )


# -- item 12: never from argv ------------------------------------------------------------------
def _all_parameters() -> list[tuple[str, object]]:
    params = [("vutf", p) for p in root_command().params]
    for leaf in leaf_commands():
        params += [(leaf.name, p) for p in leaf.command.params]
    return params


def test_no_option_takes_a_secret_as_its_value() -> None:
    checked = 0
    for where, param in _all_parameters():
        names = [
            param.name or "",
            *getattr(param, "opts", []),
            *getattr(param, "secondary_opts", []),
        ]
        if not any(SECRET_WORDS.search(name) for name in names):
            continue
        checked += 1
        if getattr(param, "is_flag", False):
            continue  # --password-stdin, --generate-password, --include-hashes ...
        if param.param_type_name == "argument":
            # KEY arguments are references (id or prefix); a whole key is refused
            # (test_a_whole_key_is_never_accepted_as_a_reference).
            assert param.name in KEY_REFERENCES, (where, param.name)
            continue
        opts = set(param.opts)
        assert opts <= SECRET_PATH_OPTIONS, (where, opts)
        assert value_kind(param) == "path", (where, opts)
    assert checked >= 8
    # No parameter prompts for a secret on its own either (read_secret does, hidden).
    for where, param in _all_parameters():
        assert not getattr(param, "prompt", None), (where, param)
    record(MODULE, parameters_walked=len(_all_parameters()))


@pytest.mark.parametrize(
    "argv",
    [
        ["users", "create", "x1", "--email", "x@example.com", "--password", "{secret}"],
        ["users", "create", "x1", "--email", "x@example.com", "--password={secret}"],
        ["users", "set-password", "alice", "-p", "{secret}"],
        ["users", "check-password", "alice", "--pass", "{secret}"],
        ["keys", "verify", "--key", "{secret}"],
        ["keys", "verify", "--key={secret}"],
        # The key on argv by mistake: Click's "unexpected extra argument" must not echo it.
        ["keys", "verify", "{key}"],
        ["keys", "create", "-u", "alice", "-n", "k", "--secret", "{secret}"],
        ["--password", "{secret}", "users", "list"],
        ["--token={secret}", "users", "list"],
    ],
)
def test_secret_options_do_not_exist_and_their_value_is_not_echoed(
    tmp_path: Path, argv: list[str]
) -> None:
    from vutf_cli.security.api_keys import generate_api_key

    secret = _sentinel("Argv")
    key = generate_api_key()
    url = f"sqlite:///{tmp_path / 'unused.db'}"
    words = [word.replace("{secret}", secret).replace("{key}", key) for word in argv]
    result = run(url, *words)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert secret not in result.stdout + result.stderr
    assert key[5:37] not in result.stdout + result.stderr
    assert result.stderr.startswith("error: ")


def test_a_whole_key_is_never_accepted_as_a_reference(database_url: str) -> None:
    url = database_url
    _ok(
        run(
            url,
            "users",
            "create",
            "alice",
            "--email",
            "a@example.com",
            "--password-stdin",
            input=PASSWORD,
        )
    )
    grant_role_at(url, "alice")
    key = _ok(run(url, "--json", "keys", "create", "-u", "alice", "-n", "ci")).json()["key"]
    before = state_fingerprint(url)
    for argv in (
        ["keys", "show", key],
        ["keys", "show", key.lower()],
        ["keys", "show", f" {key} "],
        ["--yes", "keys", "revoke", key],
        ["keys", "rotate", key],
        ["keys", "extend", key, "--expires-in", "1d"],
        ["keys", "set-scopes", key, "--scope", "read"],
        ["-o", "json", "keys", "show", key],
    ):
        result = run(url, *argv)
        assert result.exit_code == 2, (argv, result.stderr)
        assert key[5:37] not in result.stdout + result.stderr
        assert key[12:] not in result.stdout + result.stderr
    assert state_fingerprint(url) == before


def test_secrets_on_stdin_are_not_echoed(database_url: str) -> None:
    url = database_url
    password = _sentinel("Stdin")
    for args in (
        ["users", "create", "alice", "--email", "a@example.com", "--password-stdin"],
        ["users", "check-password", "alice", "--password-stdin"],
        ["-o", "json", "users", "set-password", "alice", "--password-stdin"],
    ):
        result = _ok(run(url, *args, input=password + "\n"))
        assert password not in result.stdout + result.stderr
    grant_role_at(url, "alice")
    key = _ok(run(url, "--json", "keys", "create", "-u", "alice", "-n", "ci")).json()["key"]
    for args in (
        ["keys", "verify"],
        ["-o", "json", "keys", "verify"],
        ["keys", "verify", "-o", "csv"],
    ):
        result = _ok(run(url, *args, input=key))
        assert key[5:37] not in result.stdout + result.stderr
        assert key[12:] not in result.stdout + result.stderr


# -- the hidden prompt, on a real pseudo-terminal -------------------------------------------------
class Terminal:
    """``python -m vutf_cli ARGS`` on a pseudo-terminal (its controlling terminal)."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        full_env = {**os.environ, **env, "PYTHONPATH": str(REPO_ROOT), "TERM": "dumb"}
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become vutf
            os.execve(sys.executable, [sys.executable, "-m", "vutf_cli", *args], full_env)  # noqa: S606
        self.output = b""

    def read_until(self, needle: bytes, timeout: float = 20) -> bytes:
        deadline = time.monotonic() + timeout
        while needle not in self.output:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {needle!r} in {self.output!r}")
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"ended without {needle!r}: {self.output!r}")
                self.output += chunk
        return self.output

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def finish(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                self.output += chunk
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        return os.waitstatus_to_exitcode(status)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_interactive_prompts_do_not_echo_what_is_typed(database_url: str) -> None:
    env = {"VUTF_DATABASE_URL": database_url}
    password = _sentinel("Typed")
    term = Terminal(["users", "create", "alice", "--email", "a@example.com"], env)
    # Click writes "Password:", then getpass switches echo off and writes " ":
    # type only after that, as a person would.
    term.read_until(b"Password: ")
    term.type(password + "\r")
    term.read_until(b"confirmation: ")
    term.type(password + "\r")
    assert term.finish() == 0, term.output
    assert password.encode() not in term.output
    assert password[:12].encode() not in term.output
    assert b"created user 'alice'" in term.output
    # The typed password is the one stored.
    checked = run(
        database_url, "users", "check-password", "alice", "--password-stdin", input=password
    )
    assert checked.exit_code == 0, checked.stderr

    grant_role_at(database_url, "alice")
    key = _ok(run(database_url, "--json", "keys", "create", "-u", "alice", "-n", "ci")).json()
    term = Terminal(["keys", "verify"], env)
    term.read_until(b"key: ")
    term.type(key["key"] + "\r")
    assert term.finish() == 0, term.output
    assert key["key"][5:37].encode() not in term.output
    assert key["key_prefix"].encode() in term.output  # the answer is there, the key is not
    record(MODULE, pty_sessions=2)
