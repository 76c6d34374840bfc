"""Validation and parsing of user-supplied values: names, emails, scopes, times.

Every function either returns a clean value or raises
:class:`~vutf_cli.errors.InvalidInput` (exit code 2) with a message saying
what is accepted.  Offending values are echoed with ``repr``-style escaping
and truncated, so a hostile value cannot inject terminal control sequences
or flood the screen.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Final

from vutf_cli.errors import InvalidInput

__all__ = [
    "ALL_SCOPES",
    "DESCRIPTION_MAX",
    "MAX_DURATION",
    "PASSWORD_HASH_MAX_LENGTH",
    "SCOPE_ACTIONS",
    "SCOPE_RESOURCES",
    "identity_key",
    "normalize_email",
    "normalize_scopes",
    "parse_duration",
    "parse_time_spec",
    "scope_grants",
    "shorten_for_message",
    "validate_description",
    "validate_full_name",
    "validate_username",
]

_SHOWN_CHARS: Final = 80


def _show(value: str) -> str:
    """``repr`` of ``value``, truncated: safe to print in an error message."""
    if len(value) > _SHOWN_CHARS:
        return repr(value[:_SHOWN_CHARS]) + f" (truncated, {len(value)} characters)"
    return repr(value)


def shorten_for_message(value: str, limit: int = 40) -> str:
    """``repr`` of at most ``limit`` characters of ``value``, for echoing user input.

    ``repr`` escapes controls, NUL, bidi overrides and lone surrogates (so the
    message stays inert and encodable); the cut keeps a 10 MB argument from
    being printed back whole.  A cut value ends in ``…`` and says how long it was.
    """
    if len(value) <= limit:
        return repr(value)
    return repr(value[:limit]) + f"… ({len(value)} characters)"


# --- users -----------------------------------------------------------------
# One identity, one spelling (docs/architecture.md §2.2): usernames and emails
# that render alike are the same identity.  Every entry point normalizes with
# NFKC first (NFD → NFC, full-width letters (U+FF41...) → ASCII, the ligature
# U+FB01 → "fi"), then applies the case-insensitive rule; what is stored is the
# normalized form, and every lookup compares :func:`identity_key`.


def _nfkc(value: str) -> str:
    # ASCII is its own NFKC form: the common case costs one C-speed scan.
    return value if value.isascii() else unicodedata.normalize("NFKC", value)


def identity_key(value: str) -> str:
    """What a username or email is compared by: NFKC, stripped, lower-cased.

    Lookups compare it with ``lower(column)``; the stored values are
    normalized already (:func:`validate_username`, :func:`normalize_email`).
    """
    lowered = _nfkc(value).strip().lower()
    # Lower-casing can leave a non-NFKC sequence (rarely); normalize once more.
    return _nfkc(lowered)


# Explicit ASCII classes: \w would accept Unicode letters and digits.
_USERNAME_RE: Final = re.compile(r"[A-Za-z0-9_-]{3,100}")


def validate_username(value: str) -> str:
    """``value`` in NFKC form if that is 3-100 characters of ``[A-Za-z0-9_-]``.

    Full-width and other compatibility forms of those characters become
    ASCII (full-width ``alice``, U+FF41..., is ``alice``); anything else is refused.
    """
    normalized = _nfkc(value)
    if _USERNAME_RE.fullmatch(normalized) is None:
        raise InvalidInput(
            f"invalid username {_show(value)}: use 3 to 100 characters from "
            "A-Z, a-z, 0-9, '_' and '-'"
        )
    return normalized


_EMAIL_MAX: Final = 254
_LOCAL_MAX: Final = 64
_DOMAIN_LABEL_RE: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def _email_error(value: str, reason: str) -> InvalidInput:
    return InvalidInput(f"invalid email address {_show(value)}: {reason}")


def normalize_email(value: str) -> str:
    """Return ``value`` as :func:`identity_key` spells it, if it is a plausible address.

    NFKC-normalized, stripped and lower-cased, so that spellings that render
    alike (NFD, full-width) are one address.  Deliberately not a full RFC
    5322 parser: one ``@``, a local part of 1-64 printable characters, and an
    ASCII domain (IDNs in punycode) with at least one dot and labels of
    ``[a-z0-9-]`` not starting or ending in ``-``.
    """
    email = identity_key(value)
    if not email:
        raise _email_error(value, "it is empty")
    if len(email) > _EMAIL_MAX:
        raise _email_error(value, f"it is longer than {_EMAIL_MAX} characters")
    # Every whitespace character but " " is unprintable (Cc, Zl, Zp, Zs), so
    # this is "any character is whitespace or unprintable", at C speed.
    if not email.isprintable() or " " in email:
        raise _email_error(value, "it contains whitespace or control characters")
    if email.count("@") != 1:
        raise _email_error(value, "it must contain exactly one '@'")
    local, domain = email.split("@")
    if not 1 <= len(local) <= _LOCAL_MAX:
        raise _email_error(value, f"the part before '@' must be 1 to {_LOCAL_MAX} characters")
    labels = domain.split(".")
    if len(labels) < 2:
        raise _email_error(value, "the domain must contain a dot (e.g. example.org)")
    if not all(_DOMAIN_LABEL_RE.fullmatch(label) for label in labels):
        raise _email_error(
            value,
            "domain labels must be a-z, 0-9 and '-', not starting or ending with '-' "
            "(international domains in punycode)",
        )
    return email


_FULL_NAME_MAX: Final = 255
# Bidirectional overrides and isolates: legitimate right-to-left names do not
# need them, and in a terminal table they can make text display reordered.
_BIDI_CONTROLS: Final = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Cc: C0 and C1 controls (NUL, ESC, DEL...).  Cs: lone surrogates (not UTF-8
# encodable).  Zl/Zp: line and paragraph separators break one-line output.
_FORBIDDEN_CATEGORIES: Final = frozenset({"Cc", "Cs", "Zl", "Zp"})


def _forbidden_character(value: str) -> str | None:
    """The first character of ``value`` in a forbidden category or a bidi control, if any."""
    # A printable string has none: str.isprintable is false for every
    # character of the categories Cc, Cf (which holds the bidi controls),
    # Cs, Zl and Zp, so the per-character look-up runs only when it may hit.
    if value.isprintable():
        return None
    for ch in value:
        if unicodedata.category(ch) in _FORBIDDEN_CATEGORIES or ch in _BIDI_CONTROLS:
            return ch
    return None


def could_be_identity(value: str) -> bool:
    """False when ``value`` holds a character no username or email may hold
    (a control such as NUL, a lone surrogate, …), so it names nobody and
    need not (on PostgreSQL: cannot) be looked up."""
    return _forbidden_character(value) is None


def validate_full_name(value: str | None) -> str | None:
    """Return the full name, None for None/'', or raise for control characters."""
    if value is None or value == "":
        return None
    if len(value) > _FULL_NAME_MAX:
        raise InvalidInput(
            f"full name too long: at most {_FULL_NAME_MAX} characters (got {len(value)})"
        )
    ch = _forbidden_character(value)
    if ch is not None:
        raise InvalidInput(
            f"invalid full name {_show(value)}: control characters "
            f"(here U+{ord(ch):04X}) are not allowed"
        )
    return value


DESCRIPTION_MAX: Final = 1000
# The size of users.password_hash: a longer PHC string (a huge salt or hash)
# cannot be stored, so it is refused like any other invalid value.
PASSWORD_HASH_MAX_LENGTH: Final = 255


def validate_description(value: str | None) -> str | None:
    """An API key description stripped (None for None or blanks), at most 1,000 characters.

    Same character rule as full names: no controls (newlines included), lone
    surrogates, line/paragraph separators or bidi overrides.
    """
    if value is None:
        return None
    cleaned = value.strip()
    if not cleaned:
        return None
    if len(cleaned) > DESCRIPTION_MAX:
        raise InvalidInput(
            f"description too long: at most {DESCRIPTION_MAX} characters (got {len(cleaned)})"
        )
    ch = _forbidden_character(cleaned)
    if ch is not None:
        raise InvalidInput(
            f"invalid description {shorten_for_message(cleaned)}: control characters "
            f"(here U+{ord(ch):04X}) are not allowed"
        )
    return cleaned


# --- scopes ----------------------------------------------------------------

SCOPE_ACTIONS: Final = ("read", "write", "delete")
SCOPE_RESOURCES: Final = ("targets", "sessions", "users", "api_keys")
_GLOBAL_SCOPES: Final = frozenset({"admin", "*"})

ALL_SCOPES: Final[frozenset[str]] = frozenset(
    {*SCOPE_ACTIONS, *_GLOBAL_SCOPES}
    | {f"{resource}:{action}" for resource in SCOPE_RESOURCES for action in (*SCOPE_ACTIONS, "*")}
)


def _unknown_scope(scope: str) -> InvalidInput:
    return InvalidInput(
        f"unknown scope {_show(scope)}; valid scopes: {', '.join(sorted(ALL_SCOPES))}"
    )


def normalize_scopes(scopes: Iterable[str]) -> dict[str, bool]:
    """Return ``{scope: True}`` for each scope, stripped, deduplicated and sorted."""
    if isinstance(scopes, str):
        # A bare string is one scope, not an iterable of one-letter scopes.
        scopes = [scopes]
    cleaned: set[str] = set()
    for raw in scopes:
        scope = raw.strip()
        if scope not in ALL_SCOPES:
            raise _unknown_scope(scope)
        cleaned.add(scope)
    return dict.fromkeys(sorted(cleaned), True)


def scope_grants(permissions: Mapping[str, bool], required: str) -> bool:
    """True if the granted ``permissions`` cover the ``required`` scope.

    Only entries whose value is exactly ``True`` count.  ``admin`` and ``*``
    grant everything; ``resource:*`` grants every ``resource:action``; a bare
    action grants itself and that action on every resource.
    """
    if required not in ALL_SCOPES:
        raise _unknown_scope(required)
    # `is True`: a JSON column could hold 1 or "true"; only a real grant counts.
    granted = {scope for scope, value in permissions.items() if value is True}
    if granted & _GLOBAL_SCOPES or required in granted:
        return True
    resource, sep, action = required.partition(":")
    if not sep:
        return False
    return f"{resource}:*" in granted or (action != "*" and action in granted)


# --- durations and times -----------------------------------------------------

_UNIT_SECONDS: Final = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
# Units in descending order, each at most once: "1h30m", not "30m1h" or "1h1h".
_DURATION_RE: Final = re.compile(
    r"(?:(?P<w>[0-9]{1,9})w)?(?:(?P<d>[0-9]{1,9})d)?(?:(?P<h>[0-9]{1,9})h)?"
    r"(?:(?P<m>[0-9]{1,9})m)?(?:(?P<s>[0-9]{1,9})s)?"
)
# 100 Julian years.
MAX_DURATION: Final = timedelta(days=36525)
_DURATION_FORM: Final = (
    "a positive duration: numbers with units w, d, h, m, s in that order "
    "(e.g. 90d, 24h, 15m, 30s, 2w, 1h30m), at most 100 years"
)


def _match_duration(text: str) -> timedelta | None:
    """The duration ``text`` spells, or None if it is not in duration form."""
    match = _DURATION_RE.fullmatch(text.strip().lower())
    if match is None or not any(match.groupdict().values()):
        return None
    seconds = sum(
        int(amount) * _UNIT_SECONDS[unit]
        for unit, amount in match.groupdict().items()
        if amount is not None
    )
    # Compared as plain seconds first: timedelta itself overflows long before
    # 9 digits of weeks would.
    if seconds <= 0 or seconds > MAX_DURATION.total_seconds():
        raise InvalidInput(f"invalid duration {_show(text)}: expected {_DURATION_FORM}")
    return timedelta(seconds=seconds)


def parse_duration(text: str) -> timedelta:
    """Parse ``90d``, ``24h``, ``15m``, ``30s``, ``2w`` or compounds like ``1h30m``."""
    duration = _match_duration(text)
    if duration is None:
        raise InvalidInput(f"invalid duration {_show(text)}: expected {_DURATION_FORM}")
    return duration


def parse_time_spec(text: str, now: datetime) -> datetime:
    """Resolve a time given on the command line to a UTC datetime.

    The one parser is :func:`vutf_cli.domain.time_input.parse_time` (the forms
    it accepts, and what local time is, are documented there).
    """
    from vutf_cli.domain.time_input import parse_time

    return parse_time(text, now)
