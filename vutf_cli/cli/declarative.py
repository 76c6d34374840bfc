"""`vutf plan`, `vutf apply` and `vutf export-state`: identity declared in a reviewed file.

Registered on the root application by :mod:`vutf_cli.cli.root`.  The file
format, the difference and the one-transaction apply are in
:mod:`vutf_cli.services.declarative`; this module reads files, renders the
plan, asks for confirmation and delivers the new secrets.

A plan is its audit rows: one line per row (action, resource, changes as
compact JSON) in a table, the rows themselves in json/yaml/jsonl/csv.
`plan` exits 10 (``ExitCode.CHANGES_PENDING``) when there is something to
apply, so CI can gate on it; 0 when there is nothing.

No ``from __future__ import annotations`` here: Typer reads the annotations
of the command being run.
"""

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer

from vutf_cli.cli.context import AppContext, database_target, get_app
from vutf_cli.cli.declarative_secrets import check_folder, deliver, make_folder, secret_files
from vutf_cli.cli.private_file import OutputFileOption, private_file
from vutf_cli.errors import ExitCode, InvalidInput
from vutf_cli.input_documents import (
    JsonRefused,
    check_document_shape,
    parse_json,
    read_document,
)

if TYPE_CHECKING:
    from vutf_cli.services.declarative.apply import Plan
    from vutf_cli.services.declarative.format import Identity

__all__ = ["apply", "export_state", "plan"]

PLAN_KIND: Final = "Plan"
_ROW_FIELDS: Final = ("action", "resource_type", "resource", "resource_id", "changes")
_SYMBOLS: Final = {"create": "+", "revoke": "-", "deactivate": "-"}

FileOption = Annotated[
    Path | None,
    typer.Option(
        "--file",
        "-f",
        metavar="FILE",
        help="The identity file (YAML or JSON, apiVersion vutf/v1); - for stdin.",
        dir_okay=False,
        allow_dash=True,
    ),
]
PruneOption = Annotated[
    bool,
    typer.Option(
        "--prune",
        help="Also deactivate users and revoke API keys the file does not mention (never deletes).",
    ),
]


# -- reading ----------------------------------------------------------------------------------
def _identity(path: Path) -> "Identity":
    from vutf_cli.services.declarative.format import parse_identity

    return parse_identity(read_document(path), "<stdin>" if str(path) == "-" else str(path))


# -- showing a plan ---------------------------------------------------------------------------
def _rows(changes: Any) -> list[dict[str, Any]]:
    return [change.audit_row() for change in changes]


def _head(head: Any) -> dict[str, Any] | None:
    return None if head is None else {"seq": head[0], "hash": head[1]}


def _plan_lines(rows: list[dict[str, Any]]) -> str:
    from vutf_cli.output.sanitize import inert
    from vutf_cli.output.serialize import dumps

    lines = []
    for row in rows:
        verb = row["action"].partition(".")[2]
        symbol = _SYMBOLS.get(verb, "~")
        lines.append(
            inert(
                f"{symbol} {row['action']} {row['resource_type']} {row['resource']} "
                f"{dumps(row['changes'])}"
            )
        )
    return "".join(line + "\n" for line in lines)


def _emit_plan(app_ctx: AppContext, planned: "Plan") -> None:
    from vutf_cli.output.columns import Column

    terminal = app_ctx.terminal
    rows = _rows(planned.changes)
    if terminal.is_table:
        if rows:
            terminal.stdout.write(_plan_lines(rows))
            terminal.stdout.flush()
        return
    if terminal.output_format in ("jsonl", "csv"):
        terminal.emit_rows(rows, columns=[Column(name) for name in _ROW_FIELDS])
        return
    terminal.emit_object(
        {
            "changes": len(rows),
            "prune": planned.prune,
            "head": _head(planned.head),
            "audit": rows,
        }
    )


def _summary(planned: "Plan") -> str:
    count = len(planned.changes)
    head = "an empty audit log" if planned.head is None else f"audit head #{planned.head[0]}"
    if not count:
        return f"no changes: the database matches the file ({head})"
    return f"{count} change(s), {count} audit row(s), computed at {head}"


# -- plan -------------------------------------------------------------------------------------
def plan(
    ctx: typer.Context,
    file: FileOption = None,
    prune: PruneOption = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="PLAN",
            help="Also write the plan to PLAN (mode 0600), for `vutf apply PLAN`.",
            dir_okay=False,
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing --out PLAN.")
    ] = False,
) -> None:
    """Show what applying an identity file would change.

    Compares the roles, users (and their roles) and API keys the file
    declares with the database: creations, updates (old -> new),
    activations, role grants and removals, key scope and expiry changes,
    and with --prune the users deactivated and keys revoked that the file
    does not mention.  Each line is one audit row `vutf apply`
    would append (+ create, ~ change, - end).  Writes nothing to the
    database.  Exit 0: nothing to do; exit 10: there are changes.

    \b
    Examples:
      vutf plan -f identity.yaml
      vutf plan -f identity.yaml --prune --out reviewed.plan
      vutf plan -f identity.yaml -o json | jq '.audit[].action'
    """
    from vutf_cli.services.declarative.apply import plan_identity

    app_ctx = get_app(ctx)
    path = _required_file(file)
    identity = _identity(path)
    planned = plan_identity(app_ctx.database(), identity, prune=prune)
    if out is not None:
        _write_plan(out, planned, source=str(path), overwrite=overwrite)
    _emit_plan(app_ctx, planned)
    app_ctx.terminal.notice(_summary(planned))
    if out is not None:
        app_ctx.terminal.notice(f"plan written to {out}; apply it with: vutf apply {out}")
    if planned.changes:
        raise typer.Exit(int(ExitCode.CHANGES_PENDING))


def _required_file(file: Path | None) -> Path:
    if file is None:
        raise InvalidInput("missing option -f/--file", hint="give the identity file: -f FILE")
    return file


def _write_plan(out: Path, planned: "Plan", *, source: str, overwrite: bool) -> None:
    from vutf_cli.output.serialize import dumps
    from vutf_cli.services.declarative.format import API_VERSION

    document = {
        "apiVersion": API_VERSION,
        "kind": PLAN_KIND,
        "source": source,
        "prune": planned.prune,
        "head": _head(planned.head),
        "identity": planned.identity.document,
        "audit": _rows(planned.changes),
    }
    with private_file(out, force=overwrite) as handle:
        handle.write(dumps(document, indent=2) + "\n")


def _read_plan(path: Path) -> tuple["Identity", bool, Any, Any]:
    from vutf_cli.services.declarative.format import API_VERSION, parse_identity

    try:
        document = parse_json(read_document(path).decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path}: not a plan file ({exc})") from None
    except JsonRefused as exc:
        raise InvalidInput(f"{path}{exc.where}: not a plan file ({exc.reason})") from None
    check_document_shape(document, str(path))
    if (
        not isinstance(document, dict)
        or document.get("kind") != PLAN_KIND
        or document.get("apiVersion") != API_VERSION
    ):
        raise InvalidInput(
            f"{path}: not a plan file (kind {PLAN_KIND}, apiVersion {API_VERSION})",
            hint="make one with: vutf plan -f FILE --out PLAN; apply a file with -f FILE",
        )
    head = document.get("head")
    try:
        planned_head = None if head is None else (int(head["seq"]), str(head["hash"]))
        prune = bool(document["prune"])
    except (KeyError, TypeError, ValueError):
        raise InvalidInput(f"{path}: the plan's head or prune field is damaged") from None
    identity = parse_identity(json.dumps(document.get("identity")).encode(), f"{path} (identity)")
    return identity, prune, planned_head, document.get("audit")


def _check_reviewed(path: Path, reviewed: Any, changes: Any) -> None:
    """The rows the plan file shows are the rows its identity yields now (not edited since)."""
    from vutf_cli.errors import Conflict
    from vutf_cli.output.serialize import dumps

    if json.loads(dumps(_rows(changes))) != reviewed:
        raise Conflict(
            f"{path}: its audit rows are not what its identity declares now "
            "(the file was edited, or time passed a key's expiry); nothing was applied",
            hint="review a new plan: vutf plan -f FILE --out PLAN",
        )


# -- apply ------------------------------------------------------------------------------------
def apply(
    ctx: typer.Context,
    plan_file: Annotated[
        Path | None,
        typer.Argument(
            metavar="[PLAN]", help="A plan file written by `vutf plan --out`.", dir_okay=False
        ),
    ] = None,
    file: FileOption = None,
    prune: PruneOption = False,
    secrets_dir: Annotated[
        Path | None,
        typer.Option(
            "--secrets-dir",
            metavar="DIR",
            help="Where new users' passwords and new API keys go: a private folder "
            "(created 0700), one 0600 file each. Required when keys are created.",
            file_okay=False,
        ),
    ] = None,
    no_passwords: Annotated[
        bool,
        typer.Option(
            "--no-passwords",
            help="Give new users no usable password even with --secrets-dir (only new API "
            "keys are written there): set one later with `vutf users set-password`. "
            "Saves hashing a generated password per new user.",
        ),
    ] = False,
) -> None:
    """Apply an identity file (or a reviewed plan), all or nothing.

    One transaction.  Appends exactly the audit rows `vutf plan` shows.  A PLAN is applied
    only if the audit log has not moved since it was made (else exit 4,
    naming the rows appended since): what was reviewed is what is applied.
    Applying the same file again changes nothing.  New users get a
    generated password written to --secrets-dir (DIR/USERNAME.password),
    or without it (or with --no-passwords) no usable password (set one with
    `vutf users set-password`); new API keys are written to DIR/OWNER.NAME.key.  Asks
    for confirmation on a terminal; --yes otherwise.

    \b
    Examples:
      vutf apply -f identity.yaml --secrets-dir ./secrets --yes
      vutf apply reviewed.plan --secrets-dir ./secrets --yes
      vutf apply -f identity.yaml --secrets-dir ./keys --no-passwords --yes
    """
    from vutf_cli.services.declarative.apply import Plan, apply_plan, plan_identity

    app_ctx = get_app(ctx)
    if (plan_file is None) == (file is None):
        raise InvalidInput("give either a PLAN file or -f FILE (exactly one)")
    db = app_ctx.database()
    if plan_file is not None:
        if prune:
            raise InvalidInput("--prune is part of the plan; give it to `vutf plan`")
        identity, prune, head, reviewed = _read_plan(plan_file)
        fresh = plan_identity(db, identity, prune=prune)
        if fresh.head == head:  # (a moved head is refused by apply, naming the rows)
            _check_reviewed(plan_file, reviewed, fresh.changes)
        planned = Plan(identity, prune, head, fresh.changes)
    else:
        planned = plan_identity(db, _identity(_required_file(file)), prune=prune)
    terminal = app_ctx.terminal
    if not planned.changes:
        terminal.notice(_summary(planned) + "; nothing to apply")
        if terminal.is_machine_output:
            terminal.emit_object(_applied_record(planned.changes, (), (), secrets_dir))
        return
    deliver_passwords = secrets_dir is not None and not no_passwords
    targets = secret_files(planned, secrets_dir, passwords=deliver_passwords)
    if secrets_dir is not None:
        check_folder(secrets_dir)
    if terminal.is_table and not app_ctx.settings.yes:
        terminal.stderr.write(_plan_lines(_rows(planned.changes)))
    app_ctx.confirm(
        f"apply {len(planned.changes)} change(s) to {database_target(app_ctx.settings)}?"
    )
    if secrets_dir is not None:
        make_folder(secrets_dir)
    applied = apply_plan(
        db, planned, deliver_passwords=deliver_passwords, hash_progress=terminal.progress
    )
    files = deliver(applied, targets)
    seqs = applied.seqs
    span = f"#{seqs[0]}-#{seqs[-1]}" if seqs else "none"
    terminal.success(f"applied {len(applied.changes)} change(s); audit rows {span}")
    without = sum(1 for change in applied.changes if change.action == "user.create")
    if not deliver_passwords and without:
        terminal.notice(
            f"{without} new user(s) have no usable password: "
            "set one with `vutf users set-password USER`"
        )
    if terminal.is_machine_output:
        terminal.emit_object(_applied_record(applied.changes, seqs, files, secrets_dir))


def _applied_record(
    changes: Any, seqs: Any, files: Any, secrets_dir: Path | None
) -> dict[str, Any]:
    return {
        "applied": len(changes),
        "audit_seqs": list(seqs),
        "secrets_dir": None if secrets_dir is None else str(secrets_dir),
        "secret_files": list(files),
    }


# -- export-state -----------------------------------------------------------------------------
def export_state(
    ctx: typer.Context,
    output_file: OutputFileOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing --output-file.")
    ] = False,
) -> None:
    """Write the users and active API keys as an identity file.

    YAML by default, JSON with -o json; the format `vutf plan` and `vutf
    apply` read, so a team can start from what exists: export-state, then
    plan against the same database shows no changes.  No passwords, hashes
    or key secrets.

    \b
    Examples:
      vutf export-state > identity.yaml
      vutf export-state -o json --output-file identity.json
    """
    from vutf_cli.output.serialize import dumps
    from vutf_cli.output.yaml_format import yaml_text
    from vutf_cli.services.declarative.format import identity_document
    from vutf_cli.services.declarative.state import current_state

    app_ctx = get_app(ctx)
    fmt = app_ctx.raw_output_format(("json", "yaml"), prints="an identity file")
    document = identity_document(current_state(app_ctx.database()))
    text = dumps(document, indent=2) + "\n" if fmt == "json" else yaml_text(document)
    if output_file is None:
        app_ctx.terminal.stdout.write(text)
        app_ctx.terminal.stdout.flush()
    else:
        with private_file(output_file, force=force) as handle:
            handle.write(text)
    count = len(document["users"]), len(document["apiKeys"])
    app_ctx.terminal.notice(f"exported {count[0]} user(s) and {count[1]} API key(s)")
