"""How an existing API key differs from a ``keys create --if-not-exists`` request.

``users create --if-not-exists`` and ``roles create --if-not-exists`` warn
when what exists is not what was asked for; a key must too, or a re-run
script that now asks for ``--scope admin,write`` believes it holds a write
key while the key it kept is ``read``.

The request is checked as ``create`` checks it (bad input is exit 2 even when
the key exists).  Its expiry is compared as of the key's creation: the same
``--expires-in 30d`` (or the 90-day default) re-run tomorrow asks for what
the key got, while ``--no-expiry`` against a key that expires, or an
``--expires-at`` another minute, does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from vutf_cli.db.types import utcnow
from vutf_cli.domain import validation
from vutf_cli.domain.views import ApiKeyView
from vutf_cli.services.key_arguments import parse_scopes, requested_expiry
from vutf_cli.services.keys import DEFAULT_EXPIRY, DEFAULT_SCOPES

__all__ = ["key_differences"]

# Creating a key stamps created_at and expires_at in one transaction, a few
# milliseconds apart at most; a minute absorbs that and clock rounding.
_SAME_EXPIRY: Final = timedelta(minutes=1)


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.utcoffset() is None else moment


def key_differences(
    view: ApiKeyView,
    *,
    scopes: Sequence[str] = (),
    expires_in: str | None = None,
    expires_at: str | None = None,
    no_expiry: bool = False,
    description: str | None = None,
) -> tuple[str, ...]:
    """The fields of ``view`` the request asks otherwise (``scopes``, ``expires_at``, ...)."""
    wanted_scopes = sorted(k for k, v in parse_scopes(scopes, default=DEFAULT_SCOPES).items() if v)
    wanted_description = validation.validate_description(description)
    # Validated against now, as create would; then measured from the key's creation.
    requested_expiry(
        expires_in=expires_in, expires_at=expires_at, no_expiry=no_expiry, now=utcnow()
    )
    created = _aware(view.created_at)
    wanted_expiry: datetime | None
    if no_expiry:
        wanted_expiry = None
    elif expires_in is not None:
        wanted_expiry = created + validation.parse_duration(expires_in)
    elif expires_at is not None:
        wanted_expiry = validation.parse_time_spec(expires_at, utcnow())
    else:
        wanted_expiry = created + DEFAULT_EXPIRY
    differences: list[str] = []
    if wanted_scopes != sorted(view.scopes):
        differences.append("scopes")
    actual_expiry = None if view.expires_at is None else _aware(view.expires_at)
    if (wanted_expiry is None) != (actual_expiry is None) or (
        wanted_expiry is not None
        and actual_expiry is not None
        and abs(wanted_expiry - actual_expiry) > _SAME_EXPIRY
    ):
        differences.append("expires_at")
    if description is not None and wanted_description != view.description:
        differences.append("description")
    return tuple(differences)
