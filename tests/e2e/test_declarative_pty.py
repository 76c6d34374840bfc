"""`vutf apply` at a real terminal (a pty), on the installed `vutf` (issue 16, item 3).

On a terminal apply shows the plan's rows and asks before it writes: "n" is
exit 130 with nothing written, "y" applies.  (Without a terminal it needs
--yes: tests/cli/test_declarative.py.)
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e.harness import TERMINAL_TIMEOUT, VUTF, Terminal, migrated_sqlite_env

IDENTITY = """\
apiVersion: vutf/v1
kind: Identity
users:
  - username: frank
    email: frank@example.com
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return migrated_sqlite_env(tmp_path, [str(VUTF)], columns=200)


def _audit_actions(env: dict[str, str]) -> list[str]:
    listed = subprocess.run(
        [str(VUTF), "audit", "list", "-o", "json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=TERMINAL_TIMEOUT,
    )
    return [row["action"] for row in json.loads(listed.stdout)]


def test_apply_asks_on_a_terminal_and_no_writes_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "identity.yaml"
    path.write_text(IDENTITY)
    args = ["apply", "-f", str(path), "--secrets-dir", str(tmp_path / "secrets")]

    declined = Terminal([str(VUTF), *args], env)
    declined.expect(r"\+ user\.create user frank")  # the rows, before the question
    declined.expect(r"apply 1 change\(s\) to .*\? \[y/N\]: ?$")
    declined.type("n")
    assert declined.wait() == 130, declined.seen
    assert _audit_actions(env) == []
    assert not (tmp_path / "secrets").exists()

    accepted = Terminal([str(VUTF), *args], env)
    accepted.expect(r"\[y/N\]: ?$")
    accepted.type("y")
    assert accepted.wait() == 0, accepted.seen
    assert "applied 1 change(s)" in accepted.seen
    assert _audit_actions(env) == ["user.create"]
    assert (tmp_path / "secrets" / "frank.password").is_file()
