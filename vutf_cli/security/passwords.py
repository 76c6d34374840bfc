"""Password hashing and policy: argon2id through argon2-cffi.

Policy (docs/architecture.md §3.4): passwords are NFKC-normalized before they are
checked, hashed or verified, so the same password typed on different keyboards
or platforms matches.  The only rules are a minimum length (15 code points by
default) and a maximum of 1024 code points; there are no composition rules and
nothing is ever truncated.  The maximum is a denial-of-service guard, not a
policy rule: it bounds the work spent on input that is clearly not a password
and is far above any real passphrase.

Production uses the RFC 9106 low-memory profile; the ``test`` profile is
deliberately cheap and exists only so the test suite stays fast.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
import secrets
import threading
import unicodedata
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from argon2 import Parameters, PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.profiles import RFC_9106_LOW_MEMORY

from vutf_cli.errors import InvalidInput

__all__ = [
    "DEFAULT_MIN_LENGTH",
    "MAX_LENGTH",
    "PROFILES",
    "Passwords",
]

DEFAULT_MIN_LENGTH: Final = 15
MAX_LENGTH: Final = 1024

PROFILES: Final[Mapping[str, Parameters]] = MappingProxyType(
    {
        # Copies, so nobody can mutate argon2's own module-level profile.
        "production": dataclasses.replace(RFC_9106_LOW_MEMORY),
        # Same output shape as production (argon2id, 16-byte salt, 32-byte
        # hash) but about a hundredth of the cost.  Only for tests.
        "test": dataclasses.replace(
            RFC_9106_LOW_MEMORY, time_cost=1, memory_cost=8 * 1024, parallelism=1
        ),
    }
)

# Bounds for hashes we accept from elsewhere (import): anything outside them
# is either not argon2 or would let a crafted hash make every verify allocate
# gigabytes or spin for minutes.
_MAX_MEMORY_KIB: Final = 2 * 1024 * 1024  # RFC 9106 high-memory profile: 2 GiB
_MAX_TIME_COST: Final = 64
_MAX_PARALLELISM: Final = 64
_MIN_SALT_BYTES: Final = 8  # argon2's own minimum
_MIN_HASH_BYTES: Final = 4  # argon2's own minimum
_MAX_B64_CHARS: Final = 1024

_PHC_ARGON2ID: Final = re.compile(
    r"\$argon2id\$v=19"
    r"\$m=(?P<m>[1-9][0-9]{0,9}),t=(?P<t>[1-9][0-9]{0,9}),p=(?P<p>[1-9][0-9]{0,9})"
    r"\$(?P<salt>[A-Za-z0-9+/]+)\$(?P<hash>[A-Za-z0-9+/]+)"
)


def _b64_decoded_len(text: str) -> int | None:
    """Length of unpadded standard base64 ``text`` once decoded, or None if invalid."""
    if len(text) > _MAX_B64_CHARS or len(text) % 4 == 1:
        return None
    try:
        return len(base64.b64decode(text + "=" * (-len(text) % 4), validate=True))
    except (binascii.Error, ValueError):
        return None


def _has_forbidden_char(text: str) -> bool:
    # Cc: C0/C1 controls incl. NUL, TAB, ESC, DEL.  Cs: lone surrogates cannot
    # be encoded to UTF-8, so such a password could never be hashed anyway.
    return any(unicodedata.category(ch) in ("Cc", "Cs") for ch in text)


class Passwords:
    """Hash, verify and vet passwords with one argon2id parameter profile."""

    def __init__(self, profile: str = "production", min_length: int = DEFAULT_MIN_LENGTH) -> None:
        params = PROFILES.get(profile)
        if params is None:
            raise InvalidInput(
                f"unknown password hashing profile {profile!r}; "
                f"expected one of: {', '.join(sorted(PROFILES))}"
            )
        if not 1 <= min_length <= MAX_LENGTH:
            raise InvalidInput(f"minimum password length must be between 1 and {MAX_LENGTH}")
        self.profile = profile
        self.min_length = min_length
        self.parameters = params
        self._hasher = PasswordHasher.from_parameters(params)
        self._dummy_hash: str | None = None
        self._dummy_lock = threading.Lock()

    @staticmethod
    def normalize(password: str) -> str:
        """Return the NFKC form of ``password`` (what is actually hashed)."""
        return unicodedata.normalize("NFKC", password)

    def check_strength(self, password: str) -> None:
        """Raise InvalidInput unless ``password`` satisfies the policy.

        Messages describe the rule only; they never echo the password.
        """
        normalized = self.normalize(password)
        length = len(normalized)
        if length < self.min_length:
            raise InvalidInput(
                f"password too short: it must be at least {self.min_length} characters "
                f"(got {length})",
                hint="use a passphrase of several words",
            )
        if length > MAX_LENGTH:
            raise InvalidInput(f"password too long: at most {MAX_LENGTH} characters are accepted")
        if _has_forbidden_char(normalized):
            raise InvalidInput("password must not contain NUL or other control characters")

    def hash(self, password: str) -> str:
        """Return the argon2id PHC string for the NFKC form of ``password``.

        Does not apply the policy: callers creating or changing a password call
        :meth:`check_strength` first.
        """
        return self._hasher.hash(self.normalize(password))

    def verify(self, password_hash: str, password: str) -> bool:
        """True if ``password`` matches ``password_hash``; never raises argon2 errors."""
        try:
            return self._hasher.verify(password_hash, self.normalize(password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        except UnicodeEncodeError:
            # Lone surrogates: cannot have been hashed, so cannot match.
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """True if the hash was made with other parameters (or cannot be parsed)."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except (InvalidHashError, ValueError):
            return True

    def verify_dummy(self, password: str) -> None:
        """Spend one verify's worth of work on a password that cannot match.

        Used on the unknown-user path so it costs the same as a wrong password
        for a real user and timing does not reveal which usernames exist.
        """
        self.verify(self._get_dummy_hash(), password)

    def _get_dummy_hash(self) -> str:
        # A PHC string with this instance's parameters and random salt/digest:
        # verifying against it costs exactly one real verify, and building it
        # costs nothing (hashing a dummy password first would make the
        # unknown-user path of a one-shot CLI process measurably slower).
        with self._dummy_lock:
            if self._dummy_hash is None:
                params = self.parameters

                def b64(raw: bytes) -> str:
                    return base64.b64encode(raw).decode("ascii").rstrip("=")

                self._dummy_hash = (
                    f"$argon2id$v={params.version}$m={params.memory_cost},"
                    f"t={params.time_cost},p={params.parallelism}"
                    f"${b64(secrets.token_bytes(params.salt_len))}"
                    f"${b64(secrets.token_bytes(params.hash_len))}"
                )
            return self._dummy_hash

    @staticmethod
    def is_argon2id_hash(value: str) -> bool:
        """True only for a well-formed ``$argon2id$v=19$m=..,t=..,p=..$salt$hash``.

        Used to vet hashes imported from elsewhere.  Parameters are bounded so
        an imported hash cannot make later verifies absurdly expensive.
        """
        match = _PHC_ARGON2ID.fullmatch(value)
        if match is None:
            return False
        memory, time, lanes = int(match["m"]), int(match["t"]), int(match["p"])
        if not (1 <= lanes <= _MAX_PARALLELISM and 1 <= time <= _MAX_TIME_COST):
            return False
        # argon2 requires at least 8 KiB of memory per lane.
        if not 8 * lanes <= memory <= _MAX_MEMORY_KIB:
            return False
        salt_len = _b64_decoded_len(match["salt"])
        hash_len = _b64_decoded_len(match["hash"])
        return (
            salt_len is not None
            and hash_len is not None
            and salt_len >= _MIN_SALT_BYTES
            and hash_len >= _MIN_HASH_BYTES
        )
