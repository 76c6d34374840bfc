"""CLI tests: run the real root command in-process with Typer's CliRunner.

``run_cli`` points ``VUTF_DATABASE_URL`` at the test's fresh database (both
backends via the ``backend`` fixture) and returns stdout and stderr separately.
"""

from __future__ import annotations

import json
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


def invoke(
    args: list[str], *, input: str | bytes | None = None, env: Mapping[str, str] | None = None
) -> CliResult:
    from vutf_cli.cli.app import app

    runner = CliRunner()
    result = runner.invoke(app, args, input=input, env=dict(env or {}), catch_exceptions=False)
    return CliResult(result.exit_code, result.stdout, result.stderr)


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
