"""Test isolation and database backends.

* Every test runs with its own config/data directories, ``NO_COLOR``, a fixed
  terminal width and the cheap argon2 profile, and with no VUTF_* variables
  leaking in from the developer's shell.
* ``backend`` parametrizes a test over SQLite and PostgreSQL.  PostgreSQL comes
  from ``VUTF_TEST_POSTGRES_URL``.  When the server is unreachable the
  PostgreSQL cases skip, unless ``VUTF_REQUIRE_POSTGRES=1`` (CI), where they fail.
* ``database_url`` is a database migrated to head with no rows in it.  SQLite:
  a copy of a template file.  PostgreSQL: each pytest process (each xdist
  worker) migrates its own template once and keeps a few clones of it; after
  a test its clone is emptied (``TRUNCATE``) and handed to a later test,
  unless anything beyond the rows changed, in which case it is dropped
  (:mod:`tests.postgres_clones`).
* Tests whose subject is the schema, roles, grants or the migration version
  get a clone of their own, made for them and dropped afterwards: the
  ``fresh_database`` marker, set here for the modules listed in
  :data:`FRESH_DATABASE_MODULES` and usable on any test.
* Ctrl-C reaches the processes the tests start even when the suite itself
  runs with SIGINT ignored (``nohup``, or ``&`` in a shell without job control).
"""

from __future__ import annotations

import os
import shutil
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.postgres_clones import PostgresClones, worker_name

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgresql")
TEMPLATE_PREFIX = "vutf_tpl_"
TEST_DB_PREFIX = "vutf_t_"

# Their subject is what a reset by TRUNCATE would hand over: the schema, the
# roles and grants, the alembic version.  Each of their tests gets a new clone.
FRESH_DATABASE_MODULES = frozenset(
    {
        "tests/integration/test_migrations.py",
        "tests/integration/test_schema.py",
        "tests/integration/test_least_privilege.py",
        "tests/integration/test_db_service.py",
        "tests/cli/test_db_cli.py",
    }
)


# A process started with SIGINT ignored passes that on to every child, and
# Python then installs no KeyboardInterrupt handler in them: the tests that
# press Ctrl-C on a vutf would see it ignored.  A handler here (in the pytest
# process and in each xdist worker) is reset to the default in every child.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.relative_to(config.rootpath).as_posix() in FRESH_DATABASE_MODULES:
            item.add_marker(pytest.mark.fresh_database)


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
    # The test's own config file, empty until a test writes it (VUTF_CONFIG
    # naming a missing file is refused).
    config = home / "vutf-config.toml"
    config.touch()
    monkeypatch.setenv("VUTF_CONFIG", str(config))
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

    name = f"{TEMPLATE_PREFIX}{worker_name()}_{uuid.uuid4().hex[:12]}"
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
    name = f"{TEST_DB_PREFIX}{worker_name()}_{uuid.uuid4().hex[:12]}"
    _admin_execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(postgres_admin_url(), name)
    finally:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_clones(postgres_template: str | None) -> Iterator[PostgresClones | None]:
    if postgres_template is None:
        yield None
        return
    clones = PostgresClones(postgres_admin_url(), postgres_template, TEST_DB_PREFIX)
    try:
        yield clones
    finally:
        clones.close()


@contextmanager
def _database(
    backend: str,
    path: Path,
    sqlite_template: Path,
    clones: PostgresClones | None,
    *,
    fresh: bool,
) -> Iterator[str]:
    """A database migrated to head with no rows; on PostgreSQL a new clone only if ``fresh``."""
    if backend == "sqlite":
        shutil.copyfile(sqlite_template, path)
        path.chmod(0o600)
        yield f"sqlite:///{path}"
        return
    if clones is None:
        pytest.skip("PostgreSQL is unreachable (set VUTF_REQUIRE_POSTGRES=1 to fail instead)")
    name = clones.clone() if fresh else clones.take()
    try:
        yield clones.url(name)
    finally:
        if fresh:
            clones.drop(name)
        else:
            clones.give_back(name)


@contextmanager
def _fresh_database(
    backend: str, path: Path, sqlite_template: Path, postgres_template: str | None
) -> Iterator[str]:
    """A new database migrated to head (a copy of the template), dropped afterwards."""
    clones = None
    if postgres_template is not None:
        clones = PostgresClones(postgres_admin_url(), postgres_template, TEST_DB_PREFIX)
    with _database(backend, path, sqlite_template, clones, fresh=True) as url:
        yield url


def _marked_fresh(request: pytest.FixtureRequest) -> bool:
    return request.node.get_closest_marker("fresh_database") is not None


@pytest.fixture
def database_url(
    request: pytest.FixtureRequest,
    backend: str,
    tmp_path: Path,
    sqlite_template: Path,
    postgres_clones: PostgresClones | None,
) -> Iterator[str]:
    """A URL to a database migrated to head, with no rows (see the module docstring)."""
    path = tmp_path / "vutf-test.db"
    fresh = _marked_fresh(request)
    with _database(backend, path, sqlite_template, postgres_clones, fresh=fresh) as url:
        yield url


@pytest.fixture
def other_database_url(
    request: pytest.FixtureRequest,
    backend: str,
    tmp_path: Path,
    sqlite_template: Path,
    postgres_clones: PostgresClones | None,
) -> Iterator[str]:
    """A second such database of the same backend (for copy/round-trip tests)."""
    path = tmp_path / "vutf-other.db"
    fresh = _marked_fresh(request)
    with _database(backend, path, sqlite_template, postgres_clones, fresh=fresh) as url:
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
