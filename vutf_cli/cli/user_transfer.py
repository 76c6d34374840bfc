"""`vutf users export` and `vutf users import`: users in bulk, as json, jsonl or csv.

Registered on the `vutf users` group by :mod:`vutf_cli.cli.users`, in the
order the help lists the commands.  ``export`` writes json when the output
format is ``table`` (a table is no export format); ``-o jsonl`` / ``-o csv``
choose the others.  The decisions behind the details (streaming, the import
columns, all or nothing) are in :mod:`vutf_cli.services.user_transfer` and
:mod:`vutf_cli.services.user_import`.

No ``from __future__ import annotations`` here: Typer reads the annotations
of the command being run, and string annotations would be compiled and
evaluated there, twice each (names imported only for type checking are
quoted instead).
"""

import contextlib
from typing import TYPE_CHECKING, Annotated

import typer

from vutf_cli.cli.context import get_app
from vutf_cli.cli.private_file import ForceOption, OutputFileOption, private_file
from vutf_cli.cli.renamed_options import renamed
from vutf_cli.cli.user_options import user_columns
from vutf_cli.errors import InvalidInput, VutfError
from vutf_cli.input_documents import read_document

if TYPE_CHECKING:
    from vutf_cli.output import Terminal
    from vutf_cli.services.user_import import RowProblem

__all__ = ["export", "import_users"]

_REPORT_FIELDS = ["format", "rows", "to_create", "created", "skipped", "invalid", "dry_run"]


def _report_problems(
    terminal: "Terminal", problems: "tuple[RowProblem, ...]", *, prefix: str
) -> None:
    """One line per problem on stderr, shown even with --quiet.

    Not for -o json/jsonl: there the problems are a list in the one JSON
    object (the error on stderr, or the report on stdout).
    """
    from vutf_cli.output.sanitize import inert

    for problem in problems:
        terminal.stderr.write(prefix + inert(str(problem)) + "\n")
    terminal.stderr.flush()


def export(
    ctx: typer.Context,
    include_hashes: Annotated[
        bool,
        typer.Option("--include-hashes", help="Include password hashes (treat as a secret)."),
    ] = False,
    deleted: Annotated[bool, typer.Option("--deleted", help="Only deleted users.")] = False,
    include_deleted: Annotated[
        bool, typer.Option("--include-deleted", help="Deleted and live users together.")
    ] = False,
    output_file: OutputFileOption = None,
    force: ForceOption = False,
) -> None:
    """Export users as json (default), jsonl or csv, streamed.

    The rows are those of `users list` (same fields); --include-hashes adds
    password_hash, so that `users import` can move users to another
    database with their passwords.

    \b
    Examples:
      vutf users export > users.json
      vutf users export -o csv > users.csv
      vutf users export --include-hashes -o jsonl --output-file backup.jsonl
    """
    from vutf_cli.output import Terminal
    from vutf_cli.services import user_transfer as service

    app_ctx = get_app(ctx)
    if deleted and include_deleted:
        raise InvalidInput("use either --deleted or --include-deleted, not both")
    rows = service.export_users(
        app_ctx.database(),
        deleted="deleted" if deleted else "all" if include_deleted else "live",
        include_hashes=include_hashes,
    )
    terminal = app_ctx.terminal
    if terminal.is_table:
        settings = app_ctx.settings
        terminal = Terminal(output_format="json", no_color=settings.no_color, quiet=settings.quiet)
    if include_hashes:
        terminal.warning("the export contains password hashes: keep it as safe as the database")
    with contextlib.ExitStack() as stack:
        target = terminal
        if output_file is not None:
            handle = stack.enter_context(private_file(output_file, force=force))
            target = Terminal(output_format=terminal.output_format, quiet=True, stdout=handle)
        count = target.emit_rows(
            rows, columns=user_columns(with_hash=include_hashes), empty_notice="no users found"
        )
    where = "" if output_file is None else f" to {output_file}"
    if count:
        terminal.notice(f"exported {count} user(s){where}")
    elif output_file is not None:
        terminal.notice("no users found")


def import_users(
    ctx: typer.Context,
    file: Annotated[
        str, typer.Argument(metavar="FILE", help="json, jsonl or csv file; - for stdin.")
    ],
    input_format: Annotated[
        str | None,
        typer.Option(
            "--input-format",
            metavar="FORMAT",
            help="The format of FILE: [json|jsonl|csv] (default: from its name and content).",
        ),
    ] = None,
    old_format: Annotated[
        str | None,
        # The old name of --input-format (-o is the output format everywhere).
        typer.Option("--format", metavar="FORMAT", hidden=True),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check everything, write nothing.")
    ] = False,
    skip_existing: Annotated[
        bool,
        typer.Option("--skip-existing", help="Leave users whose username exists alone."),
    ] = False,
    skip_invalid: Annotated[
        bool,
        typer.Option("--skip-invalid", help="Import the good rows and only report the bad ones."),
    ] = False,
    allow_weak_hashes: Annotated[
        bool,
        typer.Option(
            "--allow-weak-hashes",
            help="Accept password hashes weaker than the configured argon2 profile "
            "(rehashed at each user's next login).",
        ),
    ] = False,
) -> None:
    """Import users from json, jsonl or csv (all or nothing).

    Columns: username, email, full_name, is_superuser, is_active,
    is_verified, and either password (plaintext, the password rules apply)
    or password_hash (argon2id, as written by `users export
    --include-hashes`; a hash weaker than the configured profile needs
    --allow-weak-hashes); the other columns of an export are ignored.  Every
    problem is reported with its line number (and, in a JSON array, the
    object's number), and then nothing is written; with -o json the
    problems are a list in the error object.

    \b
    Examples:
      vutf users import users.csv --dry-run
      vutf users import users.csv
      vutf users export --include-hashes | vutf --database-url "$NEW" users import -
    """
    from vutf_cli.services import user_transfer as service

    app_ctx = get_app(ctx)
    file_format = renamed(
        app_ctx, new=input_format, old=old_format, new_name="--input-format", old_name="--format"
    )
    data = read_document(file)
    terminal = app_ctx.terminal
    try:
        report = service.import_users(
            app_ctx.database(),
            data,
            fmt=file_format,
            source=file,
            dry_run=dry_run,
            skip_existing=skip_existing,
            skip_invalid=skip_invalid,
            progress=terminal.progress,
            allow_weak_hashes=allow_weak_hashes,
        )
    except VutfError as exc:
        problems = getattr(exc, "problems", ())
        if problems and not terminal.is_machine_output:
            _report_problems(terminal, problems, prefix="")
        raise
    if report.problems and not terminal.is_machine_output:
        _report_problems(terminal, report.problems, prefix="skipped: ")
    verb = "would create" if report.dry_run else "created"
    count = report.to_create if report.dry_run else report.created
    terminal.success(
        f"{verb} {count} user(s) from {report.rows} row(s); "
        f"{report.skipped} existing skipped, {report.invalid} invalid"
        + (" (dry run: nothing was written)" if report.dry_run else "")
    )
    if terminal.is_machine_output:
        summary = {name: getattr(report, name) for name in _REPORT_FIELDS}
        terminal.emit_object({**summary, "problems": [p.as_json() for p in report.problems]})
    else:
        terminal.emit_object(report, fields=_REPORT_FIELDS)
