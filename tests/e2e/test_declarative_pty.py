"""`vutf apply` at a real terminal (a pty), on the installed `vutf` (issue 16, item 3).

On a terminal apply shows the plan's rows and asks before it writes: "n" is
exit 130 with nothing written, "y" applies.  (Without a terminal it needs
--yes: tests/cli/test_declarative.py.)
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

TIMEOUT = 60.0

IDENTITY = """\
apiVersion: vutf/v1
kind: Identity
users:
  - username: frank
    email: frank@example.com
"""


def _installed_vutf() -> Path:
    return Path(sys.executable).with_name("vutf")


class Terminal:
    """The installed vutf with stdin, stdout and stderr on one pseudo-terminal."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(
            [str(_installed_vutf()), *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        self.seen = ""
        self.matched = 0

    def _read(self, deadline: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return False
        try:
            data = os.read(self.master, 4096)
        except OSError:  # EIO: the child closed the terminal
            return False
        self.seen += data.decode("utf-8", "replace").replace("\r\n", "\n")
        return bool(data)

    def expect(self, pattern: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while (found := re.compile(pattern, re.M).search(self.seen, self.matched)) is None:
            if not self._read(deadline):
                raise AssertionError(f"{pattern!r} never showed; the terminal showed:\n{self.seen}")
        self.matched = found.end()
        time.sleep(0.2)  # let the prompt finish setting up the terminal

    def type(self, text: str) -> None:
        os.write(self.master, (text + "\r").encode())

    def wait(self) -> int:
        deadline = time.monotonic() + TIMEOUT
        while self._read(deadline):
            pass
        code = self.process.wait(timeout=TIMEOUT)
        os.close(self.master)
        return code


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environment = {
        **os.environ,
        "VUTF_DATABASE_URL": f"sqlite:///{tmp_path / 'vutf.db'}",
        "VUTF_ARGON2_PROFILE": "test",
        "COLUMNS": "200",
    }
    subprocess.run(
        [str(_installed_vutf()), "db", "upgrade"],
        env=environment,
        check=True,
        capture_output=True,
        timeout=TIMEOUT,
    )
    return environment


def _audit_actions(env: dict[str, str]) -> list[str]:
    listed = subprocess.run(
        [str(_installed_vutf()), "audit", "list", "-o", "json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    return [row["action"] for row in json.loads(listed.stdout)]


def test_apply_asks_on_a_terminal_and_no_writes_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "identity.yaml"
    path.write_text(IDENTITY)
    args = ["apply", "-f", str(path), "--secrets-dir", str(tmp_path / "secrets")]

    declined = Terminal(args, env)
    declined.expect(r"\+ user\.create user frank")  # the rows, before the question
    declined.expect(r"apply 1 change\(s\) to .*\? \[y/N\]: ?$")
    declined.type("n")
    assert declined.wait() == 130, declined.seen
    assert _audit_actions(env) == []
    assert not (tmp_path / "secrets").exists()

    accepted = Terminal(args, env)
    accepted.expect(r"\[y/N\]: ?$")
    accepted.type("y")
    assert accepted.wait() == 0, accepted.seen
    assert "applied 1 change(s)" in accepted.seen
    assert _audit_actions(env) == ["user.create"]
    assert (tmp_path / "secrets" / "frank.password").is_file()
