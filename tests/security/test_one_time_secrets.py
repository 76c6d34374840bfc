"""A one-time secret is delivered, or the command fails and says what was created.

``keys create``, ``keys rotate`` and ``users create --generate-password``
print a secret that exists nowhere else.  When it cannot be written
completely (stdout is a pipe nobody reads, a full disk, a ``--secret-file``
write that fails) the command exits 9 with one line naming what was created
and what to do, and ``keys rotate`` leaves the old key working
(docs/architecture.md §3.4, §5.4).  The process is the point here (a real
closed pipe, a real ``/dev/full``, a real file-size limit), so these run the
installed ``vutf``; setup and checks run in-process.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pytest

from tests.roles_support import grant_role_at
from tests.security import FAST_ENV, PASSWORD, record, register_summary, run

MODULE = "test_one_time_secrets"
NOT_DELIVERED = 9
VUTF = Path(sys.executable).with_name("vutf")


@pytest.fixture(scope="module", autouse=True)
def _figures(request: pytest.FixtureRequest) -> None:
    register_summary(request.config)


@pytest.fixture(autouse=True)
def _count_case() -> None:
    record(MODULE, cases=1)


# -- where stdout goes ---------------------------------------------------------------------
@contextmanager
def closed_pipe() -> Iterator[int]:
    """The write end of a pipe whose reader is gone (``| true`` that has already exited)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        yield write_end
    finally:
        os.close(write_end)


@contextmanager
def full_disk() -> Iterator[IO[bytes]]:
    with open("/dev/full", "wb") as device:
        yield device


SINKS = {"closed pipe": closed_pipe, "full disk": full_disk}


def vutf(url: str, *args: str, stdout: Any, limit_file_size: bool = False) -> tuple[int, str]:
    """The installed ``vutf ARGS`` with the given stdout: its exit code and stderr."""

    def no_file_growth() -> None:
        # Every write that would grow a regular file fails (EFBIG); pipes are not files.
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))

    done = subprocess.run(
        [str(VUTF), *args],
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        env={
            **os.environ,
            **FAST_ENV,
            "VUTF_DATABASE_URL": url,
            "PYTHONDONTWRITEBYTECODE": "1",
        },
        preexec_fn=no_file_growth if limit_file_size else None,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stderr.decode()


# -- setup and checks, in-process ----------------------------------------------------------
def ok(url: str, *args: str, input: str | None = None) -> Any:
    result = run(url, *args, input=input)
    assert result.exit_code == 0, result.stderr
    return result.json() if "--json" in args else result


@pytest.fixture
def url(database_url: str) -> str:
    run(
        database_url,
        "users",
        "create",
        "alice",
        "--email",
        "a@example.com",
        "--password-stdin",
        input=PASSWORD + "\n",
    )
    grant_role_at(database_url, "alice")  # a key never carries more than its owner holds
    return database_url


def keys_by_name(url: str) -> dict[str, dict[str, Any]]:
    return {key["name"]: key for key in ok(url, "--json", "keys", "list", "--any-state")}


def verifies(url: str, key: str) -> bool:
    return run(url, "keys", "verify", input=key + "\n").exit_code == 0


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(("error: ", "hint: "))]


# -- keys create ---------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("sink", SINKS)
def test_keys_create_that_cannot_print_its_key_fails_and_names_it(url: str, sink: str) -> None:
    with SINKS[sink]() as stdout:
        code, stderr = vutf(url, "keys", "create", "-u", "alice", "-n", "ci", stdout=stdout)
    assert code == NOT_DELIVERED, stderr
    created = keys_by_name(url)["ci"]
    prefix = created["key_prefix"]
    error, hint = error_lines(stderr)
    assert error.startswith(f"error: API key {prefix} was created but could not be written")
    assert f"vutf keys revoke {prefix}" in hint
    assert f"vutf keys rotate {prefix} --secret-file" in hint
    assert "only time the key is shown" not in stderr


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_json_error_of_an_undelivered_key_has_its_own_code(url: str) -> None:
    with full_disk() as stdout:
        code, stderr = vutf(
            url, "--json", "keys", "create", "-u", "alice", "-n", "ci", stdout=stdout
        )
    assert code == NOT_DELIVERED
    error = json.loads(stderr.strip().splitlines()[-1])["error"]
    assert (error["code"], error["exit_code"]) == ("secret_not_delivered", NOT_DELIVERED)
    assert keys_by_name(url)["ci"]["key_prefix"] in error["message"]


# -- keys rotate ---------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("sink", SINKS)
def test_keys_rotate_that_cannot_print_the_new_key_leaves_the_old_one_working(
    url: str, sink: str
) -> None:
    old = ok(url, "--json", "keys", "create", "-u", "alice", "-n", "ci")
    with SINKS[sink]() as stdout:
        code, stderr = vutf(url, "keys", "rotate", old["key_prefix"], stdout=stdout)
    assert code == NOT_DELIVERED, stderr
    assert verifies(url, old["key"])
    new = keys_by_name(url)["ci"]
    assert new["id"] != old["id"]
    error, hint = error_lines(stderr)
    assert error.startswith(f"error: API key {new['key_prefix']} was created but could not")
    assert f"the old key {old['key_prefix']} still works" in error
    assert f"vutf keys revoke {new['key_prefix']}" in hint


@pytest.mark.parametrize("backend", ["postgresql"])
def test_keys_rotate_whose_secret_file_cannot_be_written_leaves_the_old_key_working(
    url: str, tmp_path: Path
) -> None:
    old = ok(url, "--json", "keys", "create", "-u", "alice", "-n", "ci", "--expires-in", "30d")
    target = tmp_path / "new.key"
    code, stderr = vutf(
        url,
        "keys",
        "rotate",
        old["key_prefix"],
        "--secret-file",
        str(target),
        stdout=subprocess.DEVNULL,
        limit_file_size=True,
    )
    assert code == NOT_DELIVERED, stderr
    assert not target.exists()
    assert verifies(url, old["key"])
    keys = keys_by_name(url)
    replaced = next(key for key in keys.values() if key["id"] == old["id"])
    assert replaced["expires_at"] == old["expires_at"]
    error, hint = error_lines(stderr)
    new_prefix = keys["ci"]["key_prefix"]
    assert error.startswith(f"error: API key {new_prefix} was created but could not be written")
    assert str(target) in error
    assert f"vutf keys revoke {new_prefix}" in hint


@pytest.mark.parametrize("backend", ["sqlite"])
def test_keys_rotate_that_delivers_ends_the_old_key_at_once(url: str) -> None:
    old = ok(url, "--json", "keys", "create", "-u", "alice", "-n", "ci")
    new = ok(url, "--json", "keys", "rotate", old["key_prefix"])
    assert not verifies(url, old["key"])
    assert verifies(url, new["key"])
    retired = [r for r in ok(url, "--json", "audit", "list") if r["action"] == "api_key.retire"]
    assert [r["resource_id"] for r in retired] == [old["id"]]


# -- users create --generate-password ------------------------------------------------------
@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_generated_password_that_cannot_be_printed_fails_and_names_the_user(url: str) -> None:
    with closed_pipe() as stdout:
        code, stderr = vutf(
            url,
            "users",
            "create",
            "bob",
            "--email",
            "b@example.com",
            "--generate-password",
            stdout=stdout,
        )
    assert code == NOT_DELIVERED, stderr
    assert ok(url, "--json", "users", "show", "bob")["username"] == "bob"
    error, hint = error_lines(stderr)
    assert error.startswith("error: user 'bob' was created but its generated password could not")
    assert "vutf users set-password bob" in hint
    assert "shown only this once" not in stderr
