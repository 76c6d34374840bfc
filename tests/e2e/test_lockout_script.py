"""Lockout as a shell script meets it: the installed `vutf`, SQLite and PostgreSQL.

A script that gates on ``vutf users check-password`` cannot tell a locked user
from a wrong password (exit 5, the same one line on stderr), an operator sees
the lock in ``users show`` and ends it with ``users unlock`` (exit 0, also when
there is nothing to end), and a bad lockout setting stops the script at once
(exit 2).
"""

from __future__ import annotations

from pathlib import Path

from tests.e2e.harness import run_script
from vutf_cli.db.database import Database

SCRIPT = r"""
export VUTF_LOCKOUT_THRESHOLD=2
printf '%s' 'correct horse battery staple' \
  | vutf users create dora --email dora@example.com --password-stdin > /dev/null
check() { printf '%s' "$1" | vutf users check-password dora --password-stdin; }
for guess in 'wrong guess number one' 'wrong guess number two'; do
  if check "$guess" 2> wrong.err; then echo "a wrong password passed"; exit 1; fi
done
set +e
check 'correct horse battery staple' 2> locked.err; locked=$?
printf '%s' 'whatever you like here' \
  | vutf users check-password nobody --password-stdin 2> unknown.err; unknown=$?
set -e
echo "locked exit $locked, unknown exit $unknown"
cmp wrong.err locked.err && cmp wrong.err unknown.err && cat locked.err
vutf users show dora --json | jq -r '"\(.state) \(.failed_login_count)"'
vutf users unlock dora > /dev/null
vutf users unlock dora > /dev/null 2> again.err && grep 'not locked' again.err
check 'correct horse battery staple' 2> /dev/null && echo "unlocked"
vutf users show dora --json | jq -r '"\(.state) \(.failed_login_count)"'
set +e
VUTF_LOCKOUT_WINDOW=forever vutf users list > /dev/null 2> bad.err; echo "bad setting exit $?"
cat bad.err
"""


def test_a_script_meets_lockout(database_url: str, db: Database, tmp_path: Path) -> None:
    done = run_script(SCRIPT, database_url, tmp_path, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        "locked exit 5, unknown exit 5",
        "error: invalid username or password",
        "locked 3",
        "user 'dora' is not locked; nothing changed",
        "unlocked",
        "active 0",
        "bad setting exit 2",
        "error: VUTF_LOCKOUT_WINDOW (environment) must be a whole number of seconds "
        "from 1 to 2592000, got 'forever'",
    ]
