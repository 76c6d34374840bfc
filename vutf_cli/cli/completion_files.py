"""The committed completion scripts: ``python -m vutf_cli.cli.completion_files --write DIR``.

Each file in ``completions/`` is exactly what ``vutf completion SHELL``
prints, rendered in-process from the application.  ``--write`` regenerates
them after a command or option changed; ``--check`` exits 1 naming the stale
ones (the test suite runs the same check).  Development-time only: nothing in
the application imports this module.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from typer.testing import CliRunner

from vutf_cli.cli.completion_scripts import SCRIPT_FILES
from vutf_cli.cli.root import PROG_NAME
from vutf_cli.cli.root import app as vutf_app

REGENERATE_COMMAND = "python -m vutf_cli.cli.completion_files --write completions/"


def completion_script(shell: str) -> str:
    """What ``vutf completion SHELL`` prints, from the application in this process."""
    if shell not in SCRIPT_FILES:
        raise ValueError(f"unsupported shell {shell!r}; expected one of {sorted(SCRIPT_FILES)}")
    result = CliRunner().invoke(vutf_app, ["completion", shell], prog_name=PROG_NAME, env={})
    if result.exit_code != 0:
        raise RuntimeError(f"vutf completion {shell} failed: {result.output}")
    return result.stdout


def write_completion_scripts(directory: Path) -> list[Path]:
    """Write every shell's script into ``directory`` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for shell, file_name in SCRIPT_FILES.items():
        path = directory / file_name
        # newline="": the files are compared byte for byte on every platform.
        with path.open("w", encoding="utf-8", newline="") as handle:
            handle.write(completion_script(shell))
        written.append(path)
    return written


def stale_completion_scripts(directory: Path) -> list[Path]:
    """The scripts in ``directory`` that are missing or differ from what would be generated."""
    stale: list[Path] = []
    for shell, file_name in SCRIPT_FILES.items():
        path = directory / file_name
        if not path.is_file() or path.read_bytes() != completion_script(shell).encode("utf-8"):
            stale.append(path)
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vutf_cli.cli.completion_files",
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
