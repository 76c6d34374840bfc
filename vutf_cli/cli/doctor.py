"""`vutf doctor` and the text of `vutf --version`.

Registered on the root application by :mod:`vutf_cli.cli.root`.  The
decisions (what is healthy, the fingerprints) are in
:mod:`vutf_cli.services.doctor`; this module only renders them.

No ``from __future__ import annotations`` here: Typer reads the annotations
of the command being run.
"""

import typer

from vutf_cli.cli.context import get_app
from vutf_cli.errors import ExitCode, VutfError

__all__ = ["Unhealthy", "doctor", "version_record", "version_text"]

_UNHEALTHY_HINTS = {
    7: "check the URL, the network and the server (vutf db ping retries and times itself)",
    8: "run `vutf db upgrade` against this database",
}


def version_record() -> dict[str, str]:
    """What `vutf --version -o json` prints."""
    from vutf_cli.services.doctor import versions

    found = versions()
    return {
        "vutf": found.vutf,
        "python": found.python,
        "sqlalchemy": found.sqlalchemy,
        "schema_head": found.schema_head,
    }


def version_text() -> str:
    """What `vutf --version` prints: ``vutf X`` first (what scripts read), then the rest."""
    found = version_record()
    return (
        f"vutf {found['vutf']}\n"
        f"Python {found['python']}\n"
        f"SQLAlchemy {found['sqlalchemy']}\n"
        f"schema head {found['schema_head']}\n"
    )


def doctor(ctx: typer.Context) -> None:
    """Show what vutf would act on and whether it is healthy.

    Changes nothing.  Reports the config file read, the data dir, the actor, whether a key
    pepper (VUTF_KEY_PEPPER) and an audit key (VUTF_AUDIT_KEY) are set (a
    fingerprint, never the value), the target database (password masked),
    and whether it is reachable and at head.  Exit 0 when healthy; 7 when
    the database is unreachable, 8 when its schema is not at head (or an
    explicit SQLite file does not exist), with the report still printed.
    A missing default database is healthy: the first command creates it.

    \b
    Examples:
      vutf doctor
      vutf --database-url postgresql://vutf@db/vutf doctor
      vutf doctor --json | jq -r .key_pepper_fingerprint
    """
    from vutf_cli.services import doctor as service

    app_ctx = get_app(ctx)
    report = service.diagnose(app_ctx.settings, lambda: app_ctx.database(check_schema=False))
    app_ctx.terminal.emit_object(report)
    if not report.healthy:
        # The report is on stdout; the verdict is the usual error line and exit code.
        raise Unhealthy(report.problem or "unhealthy", report.exit_code)


class Unhealthy(VutfError):
    """`vutf doctor` found a problem; its exit code is that of the problem (7, 8)."""

    code = "unhealthy"

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message, hint=_UNHEALTHY_HINTS.get(exit_code))
        self.exit_code = ExitCode(exit_code)
