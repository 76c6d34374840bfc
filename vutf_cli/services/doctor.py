"""`vutf doctor` and `vutf --version`: what this vutf is and what it would act on.

The report names every input that decides where a command goes and who it
claims to be (config file, data dir, actor, target database) and whether the
secrets that change hashes are set, as fingerprints, never their values.  It
writes nothing: a missing SQLite file is not created by looking.

:func:`versions` must stay cheap (``vutf --version`` imports no SQLAlchemy):
the SQLAlchemy version comes from the installed distribution's metadata.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from vutf_cli import __version__
from vutf_cli.errors import ExitCode, VutfError

if TYPE_CHECKING:
    from vutf_cli.db.database import Database
    from vutf_cli.settings import Settings

__all__ = ["DoctorReport", "Versions", "diagnose", "versions"]


@dataclass(frozen=True, slots=True)
class Versions:
    vutf: str
    python: str
    sqlalchemy: str
    schema_head: str


def versions() -> Versions:
    from vutf_cli.db.schema_version import HEAD_REVISION

    try:
        sqlalchemy = metadata.version("SQLAlchemy")
    except metadata.PackageNotFoundError:
        sqlalchemy = "not installed"
    return Versions(
        vutf=__version__,
        python=platform.python_version(),
        sqlalchemy=sqlalchemy,
        schema_head=HEAD_REVISION,
    )


@dataclass(frozen=True, slots=True)
class DoctorReport:
    """Everything `vutf doctor` shows; ``exit_code`` is 0 when healthy."""

    vutf_version: str
    config_file: str | None  # the file read, None when there is none
    config_file_looked_at: str
    data_dir: str
    actor: str
    key_pepper_set: bool
    # As stored with each key (api_keys.pepper_fingerprint); "no pepper" has one too.
    key_pepper_fingerprint: str
    audit_key_set: bool
    # As stored in each audit row's metadata; None without a key.
    audit_key_fingerprint: str | None
    database: str  # masked
    default_database: bool
    dialect: str
    reachable: bool
    current: str | None
    head: str
    at_head: bool
    healthy: bool
    problem: str | None
    exit_code: int


def _default_file() -> Path:
    from vutf_cli.settings import default_database_url

    return Path(default_database_url().removeprefix("sqlite:///"))


def diagnose(settings: Settings, open_database: Callable[[], Database]) -> DoctorReport:
    """Look at the settings and make one read-only round trip to the database.

    ``open_database`` is called only when there is a database to look at:
    building one for the embedded default prepares its folder.
    """
    from vutf_cli.db.schema_version import HEAD_REVISION
    from vutf_cli.security.api_keys import pepper_fingerprint
    from vutf_cli.security.audit_chain import audit_key_fingerprint
    from vutf_cli.services.db_status import probe
    from vutf_cli.settings import config_path, data_dir

    reachable = False
    current: str | None = None
    problem: str | None = None
    code = ExitCode.OK
    dialect = "sqlite"
    if settings.is_default_database and not _default_file().exists():
        # Every other command creates and migrates it on first use; looking must not.
        problem = None
    elif (db := open_database()).missing_file:
        problem = "the SQLite file does not exist (`vutf db upgrade` creates it)"
        code = ExitCode.SCHEMA_OUTDATED
    else:
        dialect = db.dialect
        try:
            current = db.run(probe, read_only=True).revision
            reachable = True
        except VutfError as exc:
            problem = exc.message
            code = exc.exit_code
        else:
            if current != HEAD_REVISION:
                problem = (
                    f"the schema is at {current or 'nothing (no vutf schema)'}, not at head "
                    f"{HEAD_REVISION} (run `vutf db upgrade`)"
                )
                code = ExitCode.SCHEMA_OUTDATED
    return DoctorReport(
        vutf_version=__version__,
        config_file=settings.config_file,
        config_file_looked_at=str(config_path()),
        data_dir=str(data_dir()),
        actor=settings.actor,
        key_pepper_set=bool(settings.key_pepper),
        key_pepper_fingerprint=pepper_fingerprint(settings.key_pepper),
        audit_key_set=bool(settings.audit_key),
        audit_key_fingerprint=audit_key_fingerprint(settings.audit_key),
        database=settings.masked_url,
        default_database=settings.is_default_database,
        dialect=dialect,
        reachable=reachable,
        current=current,
        head=HEAD_REVISION,
        at_head=current == HEAD_REVISION,
        healthy=code == ExitCode.OK,
        problem=problem,
        exit_code=int(code),
    )
