"""The shell completion scripts in ``completions/``, generated with Typer's own templates.

Each script is exactly what ``vutf --show-completion SHELL`` prints: the same
Typer function renders it, for the program ``vutf`` and the environment
variable ``_VUTF_COMPLETE``.  A script only wires the shell to ``vutf``
itself; the candidates are computed at <TAB> time by ``vutf`` (so new commands
complete without regenerating anything, and a Typer upgrade that changes the
templates is caught by the staleness test).

Regenerate after upgrading Typer::

    python -m vutf_cli.cli.completion --write completions/

``--check completions/`` exits 1 (and names the stale files) instead of writing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

# The one function behind Typer's --show-completion and --install-completion.
from typer._completion_shared import get_completion_script

PROG_NAME = "vutf"
COMPLETE_VAR = "_VUTF_COMPLETE"

# Shell -> file name, following each shell's convention for completion files
# (bash-completion: the command's name; zsh fpath: `_` + command; fish: `.fish`).
SCRIPT_FILES: dict[str, str] = {
    "bash": "vutf.bash",
    "zsh": "_vutf",
    "fish": "vutf.fish",
}

REGENERATE_COMMAND = "python -m vutf_cli.cli.completion --write completions/"


def completion_script(shell: str) -> str:
    """The completion script for ``shell``, byte for byte what ``--show-completion`` prints."""
    if shell not in SCRIPT_FILES:
        raise ValueError(f"unsupported shell {shell!r}; expected one of {sorted(SCRIPT_FILES)}")
    script = get_completion_script(prog_name=PROG_NAME, complete_var=COMPLETE_VAR, shell=shell)
    # --show-completion echoes the script, which ends it with one newline.
    return script + "\n"


def write_completion_scripts(directory: Path) -> list[Path]:
    """Write every shell's script into ``directory`` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for shell, file_name in SCRIPT_FILES.items():
        path = directory / file_name
        # newline="" keeps "\n" on every platform: the files are compared byte for byte.
        with path.open("w", encoding="utf-8", newline="") as handle:
            handle.write(completion_script(shell))
        written.append(path)
    return written


def stale_completion_scripts(directory: Path) -> list[Path]:
    """The scripts in ``directory`` that are missing or differ from what would be generated."""
    stale: list[Path] = []
    for shell, file_name in SCRIPT_FILES.items():
        path = directory / file_name
        expected = completion_script(shell).encode("utf-8")
        if not path.is_file() or path.read_bytes() != expected:
            stale.append(path)
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vutf_cli.cli.completion",
        description="Generate or check vutf's shell completion scripts (bash, zsh, fish).",
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", metavar="DIR", type=Path, help="write the scripts into DIR")
    action.add_argument(
        "--check", metavar="DIR", type=Path, help="exit 1 if a script in DIR is stale"
    )
    args = parser.parse_args(argv)
    if args.write is not None:
        for path in write_completion_scripts(args.write):
            sys.stdout.write(f"wrote {path}\n")
        return 0
    stale = stale_completion_scripts(args.check)
    for path in stale:
        sys.stderr.write(f"stale: {path}\n")
    if stale:
        sys.stderr.write(f"regenerate with: {REGENERATE_COMMAND}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
