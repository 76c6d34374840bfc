"""Issue 12, items 1-3, as a ``set -euo pipefail`` script meets them: the installed `vutf`.

* Which database (item 1): an empty ``VUTF_DATABASE_URL`` (a missing CI secret) and a
  ``sqlite:///tmp/x.db`` typed for ``sqlite:////tmp/x.db`` stop the script with exit 2
  before anything is created; the embedded default database is announced on stderr once,
  by its absolute path; ``postgres://`` is PostgreSQL.
* All the rows (item 2): with 105 users, keys and more audit rows than a page, the machine
  formats carry every row, a table a page and a notice, ``--limit`` a page and the next
  cursor on stderr even with ``--quiet``, and ``--all`` every row, for all three lists.
* Raw outputs stay raw (item 3): with ``VUTF_OUTPUT=json`` exported the README's recipes
  still work, and an explicit ``-o`` a raw output cannot honour is exit 2.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.e2e.harness import run_script

ROWS = 105
PAGE = 100
ANCHOR = re.compile(r"[0-9]+:[0-9a-f]{64}")


# -- 1. which database ---------------------------------------------------------------------
WHICH_DATABASE = """
if VUTF_DATABASE_URL= vutf users create ci-bot --email ci@example.com --generate-password \
    > /dev/null 2> refused.err; then
  echo "empty url accepted"
else
  echo "empty url refused with $?"
fi
if VUTF_DATABASE_URL=sqlite:///tmp/x.db vutf users list > /dev/null 2>> refused.err; then
  echo "mistyped url accepted"
else
  echo "mistyped url refused with $?"
fi
if [ -e "$VUTF_DATA_DIR/vutf.db" ]; then echo "a default database appeared"; fi
# Looking at the default database names it and does not create it.
vutf db status -o json 2> /dev/null | jq -r .database
if [ -e "$VUTF_DATA_DIR/vutf.db" ]; then echo "db status created it"; fi
vutf users list > /dev/null 2> first.err
vutf users create ci-bot --email ci@example.com --generate-password > /dev/null 2> second.err
vutf users list --json > /dev/null 2> third.err
[ -f "$VUTF_DATA_DIR/vutf.db" ] && echo "default database created"
cat refused.err >&2
echo "-- first" >&2; cat first.err >&2
echo "-- second" >&2; cat second.err >&2
echo "-- third" >&2; cat third.err >&2
"""


def test_a_script_cannot_act_on_the_wrong_database(tmp_path: Path) -> None:
    workdir = tmp_path / "work"  # a folder without tmp/ in it
    workdir.mkdir()
    data_dir = Path(os.environ["VUTF_DATA_DIR"])
    result = run_script(WHICH_DATABASE, None, workdir)
    assert result.returncode == 0, result.stderr
    default = data_dir / "vutf.db"
    assert result.stdout.splitlines() == [
        "empty url refused with 2",
        "mistyped url refused with 2",
        f"sqlite:///{default}",
        "default database created",
    ]
    refused, first, second, third = re.split(r"^-- \w+\n", result.stderr, flags=re.MULTILINE)
    assert refused.splitlines() == [
        "error: VUTF_DATABASE_URL is empty: no database URL",
        "hint: give a postgresql:// or sqlite:/// URL, or unset it for the default database",
        "error: VUTF_DATABASE_URL: sqlite:///tmp/x.db names "
        f"{workdir}/tmp/x.db, but there is no folder 'tmp' here; did you mean /tmp/x.db?",
        "hint: an absolute path takes four slashes: sqlite:////tmp/x.db "
        "(or sqlite:///./tmp/x.db for this folder)",
    ]
    # Said once, by the first command that created it, with its absolute path.
    announcement = f"created the default database {default}"
    assert announcement in first, first
    assert announcement not in second + third, (second, third)
    assert "created the default database" not in second + third


@pytest.mark.parametrize("backend", ["postgresql"])
def test_postgres_scheme_is_postgresql(database_url: str, tmp_path: Path) -> None:
    assert database_url.startswith("postgresql://"), database_url
    url = "postgres://" + database_url.removeprefix("postgresql://")
    script = """
vutf users create ci-bot --email ci@example.com --generate-password > /dev/null
vutf users list --json | jq -r '.[].username'
vutf db status -o json | jq -r '.dialect, .database'
"""
    result = run_script(script, url, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["ci-bot", "postgresql"]
    assert lines[2].startswith("postgresql://"), lines[2]


# -- 2. all the rows, or a signal ----------------------------------------------------------
SEED = f"""
for i in $(seq -w 0 {ROWS - 1}); do
  superuser=false; [ "$i" = 000 ] && superuser=true
  printf '{{"username": "sc%s", "email": "sc%s@example.org", "password": "%s", ' "$i" "$i" \
    "correct horse battery staple"
  printf '"is_superuser": %s}}\\n' "$superuser"
done > users.jsonl
vutf users import users.jsonl > /dev/null
for i in $(seq -w 0 {ROWS - 1}); do
  printf '{{"args": ["keys", "create", "--user", "sc000", "--name", "k%s"]}}\\n' "$i"
done | vutf batch > /dev/null
"""

LISTS = """
for group in users keys audit; do
  echo "$group json $(vutf "$group" list --json | jq length)"
  echo "$group jsonl $(vutf "$group" list -o jsonl | wc -l)"
  echo "$group csv $(vutf "$group" list -o csv | wc -l)"
  vutf "$group" list > table.out 2> table.err
  echo "$group table $(tail -n +3 table.out | wc -l)"
  grep -q -e "--all shows every one" table.err && echo "$group table notice"
  vutf --quiet "$group" list --limit 10 --json > page.json 2> page.err
  echo "$group limit $(jq length page.json)"
  grep -Eqx 'next cursor: [^ ]+' page.err && [ "$(wc -l < page.err)" = 1 ] \
    && echo "$group quiet cursor"
  cursor=$(sed -n 's/^next cursor: //p' page.err)
  echo "$group rest $(vutf "$group" list --json --cursor "$cursor" | jq length)"
  vutf "$group" list --all > all.out 2> all.err
  echo "$group all $(tail -n +3 all.out | wc -l) $(wc -c < all.err)"
  echo "$group all-json $(vutf "$group" list --all --json | jq length)"
done
"""


def test_a_script_gets_every_row_or_a_cursor(database_url: str, tmp_path: Path) -> None:
    result = run_script(SEED + LISTS, database_url, tmp_path)
    assert result.returncode == 0, result.stderr
    # The audit log holds a row per imported user, the import itself and each key.
    audit_rows = ROWS + 1 + ROWS
    expected: list[str] = []
    for group, rows in (("users", ROWS), ("keys", ROWS), ("audit", audit_rows)):
        expected += [
            f"{group} json {rows}",
            f"{group} jsonl {rows}",
            f"{group} csv {rows + 1}",  # a header line
            f"{group} table {PAGE}",
            f"{group} table notice",
            f"{group} limit 10",
            f"{group} quiet cursor",
            f"{group} rest {rows - 10}",
            f"{group} all {rows} 0",  # every row, and nothing said on stderr
            f"{group} all-json {rows}",
        ]
    assert result.stdout.splitlines() == expected


# -- 3. raw outputs stay raw ---------------------------------------------------------------
RAW = """
export VUTF_OUTPUT=json
vutf users create alice --email alice@example.com --generate-password | jq -r .username
anchor=$(vutf audit head) && vutf audit verify --anchor "$anchor" > verified.json
echo "$anchor"
jq -r .ok verified.json
vutf db upgrade --sql > schema.sql
vutf users create bob --email bob@example.com --generate-password > /dev/null
vutf audit export > audit.jsonl
vutf audit list --all --reverse -o jsonl > listed.jsonl
cmp audit.jsonl listed.jsonl && echo "export is the list, oldest first"
if vutf completion bash -o json > completion.out 2> completion.err; then
  echo "completion -o json accepted"
else
  echo "completion -o json refused with $?"
fi
"""


def test_raw_outputs_stay_raw_under_a_configured_json(database_url: str, tmp_path: Path) -> None:
    result = run_script(RAW, database_url, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "alice"  # a result follows the configured json
    assert ANCHOR.fullmatch(lines[1]), lines[1]
    assert lines[2:] == [
        "true",
        "export is the list, oldest first",
        "completion -o json refused with 2",
    ]
    schema = (tmp_path / "schema.sql").read_text(encoding="utf-8")
    assert "CREATE TABLE users (" in schema
    assert not schema.lstrip().startswith(("{", "[")), schema[:80]
    exported = (tmp_path / "audit.jsonl").read_text(encoding="utf-8").splitlines()
    entries = [json.loads(line) for line in exported]
    assert [entry["seq"] for entry in entries] == list(range(1, len(entries) + 1))
    assert [entry["action"] for entry in entries] == ["user.create", "user.create"]
    assert (tmp_path / "completion.out").read_text(encoding="utf-8") == ""
    error = json.loads((tmp_path / "completion.err").read_text(encoding="utf-8"))["error"]
    assert error["exit_code"] == 2
    assert error["message"] == (
        "completion bash prints a shell script; -o json is not supported here"
    )
