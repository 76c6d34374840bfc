"""Issue 12, items 4-6, the way a CI script and an operator meet them: the installed `vutf`.

* ``set -euo pipefail`` scripts that re-run every mutation (item 4) and gate on
  ``audit verify`` (item 5) run to their end, on SQLite and PostgreSQL.
* Retries are visible (item 6): with the database's port closed, a terminal (a pty)
  sees the one-line retry notice on stderr, rewritten in place and erased before the
  error; a script (stderr a pipe) sees only the error, which says how many attempts
  were made.  Both end with exit 7 within the deadline.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from pathlib import Path

from tests.e2e.harness import VUTF, WAIT, Terminal, run_script
from vutf_cli.db.database import Database

RE_RUN = """
run_once() {
  vutf users create ci-bot --email ci@example.com --superuser --generate-password \
    --if-not-exists > /dev/null
  vutf keys create --user ci-bot --name deploy --secret-file deploy.key --if-not-exists > /dev/null
  vutf --yes keys revoke --user ci-bot --all > /dev/null
  ended=$(vutf keys list --any-state --user ci-bot -o json \
    | jq -r '[.[] | select(.state != "deleted")][0].key_prefix')
  vutf --yes keys delete "$ended" --if-exists > /dev/null
  vutf --yes keys revoke vutf_zzzzzzz --if-exists > /dev/null
  vutf users deactivate ci-bot > /dev/null
  vutf users deactivate ghost --if-exists > /dev/null
  vutf users activate ci-bot > /dev/null
  vutf --yes users delete old-bot --if-exists > /dev/null
  vutf users restore ghost --if-exists > /dev/null
  rm -f deploy.key
}
run_once
run_once   # the same script again: every step is already done, and exits 0
vutf users create old-bot --email old@example.com --generate-password > /dev/null
vutf --yes users delete old-bot > /dev/null
vutf --yes users delete old-bot --if-exists > /dev/null   # already deleted: exit 0
vutf users restore old-bot > /dev/null
vutf users restore old-bot > /dev/null                     # already live: exit 0
echo "script finished"
"""


def test_a_re_run_script_passes(database_url: str, db: Database, tmp_path: Path) -> None:
    result = run_script(RE_RUN, database_url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "script finished\n"
    listed = run_script("vutf audit list --reverse -o json", database_url, tmp_path)
    actions = [(row["action"], row["status"]) for row in json.loads(listed.stdout)]
    # The second run changed what the first one left (a new key under the freed
    # name), and nothing else; no missing subject left a failure row.
    assert actions == [
        ("user.create", "success"),
        ("api_key.create", "success"),
        ("api_key.revoke", "success"),
        ("api_key.delete", "success"),
        ("user.deactivate", "success"),
        ("user.activate", "success"),
        ("api_key.create", "success"),
        ("api_key.revoke", "success"),
        ("api_key.delete", "success"),
        ("user.deactivate", "success"),
        ("user.activate", "success"),
        ("user.create", "success"),
        ("user.delete", "success"),
        ("user.restore", "success"),
    ]


GATE = """
vutf users create gatekeeper --email gate@example.com --generate-password > /dev/null
anchor=$(vutf audit head) && vutf audit verify --anchor "$anchor" > /dev/null
last=${anchor%%:*}
vutf audit verify --since-seq "$last" > /dev/null
if vutf audit verify --since-seq "$((last + 1))" > /dev/null 2> gate.err; then
  echo "gate passed by accident"
else
  echo "gate refused with $?"
fi
ghost="$((last + 5)):$(printf 'a%.0s' $(seq 64))"
if vutf audit verify --anchor "$ghost" > /dev/null 2>> gate.err; then
  echo "anchor passed by accident"
else
  echo "anchor refused with $?"
fi
cat gate.err >&2
"""


def test_gates_do_not_pass_by_accident(database_url: str, db: Database, tmp_path: Path) -> None:
    result = run_script(GATE, database_url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["gate refused with 2", "anchor refused with 6"]
    assert "is beyond the end of the audit log (last seq 1)" in result.stderr
    assert "the log was truncated" in result.stderr


# -- retries are visible -------------------------------------------------------------------
def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Closed now: connecting is refused at once, every time.
    return f"postgresql://postgres@127.0.0.1:{port}/vutf_nowhere"


def _retry_env() -> dict[str, str]:
    return {**os.environ, "VUTF_DATABASE_URL": _closed_port_url(), "VUTF_DB_DEADLINE": "2"}


def test_a_terminal_sees_the_retries() -> None:
    terminal = Terminal([str(VUTF), "users", "list"], _retry_env(), timeout=WAIT)
    assert terminal.wait() == 7
    text = terminal.seen
    notices = [part for part in text.split("\r\x1b[K") if part.startswith("retrying:")]
    assert len(notices) >= 2, text
    assert notices[0].startswith("retrying: attempt 1 failed, next in ")
    assert "gives up in 2 s" in notices[0]
    assert "\n" not in "".join(notices)  # rewritten in place, one line
    # Erased before the error, which says how many attempts there were.
    assert "\r\x1b[Kerror: database unavailable at postgresql://" in text
    # It stopped at its deadline (2 s), by its own clock: no guess at how fast
    # this machine starts a process (the process is bounded by WAIT above).
    gave_up = re.search(r"hint: gave up after (\d+) attempt\(s\) in (\d+\.\d) s", text)
    assert gave_up is not None, text
    assert int(gave_up[1]) >= len(notices)
    # No sleep runs past the deadline; only the last (refused at once) attempt may.
    assert float(gave_up[2]) <= 2.0 + 0.5


def test_a_script_sees_only_the_error() -> None:
    result = subprocess.run(
        [str(VUTF), "users", "list"],
        env=_retry_env(),
        capture_output=True,
        text=True,
        timeout=WAIT,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 7
    assert "retrying" not in result.stderr
    assert "\x1b" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: database unavailable at postgresql://")
    assert lines[1].startswith("hint: gave up after ")
