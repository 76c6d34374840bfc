"""Issue 14's `vutf batch` the way a CI script meets it: the installed `vutf` under bash.

One process runs every line (users created, a generated password delivered
in the results and usable), a failing line stops the batch with its exit
code under ``set -euo pipefail``, and a one-time secret whose result cannot
be written (the reader of stdout is gone) is exit 9, never a silent loss.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.e2e.harness import run_script
from vutf_cli.db.database import Database

ALICE = json.dumps(
    {
        "args": ["users", "create", "alice", "--email", "a@example.com", "--password-stdin"],
        "stdin": "correct horse battery staple",
    }
)
SCRIPT = """
cat > setup.jsonl <<'EOF'
@ALICE@
# the CI bot's password is generated and comes back in the results
{"args": ["users", "create", "ci-bot", "--email", "ci@example.com", "--generate-password"]}
{"args": ["users", "list", "--fields", "username"]}
EOF
vutf batch -f setup.jsonl > results.jsonl 2> setup.err
echo "setup ok"
jq -r 'select(.line == 3) | .result.password' results.jsonl > bot.pw
vutf users check-password ci-bot --password-file bot.pw > /dev/null && echo "password works"

printf '%s\\n' '{"args": ["users", "show", "alice"]}' '{"args": ["users", "show", "nobody"]}' \
  '{"args": ["users", "show", "ci-bot"]}' > gate.jsonl
status=0
vutf batch -f gate.jsonl > gate.out 2> gate.err || status=$?
echo "gate exit $status"
status=0
vutf batch --keep-going < gate.jsonl > all.out 2> /dev/null || status=$?
echo "keep going exit $status"

# Nobody reads the results: the generated password would be lost.
echo '{"args": ["users", "create", "dora", "--email", "d@example.com", "--generate-password"]}' \\
  > lost.jsonl
status=0
vutf batch -f lost.jsonl 2> lost.err | true || status=$?
echo "lost exit $status"
""".replace("@ALICE@", ALICE)


def json_lines(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_ci_script_runs_many_commands_in_one_vutf(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    result = run_script(SCRIPT, database_url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "setup ok",
        "password works",
        "gate exit 3",
        "keep going exit 3",
        "lost exit 9",
    ]
    results = json_lines(tmp_path / "results.jsonl")
    assert [(r["line"], r["exit_code"]) for r in results] == [(1, 0), (3, 0), (4, 0)]
    assert [row["username"] for row in results[2]["result"]] == ["alice", "ci-bot"]
    gate = json_lines(tmp_path / "gate.out")
    assert [r["exit_code"] for r in gate] == [0, 3]  # stopped after the failing line
    assert "stopped after line 2 (exit 3)" in (tmp_path / "gate.err").read_text()
    assert len((tmp_path / "all.out").read_text().splitlines()) == 3
    lost = (tmp_path / "lost.err").read_text()
    assert lost.startswith("error: the result of line 1 was not delivered"), lost
    assert "Traceback" not in result.stderr + lost
    # dora was created (her line ran); the error says her secret is lost.
    assert db.run(lambda uow: uow.users.get_by_username("dora"), read_only=True) is not None


ENDLESS = """
printf '\\357\\273\\277%s\\n' \\
  '{"args": ["users", "create", "erin", "--email", "e@x.io", "--generate-password"]}' \\
  > first.jsonl
status=0
cat first.jsonl /dev/zero | vutf batch --keep-going > endless.out 2> endless.err || status=$?
echo "endless exit $status"
"""


def test_an_input_without_newlines_is_refused_at_a_bound_not_read_whole(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    # /dev/zero never ends a line: the batch stops at 64 MiB with exit 2 instead of
    # reading it into memory until the machine runs out. The first line starts
    # with a UTF-8 byte order mark, as Windows editors write one: it runs.
    result = run_script(ENDLESS, database_url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["endless exit 2"]
    results = json_lines(tmp_path / "endless.out")
    assert [(r["line"], r["exit_code"]) for r in results] == [(1, 0), (2, 2)]
    assert results[1]["error"]["message"] == "line 2: the line is longer than 64 MiB"
    assert (tmp_path / "endless.err").read_text() == (
        "stopped at line 2; the lines after it were not read\n"
    )
    assert db.run(lambda uow: uow.users.get_by_username("erin"), read_only=True) is not None
