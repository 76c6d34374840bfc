"""The arguments of ``vutf keys`` as typed on the command line, checked before the database.

Invalid input (exit 2) is refused here, before any transaction opens, and is
not audited.

Scopes
    ``--scope`` may be repeated and each value may hold several scopes
    separated by commas (``--scope read,write --scope targets:*``).  Unknown
    scopes are refused (exit 2).

Expiry
    ``--expires-in``, ``--expires-at`` and ``--no-expiry`` are mutually
    exclusive (exit 2).  An expiry in the past is refused (exit 2).
    ``--expires-at`` takes any TIME of :mod:`vutf_cli.domain.time_input` (no zone: local).

KEY references
    A full key is never accepted as a KEY reference on the command line (it
    would land in shell history): KEY is the key id or its prefix.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from vutf_cli.domain import validation
from vutf_cli.errors import InvalidInput
from vutf_cli.security import api_keys as key_format

__all__ = ["check_reference", "parse_optional_duration", "parse_scopes", "requested_expiry"]


def parse_scopes(values: Iterable[str], *, default: Sequence[str] | None = None) -> dict[str, bool]:
    """``{scope: True}`` from repeated and/or comma-separated values; InvalidInput if unknown.

    With no scope at all, ``default`` is used, or InvalidInput when there is none.
    """
    named = [part.strip() for value in values for part in value.split(",")]
    named = [part for part in named if part]
    if not named:
        if default is None:
            raise InvalidInput("no scope given", hint="name at least one with --scope")
        named = list(default)
    return validation.normalize_scopes(named)


def parse_optional_duration(text: str | None) -> timedelta | None:
    """None for no text; else the duration it spells (InvalidInput if it spells none)."""
    return None if text is None else validation.parse_duration(text)


def requested_expiry(
    *,
    expires_in: str | None,
    expires_at: str | None,
    no_expiry: bool,
    now: datetime,
) -> tuple[bool, datetime | None]:
    """(whether an expiry was requested, the expiry); InvalidInput for a past or doubled one."""
    given = [
        flag
        for flag, present in (
            ("--expires-in", expires_in is not None),
            ("--expires-at", expires_at is not None),
            ("--no-expiry", no_expiry),
        )
        if present
    ]
    if len(given) > 1:
        raise InvalidInput(f"{' and '.join(given)} are mutually exclusive; give one of them")
    if no_expiry:
        return True, None
    if expires_in is not None:
        return True, now + validation.parse_duration(expires_in)
    if expires_at is not None:
        moment = validation.parse_time_spec(expires_at, now)
        if moment <= now:
            raise InvalidInput(
                f"expiry {moment.isoformat()} is not in the future",
                hint="give a future ISO 8601 date-time, or a duration with --expires-in",
            )
        return True, moment
    return False, None


def check_reference(ref: str) -> str:
    """A KEY reference as typed; a whole key is refused (it would sit in shell history)."""
    cleaned = ref.strip()
    if (
        cleaned.startswith(key_format.KEY_PREFIX)
        and len(cleaned) > key_format.PREFIX_DISPLAY_LENGTH
    ):
        raise InvalidInput(
            "give the key id or its prefix (at most "
            f"{key_format.PREFIX_DISPLAY_LENGTH} characters), never the key itself",
            hint="to check a key, pipe it into `vutf keys verify`",
        )
    return cleaned
