"""Test isolation and database backends.

* Every test runs with its own config/data directories, ``NO_COLOR``, a fixed
  terminal width and the cheap argon2 profile, and with no VUTF_* variables
  leaking in from the developer's shell.
* ``backend`` parametrizes a test over SQLite and PostgreSQL.  PostgreSQL comes
  from ``VUTF_TEST_POSTGRES_URL``; each test gets a fresh database cloned from
  a template migrated once per session, and drops it afterwards.  When the
  server is unreachable the PostgreSQL cases skip, unless
  ``VUTF_REQUIRE_POSTGRES=1`` (CI), where they fail.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgresql")
TEMPLATE_PREFIX = "vutf_tpl_"
TEST_DB_PREFIX = "vutf_t_"


def postgres_admin_url() -> str:
    return os.environ.get("VUTF_TEST_POSTGRES_URL", DEFAULT_PG_URL)


def _postgres_required() -> bool:
    return os.environ.get("VUTF_REQUIRE_POSTGRES") == "1"


def _with_database(url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _admin_execute(*statements: str) -> None:
    from sqlalchemy import create_engine

    from vutf_cli.db.engine import parse_database_url

    engine = create_engine(
        parse_database_url(postgres_admin_url()),
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": 3},
    )
    try:
        with engine.connect() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("VUTF_") and name not in (
            "VUTF_TEST_POSTGRES_URL",
            "VUTF_REQUIRE_POSTGRES",
        ):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("VUTF_CONFIG", str(home / "vutf-config.toml"))
    monkeypatch.setenv("VUTF_DATA_DIR", str(home / "data"))
    monkeypatch.setenv("VUTF_ARGON2_PROFILE", "test")
    monkeypatch.setenv("VUTF_ACTOR", "tester@test")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    return home


# -- PostgreSQL template ----------------------------------------------------
@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str | None]:
    """Name of a migrated template database, or None when the server is unreachable."""
    try:
        _admin_execute("SELECT 1")
    except Exception as exc:
        if _postgres_required():
            pytest.fail(f"PostgreSQL required (VUTF_REQUIRE_POSTGRES=1) but unreachable: {exc}")
        yield None
        return
    from vutf_cli.db import migrations
    from vutf_cli.db.engine import make_engine
    from vutf_cli.settings import Settings

    name = f"{TEMPLATE_PREFIX}{uuid.uuid4().hex[:12]}"
    _admin_execute(f'CREATE DATABASE "{name}"')
    try:  # dropped also when the migration fails: the server is shared
        settings = Settings(database_url=_with_database(postgres_admin_url(), name))
        engine = make_engine(settings)
        try:
            migrations.upgrade(settings, engine)
        finally:
            engine.dispose()
        yield name
    finally:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vutf_cli.db import migrations
    from vutf_cli.db.engine import make_engine
    from vutf_cli.settings import Settings

    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    settings = Settings(database_url=f"sqlite:///{path}")
    engine = make_engine(settings)
    try:
        migrations.upgrade(settings, engine)
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        engine.dispose()
    return path


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def _skip_without_postgres(template: str | None) -> str:
    if template is None:
        pytest.skip("PostgreSQL is unreachable (set VUTF_REQUIRE_POSTGRES=1 to fail instead)")
    return template


@pytest.fixture
def empty_database_url(
    backend: str, tmp_path: Path, postgres_template: str | None
) -> Iterator[str]:
    """A URL to an existing database with no schema in it (for migration tests)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    _skip_without_postgres(postgres_template)
    name = f"{TEST_DB_PREFIX}{uuid.uuid4().hex[:12]}"
    _admin_execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(postgres_admin_url(), name)
    finally:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def _fresh_database(
    backend: str, path: Path, sqlite_template: Path, postgres_template: str | None
) -> Iterator[str]:
    """A new database migrated to head (a copy of the template), dropped afterwards."""
    if backend == "sqlite":
        shutil.copyfile(sqlite_template, path)
        path.chmod(0o600)
        yield f"sqlite:///{path}"
        return
    template = _skip_without_postgres(postgres_template)
    name = f"{TEST_DB_PREFIX}{uuid.uuid4().hex[:12]}"
    _admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield _with_database(postgres_admin_url(), name)
    finally:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url(
    backend: str,
    tmp_path: Path,
    sqlite_template: Path,
    postgres_template: str | None,
) -> Iterator[str]:
    """A URL to a fresh database already migrated to head."""
    path = tmp_path / "vutf-test.db"
    with _fresh_database(backend, path, sqlite_template, postgres_template) as url:
        yield url


@pytest.fixture
def other_database_url(
    backend: str,
    tmp_path: Path,
    sqlite_template: Path,
    postgres_template: str | None,
) -> Iterator[str]:
    """A second fresh migrated database of the same backend (for copy/round-trip tests)."""
    path = tmp_path / "vutf-other.db"
    with _fresh_database(backend, path, sqlite_template, postgres_template) as url:
        yield url


@pytest.fixture
def settings(database_url: str) -> object:
    from vutf_cli.settings import Settings

    return Settings(
        database_url=database_url,
        actor="tester@test",
        argon2_profile="test",
        db_deadline=5.0,
    )


@pytest.fixture
def db(settings: object) -> Iterator[object]:
    from vutf_cli.db.database import Database

    database = Database(settings)  # type: ignore[arg-type]
    try:
        yield database
    finally:
        database.dispose()
