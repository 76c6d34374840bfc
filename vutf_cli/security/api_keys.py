"""API key format, checksum and storage digest.

A key is ``vutf_`` + 32 random base62 characters + 6 base62 characters of
the CRC32 of those 32 characters (zero-padded), 43 characters in all.  The
checksum lets a typo or truncated paste be rejected before any database
query; it is not a security feature (the 32 random characters, about 190
bits, are).  Only a digest of the key is stored: HMAC-SHA256 keyed with the
pepper (``VUTF_KEY_PEPPER``), or plain SHA-256 when no pepper is set; beside
it, :func:`pepper_fingerprint` names the pepper it was made with.

No function here ever puts the key itself into an error message.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib
from typing import Final

from vutf_cli.errors import Denied

__all__ = [
    "BASE62_ALPHABET",
    "CHECKSUM_LENGTH",
    "KEY_LENGTH",
    "KEY_PREFIX",
    "PREFIX_DISPLAY_LENGTH",
    "RANDOM_LENGTH",
    "digests_equal",
    "ensure_well_formed",
    "generate_api_key",
    "is_well_formed",
    "key_digest",
    "key_prefix",
    "pepper_fingerprint",
]

BASE62_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
KEY_PREFIX: Final = "vutf_"
RANDOM_LENGTH: Final = 32
CHECKSUM_LENGTH: Final = 6  # 62**6 > 2**32, so any CRC32 fits
KEY_LENGTH: Final = len(KEY_PREFIX) + RANDOM_LENGTH + CHECKSUM_LENGTH  # 43
PREFIX_DISPLAY_LENGTH: Final = 12
_PEPPER_LABEL: Final = b"vutf key pepper fingerprint v1"

# Character classes spelled out so only ASCII matches (no Unicode digits).
_KEY_RE: Final = re.compile(
    rf"{re.escape(KEY_PREFIX)}(?P<body>[0-9A-Za-z]{{{RANDOM_LENGTH}}})"
    rf"(?P<checksum>[0-9A-Za-z]{{{CHECKSUM_LENGTH}}})"
)


def _base62(number: int, width: int) -> str:
    digits: list[str] = []
    while number:
        number, rem = divmod(number, 62)
        digits.append(BASE62_ALPHABET[rem])
    return "".join(reversed(digits)).rjust(width, BASE62_ALPHABET[0])


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def generate_api_key() -> str:
    """Return a new random, well-formed API key (shown to the user once)."""
    body = "".join(secrets.choice(BASE62_ALPHABET) for _ in range(RANDOM_LENGTH))
    return f"{KEY_PREFIX}{body}{_checksum(body)}"


def _check(key: str) -> str | None:
    """None if ``key`` is well formed, else the reason (without the key)."""
    match = _KEY_RE.fullmatch(key)
    if match is None:
        return "malformed API key"
    # Not a secret, so a plain comparison is fine.
    if _checksum(match["body"]) != match["checksum"]:
        return "API key checksum mismatch"
    return None


def is_well_formed(key: str) -> bool:
    """True if ``key`` has the right format and checksum; never raises."""
    if not isinstance(key, str):
        return False  # type: ignore[unreachable]  # defensive: callers pass raw input
    return _check(key) is None


def ensure_well_formed(key: str) -> None:
    """Raise Denied unless ``key`` has the right format and checksum."""
    reason = "malformed API key" if not isinstance(key, str) else _check(key)
    if reason is not None:
        raise Denied(reason)


def key_prefix(key: str) -> str:
    """The first 12 characters: stored in clear and shown in listings."""
    return key[:PREFIX_DISPLAY_LENGTH]


def key_digest(key: str, pepper: str | None) -> str:
    """Hex digest stored for ``key``: HMAC-SHA256 with the pepper, else SHA-256."""
    data = key.encode("utf-8")
    if pepper:
        return hmac.new(pepper.encode("utf-8"), data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


def digests_equal(a: str, b: str) -> bool:
    """Constant-time comparison of two digests."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def pepper_fingerprint(pepper: str | None) -> str:
    """16 hex digits naming the pepper a key digest is made with (never the pepper itself).

    HMAC-SHA256 of a fixed label under the pepper; without a pepper, the
    plain SHA-256 of the label (so "no pepper" has a fingerprint of its own,
    and an empty column means "made before vutf recorded it").  Stored with
    each key (``api_keys.pepper_fingerprint``) so that ``keys verify`` can
    tell an operator that a key was made with another pepper.  Anyone with a
    copy of the database can test guesses of the pepper against it, as one
    known key and its digest would allow: the pepper must be a long random
    value.
    """
    if pepper:
        return hmac.digest(pepper.encode("utf-8"), _PEPPER_LABEL, "sha256").hex()[:16]
    return hashlib.sha256(_PEPPER_LABEL).hexdigest()[:16]
