"""Start-up discipline: what the installed ``vutf`` imports for cheap requests.

``--help``, ``--version`` and shell completion must not import SQLAlchemy,
Alembic, argon2 or psycopg2, nor touch the database; ``vutf db current`` and
``vutf users list`` must not import Alembic.  The start-up budget adds more:
``--version`` and completion requests are answered before Typer is imported;
no cheap path imports pydantic (Typer's value coercion) or Rich; listing
users does not import argon2 or the user-import machinery, nor (on SQLite)
the PostgreSQL dialect, nor tenacity when no retry was needed.  Each case runs the installed
console script under ``python -X importtime`` and reads stderr: every module
imported after start-up is listed there, indented by depth, so a violation is
reported with the chain of imports that pulled it in.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CLI_DIR = REPO_ROOT / "vutf_cli" / "cli"
HEAVY = ("sqlalchemy", "alembic", "argon2", "psycopg2")
# Not forbidden by the design, but each costs a visible share of a start-up.
SLOW_TO_IMPORT = ("pydantic", "rich")
REGENERATE_TREE = "python -m vutf_cli.cli.completion_tree --write"
TIMEOUT = 120.0

# "import time:       123 |        456 |     package.module"
_IMPORTTIME_LINE = re.compile(r"^import time:\s*(\d+) \|\s*(\d+) \|( *)(\S+)\s*$")


def _group_exists(name: str) -> bool:
    return (CLI_DIR / f"{name}.py").exists()


def needs_group(name: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not _group_exists(name),
        reason=f"vutf_cli/cli/{name}.py does not exist yet, so `vutf {name}` is not registered",
    )


@dataclass(frozen=True)
class Imported:
    """Modules a run imported, in ``-X importtime`` order (a module after its imports)."""

    entries: list[tuple[int, str]]  # (depth, module)

    @classmethod
    def parse(cls, stderr: str) -> Imported:
        entries = []
        for line in stderr.splitlines():
            match = _IMPORTTIME_LINE.match(line)
            if match:
                entries.append((len(match.group(3)) // 2, match.group(4)))
        return cls(entries)

    def names(self) -> set[str]:
        return {name for _, name in self.entries}

    def of_package(self, package: str) -> list[str]:
        return [name for name in self.names() if name == package or name.startswith(package + ".")]

    def chain(self, module: str) -> list[str]:
        """Who imported ``module``: outermost import first."""
        index = next(i for i, (_, name) in enumerate(self.entries) if name == module)
        depth, _ = self.entries[index]
        chain = [module]
        for later_depth, name in self.entries[index + 1 :]:
            if later_depth < depth:
                chain.append(name)
                depth = later_depth
        return list(reversed(chain))

    def first_of(self, package: str) -> str:
        """The first module of ``package`` imported: the one whose chain says who is to blame."""
        return next(
            name for _, name in self.entries if name == package or name.startswith(package + ".")
        )


def _installed_vutf() -> Path:
    beside = Path(sys.executable).parent / "vutf"
    if beside.is_file():
        return beside
    found = shutil.which("vutf")
    if found is None:
        message = "the vutf console script is not installed (pip install -e .)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return Path(found)


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    imported: Imported

    def assert_not_imported(self, *packages: str) -> None:
        problems = []
        for package in packages:
            if self.imported.of_package(package):
                first = self.imported.first_of(package)
                problems.append(f"{package}: " + " -> ".join(self.imported.chain(first)))
        assert not problems, "heavy imports on a cheap path:\n  " + "\n  ".join(problems)


RunVutf = Callable[..., Run]


@pytest.fixture
def database_file(tmp_path: Path) -> Path:
    return tmp_path / "vutf.db"


@pytest.fixture
def run_vutf(database_file: Path, tmp_path: Path) -> RunVutf:
    """Run the installed vutf under ``-X importtime`` with a private SQLite URL."""
    script = _installed_vutf()

    def run(*args: str, extra_env: dict[str, str] | None = None) -> Run:
        env = dict(os.environ)
        env.pop("PYTHONPROFILEIMPORTTIME", None)
        env["VUTF_DATABASE_URL"] = f"sqlite:///{database_file}"
        env.update(extra_env or {})
        result = subprocess.run(
            [sys.executable, "-X", "importtime", str(script), *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        imported = Imported.parse(result.stderr)
        stderr = "\n".join(
            line for line in result.stderr.splitlines() if not line.startswith("import time:")
        )
        assert imported.entries, "-X importtime printed nothing: is the script a Python file?"
        return Run(result.returncode, result.stdout, stderr, imported)

    return run


def _assert_database_untouched(database_file: Path) -> None:
    assert not database_file.exists(), "a cheap request created the database"
    assert not Path(os.environ["VUTF_DATA_DIR"]).exists(), "a cheap request created the data dir"


# -- help and version ----------------------------------------------------------
def test_root_help_imports_nothing_heavy(run_vutf: RunVutf, database_file: Path) -> None:
    run = run_vutf("--help")
    assert run.returncode == 0, run.stderr
    assert "Usage: vutf" in run.stdout
    run.assert_not_imported(*HEAVY)
    _assert_database_untouched(database_file)


def test_version_imports_nothing_heavy(run_vutf: RunVutf, database_file: Path) -> None:
    from vutf_cli import __version__

    run = run_vutf("--version")
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"vutf {__version__}\n"
    run.assert_not_imported(*HEAVY)
    _assert_database_untouched(database_file)


def test_version_does_not_import_typer(run_vutf: RunVutf) -> None:
    run = run_vutf("--version")
    assert run.returncode == 0, run.stderr
    run.assert_not_imported("typer", "click", *SLOW_TO_IMPORT)


def test_help_imports_neither_pydantic_nor_rich(run_vutf: RunVutf) -> None:
    for args in (["--help"], ["users", "--help"], ["users", "list", "--help"]):
        run = run_vutf(*args)
        assert run.returncode == 0, run.stderr
        run.assert_not_imported(*SLOW_TO_IMPORT)


def test_a_late_version_flag_still_goes_through_typer(run_vutf: RunVutf) -> None:
    """Only a lone --version takes the shortcut; Typer handles it anywhere else."""
    from vutf_cli import __version__

    run = run_vutf("--json", "--version")
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"vutf {__version__}\n"


@pytest.mark.parametrize(
    "group",
    [
        pytest.param("db", marks=needs_group("db")),
        pytest.param("users", marks=needs_group("users")),
        pytest.param("keys", marks=needs_group("keys")),
        pytest.param("audit", marks=needs_group("audit")),
    ],
)
def test_group_help_imports_nothing_heavy(
    run_vutf: RunVutf, database_file: Path, group: str
) -> None:
    run = run_vutf(group, "--help")
    assert run.returncode == 0, run.stderr
    assert f"Usage: vutf {group}" in run.stdout
    run.assert_not_imported(*HEAVY)
    _assert_database_untouched(database_file)


# -- completion requests (the protocol each generated script speaks) ----------
@dataclass(frozen=True)
class CompletionRequest:
    env: dict[str, str]
    expected: str  # a candidate that must appear in the answer


COMPLETION_REQUESTS = [
    pytest.param(
        CompletionRequest(
            {"_VUTF_COMPLETE": "complete_bash", "COMP_WORDS": "vutf us", "COMP_CWORD": "1"},
            "users",
        ),
        id="bash-us",
        marks=needs_group("users"),
    ),
    pytest.param(
        CompletionRequest(
            {"_VUTF_COMPLETE": "complete_bash", "COMP_WORDS": "vutf users ", "COMP_CWORD": "2"},
            "create",
        ),
        id="bash-users",
        marks=needs_group("users"),
    ),
    pytest.param(
        CompletionRequest(
            {"_VUTF_COMPLETE": "complete_bash", "COMP_WORDS": "vutf d", "COMP_CWORD": "1"},
            "db",
        ),
        id="bash-d",
    ),
    pytest.param(
        CompletionRequest(
            {"_VUTF_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "vutf db "},
            "upgrade",
        ),
        id="zsh-db",
    ),
    pytest.param(
        CompletionRequest(
            {
                "_VUTF_COMPLETE": "complete_fish",
                "_TYPER_COMPLETE_FISH_ACTION": "get-args",
                "_TYPER_COMPLETE_ARGS": "vutf db ",
            },
            "current",
        ),
        id="fish-db",
    ),
]


@pytest.mark.parametrize("request_", COMPLETION_REQUESTS)
def test_completion_imports_nothing_heavy(
    run_vutf: RunVutf,
    database_file: Path,
    request_: CompletionRequest,
) -> None:
    run = run_vutf(extra_env=request_.env)
    assert run.returncode == 0, run.stderr
    assert request_.expected in run.stdout
    run.assert_not_imported(*HEAVY)
    _assert_database_untouched(database_file)


@pytest.mark.parametrize("request_", COMPLETION_REQUESTS)
def test_completion_is_answered_without_typer(
    run_vutf: RunVutf, request_: CompletionRequest
) -> None:
    """The static command tree answers these; Typer is not even imported.

    If this fails after a command module changed, the tree is stale:
    regenerate it (and see tests/cli/test_fast_completion.py).
    """
    run = run_vutf(extra_env=request_.env)
    assert run.returncode == 0, run.stderr
    assert request_.expected in run.stdout
    try:
        run.assert_not_imported("typer", *SLOW_TO_IMPORT)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n(is the tree stale? {REGENERATE_TREE})") from None


# -- commands that use the database but not the migrations --------------------
def test_db_current_does_not_import_alembic(run_vutf: RunVutf, database_file: Path) -> None:
    upgraded = run_vutf("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert database_file.exists()

    run = run_vutf("--json", "db", "current")
    assert run.returncode == 0, run.stderr
    assert '"at_head": true' in run.stdout
    assert run.imported.of_package("sqlalchemy"), "db current should have read the database"
    run.assert_not_imported("alembic", "argon2", *SLOW_TO_IMPORT)


@needs_group("users")
def test_users_list_does_not_import_alembic(run_vutf: RunVutf, database_file: Path) -> None:
    upgraded = run_vutf("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr

    run = run_vutf("--json", "users", "list")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
    run.assert_not_imported("alembic")


@needs_group("users")
def test_users_list_imports_only_what_reading_needs(run_vutf: RunVutf) -> None:
    upgraded = run_vutf("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr

    run = run_vutf("users", "list", "--json", "--limit", "5", "--sort", "username")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
    run.assert_not_imported(
        "alembic",
        "argon2",  # passwords are neither hashed nor checked
        "multiprocessing",  # the import's hashing pool
        "vutf_cli.services.user_import",
        "vutf_cli.cli.keys",  # other command groups are not built
        "vutf_cli.cli.audit",
        "sqlalchemy.dialects.postgresql",  # the database is SQLite
        "tenacity",  # imported only once an attempt has failed and is retried
        "vutf_cli.domain.views",  # the other views' classes are not created
        "vutf_cli.domain.user_results",
        *SLOW_TO_IMPORT,
    )


# -- the reporter itself -------------------------------------------------------
def test_a_violation_is_reported_with_its_import_chain(tmp_path: Path) -> None:
    """The chain in a failure message names the module that pulled the package in."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import vutf_cli.db.models"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    run = Run(result.returncode, result.stdout, "", Imported.parse(result.stderr))
    with pytest.raises(AssertionError) as failure:
        run.assert_not_imported("sqlalchemy", "alembic")
    message = str(failure.value)
    assert "sqlalchemy: vutf_cli.db.models -> sqlalchemy" in message
    assert "alembic" not in message
