"""The installed `vutf` with standard streams closed, or not in UTF-8.

`vutf_cli.cli.standard_streams` (docs/architecture.md §5.2) sets them up before anything
runs. Started with one closed (`<&-`, `>&-`, `2>&-`): a closed stdin (or one open for
writing only, `0>`) reads as empty, a closed stdout is a closed pipe (data: exit 0; a
one-time secret: exit 9, never lost with exit 0), a closed stderr drops the messages and
keeps the exit code, as does a stderr whose reader went away or whose disk is full. A
stdout on a full disk (`> /dev/full`) is exit 7 naming it, whoever wrote there (vutf, or
Typer printing --help); a one-time secret that could not be written there is exit 9.
Under a locale whose encoding is not UTF-8 (`PYTHONIOENCODING=ascii`), data on a pipe is
still UTF-8 and a terminal shows what it cannot encode as escapes: never exit 1.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.harness import VUTF, Terminal, installed_env, run_script

SCRIPT = """
vutf users create bob --email bob@example.com --generate-password > /dev/null
vutf users add-role bob viewer > /dev/null
c=0; vutf users import - <&- 2> import.err || c=$?; echo "import-stdin-closed $c"
c=0; vutf users set-password bob --password-stdin <&- 2> pw.err || c=$?; echo "pw-stdin-closed $c"
c=0; vutf users set-password bob --password-stdin 0> in.txt 2> wo.err || c=$?; echo "pw-stdin-wo $c"
c=0; vutf users list >&- 2> list.err || c=$?; echo "list-stdout-closed $c"
c=0; vutf --help >&- 2> help.err || c=$?; echo "help-stdout-closed $c"
c=0; vutf users create -h >&- 2>> help.err || c=$?; echo "group-help-stdout-closed $c"
c=0; vutf keys create -u bob -n deploy >&- 2> key.err || c=$?; echo "key-stdout-closed $c"
c=0; vutf audit export --output-file audit.jsonl >&- 2> ex.err || c=$?; echo "export-closed $c"
c=0; vutf users show ghost 2>&- || c=$?; echo "show-stderr-closed $c"
c=0; vutf users deactivate bob <&- >&- 2>&- || c=$?; echo "all-closed $c"
c=0; vutf users show ghost 2>&1 | head -c 0 || c=$?; echo "stderr-reader-gone $c"
c=0; vutf users show ghost 2> /dev/full || c=$?; echo "stderr-full $c"
vutf users show bob -o json > bob.json
vutf keys list --any-state -o json > keys.json
"""


def test_a_closed_standard_stream_is_a_documented_outcome_never_exit_1(
    database_url: str, tmp_path: Path
) -> None:
    result = run_script(SCRIPT, database_url, tmp_path)
    assert result.returncode == 0, result.stderr
    codes = dict(line.split() for line in result.stdout.splitlines())
    assert codes == {
        "import-stdin-closed": "2",
        "pw-stdin-closed": "2",
        "pw-stdin-wo": "2",
        "list-stdout-closed": "0",
        # Typer prints help itself, and answers the closed pipe with exit 1 of its own.
        "help-stdout-closed": "0",
        "group-help-stdout-closed": "0",
        "key-stdout-closed": "9",
        "export-closed": "0",
        "show-stderr-closed": "3",
        "all-closed": "0",
        # A message that cannot be written is dropped; the exit code is the command's.
        "stderr-reader-gone": "3",
        "stderr-full": "3",
    }, {name: (tmp_path / name).read_text() for name in ("key.err", "ex.err")}
    assert (tmp_path / "import.err").read_text() == "error: the import file is empty\n"
    assert (tmp_path / "pw.err").read_text().startswith("error: empty new password")
    # A stdin open for writing only (`0>` for `<`) is as closed, and is left as it was.
    assert (tmp_path / "wo.err").read_text().startswith("error: empty new password")
    assert (tmp_path / "in.txt").read_bytes() == b""
    assert "Traceback" not in (tmp_path / "list.err").read_text()
    assert (tmp_path / "help.err").read_text() == ""
    # The key was made but never shown: the operator is told how to be rid of it.
    key_error = (tmp_path / "key.err").read_text()
    assert "was created but could not be written to stdout" in key_error
    assert "vutf keys revoke vutf_" in key_error
    assert [key["name"] for key in json.loads((tmp_path / "keys.json").read_text())] == ["deploy"]
    # The export's file is its own (not the descriptor stdout left free), whole and valid.
    exported = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [row["action"] for row in exported][-1] == "api_key.create"
    # The change with every stream closed was made.
    assert json.loads((tmp_path / "bob.json").read_text())["is_active"] is False


FULL_DISK_SCRIPT = """
unset PYTHONUNBUFFERED
vutf users create bob --email bob@example.com --generate-password > /dev/null
vutf users add-role bob viewer > /dev/null
run() { c=0; "$@" > /dev/full 2>> full.err || c=$?; echo "$c"; }
for buffering in buffered unbuffered; do
  [ "$buffering" = unbuffered ] && export PYTHONUNBUFFERED=1
  echo "$buffering help $(run vutf --help)"
  echo "$buffering group-help $(run vutf users create -h)"
  echo "$buffering version $(run vutf --version)"
  echo "$buffering list $(run vutf users list)"
  echo "$buffering list-json $(run vutf users list -o json)"
  echo "$buffering export $(run vutf audit export -o jsonl)"
  echo "$buffering completion $(run vutf completion bash)"
  echo "$buffering key $(run vutf keys create -u bob -n "deploy-$buffering")"
done
vutf keys list -o json > keys.json
"""


def test_stdout_on_a_full_disk_is_exit_7_naming_it_never_exit_1(
    database_url: str, tmp_path: Path
) -> None:
    result = run_script(FULL_DISK_SCRIPT, database_url, tmp_path)
    assert result.returncode == 0, result.stderr
    errors = (tmp_path / "full.err").read_text()
    codes = {tuple(line.split()[:2]): line.split()[2] for line in result.stdout.splitlines()}
    expected = {"key": "9"}
    assert codes == {
        (buffering, name): expected.get(name, "7")
        for buffering in ("buffered", "unbuffered")
        for name in (
            "help",
            "group-help",
            "version",
            "list",
            "list-json",
            "export",
            "completion",
            "key",
        )
    }, errors
    lines = errors.splitlines()
    # One line each (the two keys: their message and the hint to revoke them),
    # never a traceback or Python's "Exception ignored" at exit.
    assert lines.count("error: cannot write to stdout: No space left on device") == 10, errors
    assert sum('"code":"stdout_failed"' in line for line in lines) == 4, errors
    assert (
        sum("could not be written to stdout: No space left on device" in line for line in lines)
        == 2
    )
    assert len(lines) == 18, errors
    # Both keys exist, so the hint to revoke them is true.
    names = {key["name"] for key in json.loads((tmp_path / "keys.json").read_text())}
    assert names == {"deploy-buffered", "deploy-unbuffered"}


def test_stdout_on_a_full_disk_under_a_progress_bar_is_exit_7(
    database_url: str, tmp_path: Path
) -> None:
    """At a terminal the export draws a progress bar, which stands in for sys.stdout meanwhile."""
    made = run_script(
        "vutf users create bob --email b@example.com --generate-password", database_url, tmp_path
    )
    assert made.returncode == 0, made.stderr
    for fmt in ("jsonl", "csv"):
        command = f'exec "{VUTF}" audit export -o {fmt} > /dev/full'
        terminal = Terminal(["bash", "-c", command], installed_env(database_url))
        assert terminal.wait() == 7, terminal.seen
        assert "cannot write to stdout: No space left on device" in terminal.seen
        assert "internal error" not in terminal.seen, terminal.seen


ENCODING_SCRIPT = """
vutf users create bob --email bob@example.com --generate-password > /dev/null
vutf users update bob --full-name 'Zoë 名前' > /dev/null
export PYTHONIOENCODING=ascii
vutf users list -o json | jq -r '.[0].full_name' > name.txt
vutf users export -o csv > users.csv
printf 'pässwörd horse battery' | vutf users set-password bob --password-stdin 2> /dev/null
unset PYTHONIOENCODING
printf 'pässwörd horse battery' | vutf users check-password bob --password-stdin -q
"""


def test_data_is_utf8_and_a_terminal_shows_escapes_under_an_ascii_locale(
    database_url: str, tmp_path: Path
) -> None:
    result = run_script(ENCODING_SCRIPT, database_url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "name.txt").read_text(encoding="utf-8") == "Zoë 名前\n"
    assert "Zoë 名前" in (tmp_path / "users.csv").read_bytes().decode("utf-8")
    # At a terminal that cannot show them, directly and through a pager: escapes.
    for pager in ("cat", "tee /dev/null"):
        env = {**installed_env(database_url), "PYTHONIOENCODING": "ascii", "VUTF_PAGER": pager}
        terminal = Terminal([str(VUTF), "users", "show", "bob"], env)
        assert terminal.wait() == 0, terminal.seen
        assert "Zo\\xeb \\u540d\\u524d" in terminal.seen, terminal.seen
