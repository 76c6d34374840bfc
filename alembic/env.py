"""Alembic environment shared by `alembic` (repo root) and `vutf db` (installed package).

The database URL comes from vutf's settings, never from alembic.ini.  Code can
pass an open connection in ``config.attributes["connection"]`` (vutf does, so
the migration runs inside its own resilient engine), or a Settings object in
``config.attributes["settings"]``.
"""

from __future__ import annotations

import warnings
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection

from vutf_cli.db import models  # noqa: F401  (registers the tables on the metadata)
from vutf_cli.db.base import Base
from vutf_cli.settings import Settings, load_settings

config = context.config
if config.config_file_name is not None and "settings" not in config.attributes:
    # Run by the `alembic` CLI with alembic.ini: use its logging setup.  Imported
    # here because `vutf db upgrade` (which has no ini file) never needs it.
    from logging.config import fileConfig

    fileConfig(config.config_file_name, disable_existing_loggers=False)
target_metadata = Base.metadata


def _settings() -> Settings:
    given = config.attributes.get("settings")
    return given if isinstance(given, Settings) else load_settings()


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        **kwargs,
    )


def run_migrations_offline() -> None:
    """Render the SQL (``--sql``) without connecting."""
    _configure(
        url=_settings().database_url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection: Connection) -> None:
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with warnings.catch_warnings():
        # SQLite cannot reflect the lower(...) expression indexes, so autogenerate
        # skips them there (the migration tests check that they exist).
        warnings.filterwarnings("ignore", message=".*expression-based index.*")
        with context.begin_transaction():
            context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run_on(connection)
        return
    from vutf_cli.db.engine import make_engine

    engine = make_engine(_settings())
    try:
        with engine.connect() as conn:
            _run_on(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
