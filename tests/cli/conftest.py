"""CLI tests: run the real entry point in-process, isolated by Typer's CliRunner.

``invoke`` calls :func:`vutf_cli.cli.app.run` (option hoisting, error
mapping, exit codes: what the console script does) inside
``CliRunner().isolation()``, which swaps stdin/stdout/stderr and the
environment for the call.  ``run_cli`` points ``VUTF_DATABASE_URL`` at the
test's fresh database (both backends via the ``backend`` fixture) and returns
stdout and stderr separately.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from typer.testing import CliRunner


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def jsonl(self) -> list[Any]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def error(self) -> dict[str, Any]:
        """The JSON error object on stderr (with -o json/jsonl)."""
        payload: dict[str, Any] = json.loads(self.stderr.strip().splitlines()[-1])["error"]
        return payload


RunCli = Callable[..., CliResult]


@functools.cache
def command_tree() -> Any:
    """The Click command Typer builds from vutf's app, built once for the whole session.

    Typer builds it again on every ``app(...)`` call, as the console script
    does once per process; thousands of in-process invocations would spend
    minutes rebuilding it.  ``run(args, tree=...)`` is the path ``vutf
    batch`` takes for each of its lines (the e2e tests run the console
    script's own path).  ``typer.main.get_command`` is Typer's documented
    bridge to Click ("Using Click").
    """
    import typer.main

    from vutf_cli.cli.root import app

    return typer.main.get_command(app)


def invoke(
    args: list[str], *, input: str | bytes | None = None, env: Mapping[str, str] | None = None
) -> CliResult:
    """``vutf ARGS`` in-process: exit code, stdout and stderr as the console script gives them."""
    from vutf_cli.cli.app import run

    with CliRunner().isolation(input=input, env=dict(env or {})) as (stdout, stderr, _):
        try:
            exit_code = run(args, tree=command_tree())
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        return CliResult(exit_code, _text(stdout.getvalue()), _text(stderr.getvalue()))


def _text(data: bytes) -> str:
    # As CliRunner's Result decodes them.
    return data.decode("utf-8", "replace").replace("\r\n", "\n")


@pytest.fixture
def run_cli(database_url: str) -> RunCli:
    def run(
        *args: str,
        input: str | bytes | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CliResult:
        merged = {"VUTF_DATABASE_URL": database_url, **(env or {})}
        return invoke(list(args), input=input, env=merged)

    return run
