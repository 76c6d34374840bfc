"""Where `vutf apply` puts new secrets: one private file each in ``--secrets-dir``.

New users' generated passwords (``DIR/USERNAME.password``) and new API keys
(``DIR/OWNER.NAME.key``, the name's unsafe characters as ``_``).  Everything
that can be checked is checked before the transaction (the folder is not
open to others, no file is there yet, two secrets never share a file); the
folder is made 0700 and each file 0600 by
:mod:`vutf_cli.security.private_paths`.  A file that cannot be written after
the commit is :class:`~vutf_cli.errors.SecretNotDelivered` (exit 9), naming
each secret and how to replace it, as every one-time secret (§3.4).
"""

import os
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Final

from vutf_cli.errors import Conflict, InvalidInput, OutputFileFailed, SecretNotDelivered

if TYPE_CHECKING:
    from vutf_cli.services.declarative.apply import Applied, NewSecret, Plan

__all__ = ["check_folder", "deliver", "make_folder", "secret_files"]

_UNSAFE_NAME: Final = re.compile(r"[^A-Za-z0-9._-]")


def _secret_name(kind: str, owner: str, name: str) -> str:
    if kind == "password":
        return f"{owner}.password"
    return f"{owner}.{_UNSAFE_NAME.sub('_', name)}.key"


def secret_files(
    planned: "Plan", secrets_dir: Path | None, *, passwords: bool = True
) -> dict[tuple[str, str, str], Path]:
    """Where each new secret goes, checked before anything is written.

    ``passwords`` false: new users get none (``apply --no-passwords``), only keys go to the folder.
    """
    wanted: list[tuple[str, str, str]] = []
    for change in planned.changes:
        owner, _, name = change.resource.partition("/")
        if change.action == "api_key.create":
            wanted.append(("api_key", owner, name))
        elif change.action == "user.create" and secrets_dir is not None and passwords:
            wanted.append(("password", change.resource, change.resource))
    keys = sum(1 for kind, _, _ in wanted if kind == "api_key")
    if secrets_dir is None:
        if keys:
            raise InvalidInput(
                f"{keys} new API key(s) need --secrets-dir DIR: a key's secret exists only once",
                hint="vutf apply ... --secrets-dir ./secrets",
            )
        return {}
    targets: dict[tuple[str, str, str], Path] = {}
    seen: set[str] = set()
    for kind, owner, name in wanted:
        file_name = _secret_name(kind, owner, name)
        if file_name.lower() in seen:
            raise InvalidInput(f"two new secrets would both be written to {file_name}")
        seen.add(file_name.lower())
        path = secrets_dir / file_name
        if os.path.lexists(path):
            raise Conflict(
                f"{path} exists; a new secret never replaces a file",
                hint="move the old secret files away first",
            )
        targets[(kind, owner.lower(), name)] = path
    return targets


def check_folder(folder: Path) -> None:
    """Refuse a --secrets-dir that is not a private folder, before anything is written."""
    try:
        found = os.lstat(folder)
    except FileNotFoundError:
        found = None
    except OSError as exc:
        raise InvalidInput(f"--secrets-dir {folder}: {exc.strerror or exc}") from None
    if found is not None:
        if not stat.S_ISDIR(found.st_mode):
            raise InvalidInput(f"--secrets-dir {folder} is not a folder (or is a symbolic link)")
        if found.st_mode & 0o077:
            raise InvalidInput(
                f"--secrets-dir {folder} is open to other users "
                f"(mode {stat.S_IMODE(found.st_mode):04o})",
                hint=f"chmod 700 {folder}, or name a new folder (it is created 0700)",
            )


def make_folder(folder: Path) -> None:
    from vutf_cli.security.private_paths import make_private_folders

    try:
        make_private_folders(folder)
    except OSError as exc:
        raise OutputFileFailed(f"cannot create --secrets-dir {folder}: {exc.strerror}") from None


def deliver(applied: "Applied", targets: dict[tuple[str, str, str], Path]) -> list[str]:
    """Write each new secret to its file; SecretNotDelivered (exit 9) naming any that failed."""
    from vutf_cli.security.private_paths import create_private_file

    written: list[str] = []
    failed: list[str] = []
    for secret in applied.secrets:
        path = targets.get(_target_key(secret))
        if path is None:
            continue
        try:
            fd = create_private_file(path)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(secret.secret + "\n")
        except OSError as exc:
            failed.append(f"{secret.owner}/{secret.name} ({path}: {exc.strerror or exc})")
            continue
        written.append(str(path))
    if written:
        # Delivered means on disk: one sync for every file (an fsync each costs a
        # journal commit each, most of the time of applying thousands of keys).
        os.sync()
    if failed:
        raise SecretNotDelivered(
            f"applied, but {len(failed)} secret(s) could not be written: " + "; ".join(failed),
            hint="replace them: vutf keys rotate KEY / vutf users set-password USER",
        )
    return written


def _target_key(secret: "NewSecret") -> tuple[str, str, str]:
    if secret.kind == "password":
        return ("password", secret.owner.lower(), secret.owner)
    return ("api_key", secret.owner.lower(), secret.name)
