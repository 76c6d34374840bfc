"""Fast completion: the static tree is the live one, and every answer is Typer's.

``vutf`` answers <TAB> from ``vutf_cli/cli/completion_data.py`` without
building the Typer application (:mod:`vutf_cli.cli.fast_completion`).  These
tests hold it to Typer:

* the committed tree is exactly what the generator extracts from the live
  application (a new command, option or help text makes it stale);
* for a few thousand requests (every command path, every prefix of every
  subcommand and option name, options waiting for a value, options already
  given, in bash, zsh and fish), the fast answer is byte for byte what Typer
  itself prints, or the fast path declines and Typer answers;
* the cases it declines are the ones it does not model.

The real shells (``tests/cli/test_completion.py``) run through the installed
``vutf``, i.e. through the fast path.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from vutf_cli.cli import completion_data, completion_tree
from vutf_cli.cli.app import COMPLETE_VAR, PROG_NAME
from vutf_cli.cli.fast_completion import Answer, answer_completion_request


# -- the committed tree ------------------------------------------------------------
def test_committed_tree_is_the_live_tree() -> None:
    committed = completion_tree.DATA_FILE.read_text(encoding="utf-8")
    assert committed == completion_tree.current_module_text(), (
        f"{completion_tree.DATA_FILE.name} is stale (a command, option or help text "
        f"changed); regenerate with: {completion_tree.REGENERATE_COMMAND}"
    )


def test_check_reports_a_stale_tree(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "completion_data.py"
    stale.write_text("TREE = {}\n", encoding="utf-8")
    monkeypatch.setattr(completion_tree, "DATA_FILE", stale)
    assert completion_tree.main(["--check"]) == 1
    assert completion_tree.REGENERATE_COMMAND in capsys.readouterr().err
    assert completion_tree.main(["--write"]) == 0
    assert completion_tree.main(["--check"]) == 0


# -- requests ------------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    shell: str  # bash, zsh, fish-get, fish-is
    line: str  # what was typed before <TAB>

    def environ(self) -> dict[str, str]:
        if self.shell == "bash":
            words = self.line.split() + ([""] if self.line.endswith(" ") else [])
            return {
                COMPLETE_VAR: "complete_bash",
                "COMP_WORDS": " ".join(words),
                "COMP_CWORD": str(len(words) - 1),
            }
        if self.shell == "zsh":
            return {COMPLETE_VAR: "complete_zsh", "_TYPER_COMPLETE_ARGS": self.line}
        action = "get-args" if self.shell == "fish-get" else "is-args"
        return {
            COMPLETE_VAR: "complete_fish",
            "_TYPER_COMPLETE_FISH_ACTION": action,
            "_TYPER_COMPLETE_ARGS": self.line,
        }


def _option_names(node: dict[str, object]) -> list[str]:
    names: list[str] = []
    for option in node["options"]:  # type: ignore[attr-defined]
        names.extend([*option[0], *option[1]])
    return names


def _value_options(node: dict[str, object]) -> list[str]:
    return [option[0][0] for option in node["options"] if option[3]]  # type: ignore[attr-defined]


def _lines() -> Iterator[str]:
    """What a person could have typed before <TAB>, over the whole command tree."""
    tree = completion_data.TREE
    for path, node in tree.items():
        prefix = f"vutf {path} ".replace("  ", " ")
        yield prefix
        yield prefix + "zz"
        for name, _help, _hidden in node["commands"]:
            yield prefix + name[:1]
            yield prefix + name[:2]
            yield prefix + name
        yield prefix + "-"
        yield prefix + "--"
        for name in _option_names(node):
            yield prefix + name[:3]
        for name in _value_options(node):
            yield f"{prefix}{name} "  # the value comes next
            yield f"{prefix}{name} x"
            yield f"{prefix}{name}="
            yield f"{prefix}{name} x -"  # the value given: names again, minus this one
            yield f"{prefix}{name}=x --"
        flags = [option[0][0] for option in node["options"] if not option[3] and not option[6]]
        for name in flags[:3]:
            yield f"{prefix}{name} --"
        if not node["group"]:
            yield prefix + "someone "
            yield prefix + "someone --"
    # Global options before the group, and words the fast path declines.
    yield "vutf --json us"
    yield "vutf -o json users l"
    yield "vutf -ojson users "
    yield "vutf --output=json users list --"
    yield "vutf users list -- -"
    yield "vutf --version "
    yield "vutf users --help "
    yield "vutf userz "
    yield "vutf users list --limit"
    yield "vutf users list --sort=-"
    yield "vutf users list --bogus --"
    yield "vutf users list --json=1 --"
    yield 'vutf users create "al'


SHELLS = ("bash", "zsh", "fish-get", "fish-is")
REQUESTS = [Request(shell, line) for line in dict.fromkeys(_lines()) for shell in SHELLS]


def typer_answer(request: Request, monkeypatch: pytest.MonkeyPatch) -> Answer:
    """What Typer itself prints for ``request`` (the slow path, in process)."""
    from vutf_cli.cli.root import command

    with monkeypatch.context() as patch:
        for name, value in request.environ().items():
            patch.setenv(name, value)
        out = io.StringIO()
        code = 0
        with contextlib.redirect_stdout(out):
            try:
                command._main_shell_completion({}, PROG_NAME, COMPLETE_VAR)
            except SystemExit as exc:
                code = int(exc.code or 0)
    text = out.getvalue()
    return Answer(text[:-1] if text.endswith("\n") else (text or None), code)


ZSH_OPEN, ZSH_CLOSE = "_arguments '*: :((", "))'"


def _candidate(line: str) -> str:
    """The candidate a line of an answer offers (bash: the line; fish: before the tab)."""
    line = line.split("\t")[0]
    return line.split('":"')[0].strip('"') if line.startswith('"') else line


def _same_up_to_help_option_order(fast: str | None, slow: str | None) -> bool:
    """Equal, except that Typer lists ``-h``/``--help`` in a per-process random order.

    Click builds the help option from ``set(help_option_names)``, so which of
    the two comes first changes with the string hash seed.
    """
    if fast is None or slow is None:
        return fast == slow

    def normal(text: str) -> list[str]:
        wrapped = text.startswith(ZSH_OPEN) and text.endswith(ZSH_CLOSE)
        body = text[len(ZSH_OPEN) : -len(ZSH_CLOSE)] if wrapped else text
        out: list[str] = [ZSH_OPEN] if wrapped else []
        run: list[str] = []
        for line in body.split("\n"):
            if _candidate(line) in ("-h", "--help"):
                run.append(line)
                continue
            out.extend(sorted(run))
            run = []
            out.append(line)
        return [*out, *sorted(run)]

    return normal(fast) == normal(slow)


def test_every_fast_answer_is_typers(monkeypatch: pytest.MonkeyPatch) -> None:
    answered = 0
    for request in REQUESTS:
        fast = answer_completion_request(
            {**os.environ, **request.environ()}, prog_name=PROG_NAME, complete_var=COMPLETE_VAR
        )
        if fast is None:
            continue
        answered += 1
        slow = typer_answer(request, monkeypatch)
        assert fast.exit_code == slow.exit_code, request
        assert _same_up_to_help_option_order(fast.output, slow.output), (
            f"{request}:\nfast: {fast.output!r}\nTyper: {slow.output!r}"
        )
    # The fast path must actually answer: most of these requests are ordinary.
    assert answered > 0.8 * len(REQUESTS), f"only {answered} of {len(REQUESTS)} answered"


@pytest.mark.parametrize(
    "line",
    [
        "vutf users list -- -",  # after --, words are not options
        "vutf --version ",  # its callback runs while Typer parses
        "vutf users --help ",
        "vutf userz ",  # not a command
        "vutf users list --bogus --",  # not an option
        "vutf users list --json=1 --",  # a flag given a value
        "vutf users list --sort=-",
    ],
)
@pytest.mark.parametrize("shell", SHELLS)
def test_what_is_not_modelled_is_left_to_typer(line: str, shell: str) -> None:
    request = Request(shell, line)
    environ = {**os.environ, **request.environ()}
    assert (
        answer_completion_request(environ, prog_name=PROG_NAME, complete_var=COMPLETE_VAR) is None
    )


@pytest.mark.parametrize("shell", ["zsh", "fish-get"])
def test_help_that_rich_would_wrap_is_left_to_typer(
    shell: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = Request(shell, "vutf users list --")
    environ = {**os.environ, **request.environ(), "COLUMNS": "30"}
    assert (
        answer_completion_request(environ, prog_name=PROG_NAME, complete_var=COMPLETE_VAR) is None
    )
    monkeypatch.setenv("COLUMNS", "30")
    wrapped = typer_answer(request, monkeypatch).output
    assert wrapped is not None
    assert "only inactive,\nusers." in wrapped

    wide = {**os.environ, **request.environ(), "COLUMNS": "200"}
    fast = answer_completion_request(wide, prog_name=PROG_NAME, complete_var=COMPLETE_VAR)
    assert fast is not None
    assert fast.output is not None
    assert "only inactive, users." in fast.output


def test_bash_answers_are_one_candidate_per_line() -> None:
    request = Request("bash", "vutf users ")
    answer = answer_completion_request(
        {**os.environ, **request.environ()}, prog_name=PROG_NAME, complete_var=COMPLETE_VAR
    )
    assert answer is not None
    assert answer.output is not None
    names = [name for name, _help, _hidden in completion_data.TREE["users"]["commands"]]
    assert "list" in names
    assert answer.output.split("\n") == names


def test_other_instructions_are_left_to_typer() -> None:
    for instruction in ("source_bash", "complete_powershell", "complete", "bogus"):
        environ = {**os.environ, COMPLETE_VAR: instruction}
        assert (
            answer_completion_request(environ, prog_name=PROG_NAME, complete_var=COMPLETE_VAR)
            is None
        )
