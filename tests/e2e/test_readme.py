"""The README is true: its quick start runs verbatim and every tour example exits 0.

The quick start's install command runs in a brand-new virtual environment
(``pip install .`` from this checkout, dependencies from the package index),
and the tour then runs, command by command, with that environment's ``vutf``
first on PATH, in an empty directory, on the embedded default database.  The
PostgreSQL examples run against a database this test creates.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import _admin_execute, _with_database, postgres_admin_url

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
README_PG_URL = "postgresql://postgres@127.0.0.1:5432/vutf_readme"

pytestmark = pytest.mark.slow


def console_commands(markdown: str) -> list[list[str]]:
    """The ``$ `` lines of every ```console block, block by block."""
    blocks = re.findall(r"```console\n(.*?)```", markdown, flags=re.DOTALL)
    return [[line[2:] for line in block.splitlines() if line.startswith("$ ")] for block in blocks]


def _run(command: str, *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def readme_blocks() -> list[list[str]]:
    blocks = console_commands(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 3, "README lost its console examples"
    return blocks


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("readme-venv") / "venv"
    venv.EnvBuilder(with_pip=True).create(path)
    return path


@pytest.fixture
def readme_postgres_url(postgres_template: str | None) -> Iterator[str]:
    if postgres_template is None:
        pytest.skip("PostgreSQL is unreachable")
    name = f"vutf_t_readme_{uuid.uuid4().hex[:8]}"
    _admin_execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(postgres_admin_url(), name)
    finally:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_test_command_is_what_ci_runs(readme_blocks: list[list[str]]) -> None:
    test_command = readme_blocks[1][0]
    assert test_command.endswith("python -m pytest")
    assert "\npython -m pytest\n" in (REPO / ".ci" / "run").read_text(encoding="utf-8")


def test_quick_start_and_tour_run_verbatim(
    readme_blocks: list[list[str]],
    fresh_venv: Path,
    tmp_path: Path,
    readme_postgres_url: str,
) -> None:
    env = dict(os.environ)
    env["PATH"] = f"{fresh_venv / 'bin'}{os.pathsep}{env['PATH']}"
    env.pop("PYTHONPATH", None)
    env["VUTF_DATA_DIR"] = str(tmp_path / "data")
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"

    install_and_run = readme_blocks[0][0]
    assert install_and_run.startswith("pip install . && vutf ")
    result = _run(install_and_run, cwd=REPO, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    # The vutf that ran is the one just installed, not this checkout's.
    where = subprocess.run(
        [str(fresh_venv / "bin" / "python"), "-c", "import vutf_cli; print(vutf_cli.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(fresh_venv) in where

    workdir = tmp_path / "work"
    workdir.mkdir()
    for block in readme_blocks[2:]:
        for command in block:
            if command.startswith("pip install -e"):
                continue  # the development install; the quick start covered installing
            command = command.replace(README_PG_URL, readme_postgres_url)
            result = _run(command, cwd=workdir, env=env)
            assert result.returncode == 0, f"$ {command}\n{result.stdout}\n{result.stderr}"
            assert "Traceback" not in result.stderr, command


def test_console_block_parser() -> None:
    text = "x\n```console\n$ a b\nout\n$ c\n```\n```toml\n$ no\n```\n"
    assert console_commands(text) == [["a b", "c"]]


def test_the_config_file_example_loads(tmp_path: Path) -> None:
    from vutf_cli.settings import load_settings

    block = re.search(r"```toml\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert block is not None, "README lost its config file example"
    config = tmp_path / "config.toml"
    config.write_text(block.group(1), encoding="utf-8")
    config.chmod(0o600)
    settings = load_settings({}, env={"VUTF_CONFIG": str(config)})
    assert settings.database_url.startswith("postgresql://")
    assert settings.config_file == str(config)


def test_the_benchmark_command_is_the_runner() -> None:
    text = README.read_text(encoding="utf-8")
    assert "python -m tests.benchmarks --rows" in text
    assert (REPO / "tests" / "benchmarks" / "__main__.py").is_file()
