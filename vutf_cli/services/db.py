"""Schema operations behind `vutf db`: migrate, inspect, check, ping.

Alembic is imported only inside these functions, so ordinary commands never
pay for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from vutf_cli.errors import DatabaseUnavailable
from vutf_cli.services.runtime import Runtime


@dataclass(frozen=True, slots=True)
class RevisionStatus:
    database: str
    dialect: str
    current: str | None
    head: str
    at_head: bool


def _current_revision(rt: Runtime) -> str | None:
    return rt.db.run(lambda uow: uow.schema_revision(), read_only=True)


def current(rt: Runtime) -> RevisionStatus:
    from vutf_cli.db.schema_version import HEAD_REVISION

    revision = _current_revision(rt)
    return RevisionStatus(
        database=rt.settings.masked_url,
        dialect=rt.db.dialect,
        current=revision,
        head=HEAD_REVISION,
        at_head=revision == HEAD_REVISION,
    )


def upgrade(rt: Runtime, revision: str = "head") -> RevisionStatus:
    from vutf_cli.db import migrations

    # Reach the server first (with the retry policy) so an outage is exit 7.
    _current_revision(rt)
    try:
        migrations.upgrade(rt.settings, rt.db.engine, revision)
    except DatabaseUnavailable:
        raise
    return current(rt)


def downgrade(rt: Runtime, revision: str) -> RevisionStatus:
    from vutf_cli.db import migrations

    _current_revision(rt)
    migrations.downgrade(rt.settings, rt.db.engine, revision)
    return current(rt)
