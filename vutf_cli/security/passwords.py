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

Constant cost (docs/architecture.md §3.4): :meth:`Passwords.check` is the one
password check of a login.  Whatever the stored hash (none for an unknown
user, the profile's, or one with other parameters), it computes exactly one
argon2 hash at the profile's parameters: a verify against the stored hash,
against a dummy hash made with the profile's parameters, or -- for a stored
hash with other parameters, whose own verify costs what *its* parameters
cost -- a fresh hash of the password, which becomes the stored hash when the
password matches (rehash on login).  ``observer`` is the seam that sees every
argon2 computation and the parameters it runs at (tests count them there).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
import secrets
import threading
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from argon2 import Parameters, PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.profiles import RFC_9106_LOW_MEMORY

from vutf_cli.errors import InvalidInput

__all__ = [
    "COST_BOUND",
    "DEFAULT_MIN_LENGTH",
    "MAX_LENGTH",
    "PROFILES",
    "Argon2Observer",
    "PasswordCheck",
    "Passwords",
    "Weakness",
]

# Called before every argon2 computation: ("hash" or "verify", the parameters it runs at).
Argon2Observer = Callable[[str, Parameters], None]

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
# How many times the profile's memory or passes a stored hash may cost and
# still count as within the profile's bounds (see Passwords.weakness).
COST_BOUND: Final = 4
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


@dataclass(frozen=True, slots=True)
class PasswordCheck:
    """What :meth:`Passwords.check` found: whether the password matches, and the new
    hash (at the profile's parameters) to store when it matches a hash with other ones."""

    matches: bool
    new_hash: str | None = field(default=None, repr=False)


def _parameters_of(password_hash: str) -> Parameters | None:
    try:
        return extract_parameters(password_hash)
    except (InvalidHashError, ValueError):
        return None


class Weakness(str):
    """Why a hash is outside the profile's bounds (:meth:`Passwords.weakness`), as text.

    ``replaced_on_login``: it is weaker than the profile in some respect, so
    a successful login replaces it; False for a hash that is only costlier.
    """

    replaced_on_login: bool

    def __new__(cls, reason: str, *, replaced_on_login: bool) -> Weakness:
        made = super().__new__(cls, reason)
        made.replaced_on_login = replaced_on_login
        return made


class Passwords:
    """Hash, verify and vet passwords with one argon2id parameter profile."""

    def __init__(
        self,
        profile: str = "production",
        min_length: int = DEFAULT_MIN_LENGTH,
        *,
        observer: Argon2Observer | None = None,
    ) -> None:
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
        self._observer = observer

    @staticmethod
    def normalize(password: str) -> str:
        """Return the NFKC form of ``password`` (what is actually hashed)."""
        return unicodedata.normalize("NFKC", password)

    def _secret(self, password: str) -> str | bytes:
        """What argon2 is given: the NFKC form; as bytes when it holds a lone surrogate.

        Such bytes (``surrogatepass``) are never valid UTF-8, so they match no
        stored hash, yet the verify still costs what every other one costs.
        """
        normalized = self.normalize(password)
        try:
            normalized.encode("utf-8")
        except UnicodeEncodeError:
            return normalized.encode("utf-8", "surrogatepass")
        return normalized

    def _observe(self, what: str, parameters: Parameters | None) -> None:
        if self._observer is not None and parameters is not None:
            self._observer(what, parameters)

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
        self._observe("hash", self.parameters)
        return self._hasher.hash(self._secret(password))

    def verify(self, password_hash: str, password: str) -> bool:
        """True if ``password`` matches ``password_hash``; never raises argon2 errors.

        Costs what the *stored* hash's parameters cost (nothing for a hash argon2
        cannot read); a login uses :meth:`check`, whose cost does not depend on it.
        """
        # Unparseable: argon2 refuses it before computing anything (nothing observed).
        self._observe("verify", _parameters_of(password_hash))
        try:
            return self._hasher.verify(password_hash, self._secret(password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def check(self, password_hash: str | None, password: str) -> PasswordCheck:
        """The password check of a login: exactly one argon2 computation at the profile's
        parameters, whatever ``password_hash`` is (``None``: no such user).

        A hash with the profile's parameters is verified.  Any other (weaker or
        stronger parameters, or unreadable) is verified at its own cost *and* the
        password is hashed with the profile's parameters, so the check never costs
        less than one profile hash.  That hash is returned to be stored (rehash on
        login) only when the password matches and the stored hash is outside the
        profile's bounds (:meth:`weakness`): a stronger hash within them is kept,
        so a weaker profile (``test``, a downgrade) never weakens stored hashes.
        """
        if password_hash is None:
            self.verify_dummy(password)
            return PasswordCheck(matches=False)
        if not self.needs_rehash(password_hash):
            return PasswordCheck(matches=self.verify(password_hash, password))
        matches = self.verify(password_hash, password)
        new_hash = self.hash(password)
        outside = self.weakness(password_hash) if matches else None
        upgrade = outside is not None and outside.replaced_on_login
        return PasswordCheck(matches=matches, new_hash=new_hash if upgrade else None)

    def weakness(self, password_hash: str) -> Weakness | None:
        """What puts the hash outside the profile's bounds, or None when nothing does.

        Below them (``replaced_on_login``): weaker than the profile in memory,
        passes, salt or digest length (fewer lanes are not weaker), or
        unreadable; a successful login replaces such a hash with the
        profile's.  Above them: more than :data:`COST_BOUND` times the
        profile's memory or passes, which every attempt on the user (wrong
        passwords included) pays; a login never replaces a hash that is not
        weaker (a weaker profile must not downgrade it).  ``users import``
        refuses both unless told to accept them (``--allow-weak-hashes``).
        """
        found = _parameters_of(password_hash)
        if found is None:
            return Weakness("it cannot be read", replaced_on_login=True)
        wanted = self.parameters
        weaker = [
            f"{what} {have} < {need}"
            for what, have, need in (
                ("m", found.memory_cost, wanted.memory_cost),
                ("t", found.time_cost, wanted.time_cost),
                ("salt bytes", found.salt_len, wanted.salt_len),
                ("hash bytes", found.hash_len, wanted.hash_len),
            )
            if have < need
        ]
        costlier = [
            f"{what} {have} > {COST_BOUND} \u00d7 {need}"
            for what, have, need in (
                ("m", found.memory_cost, wanted.memory_cost),
                ("t", found.time_cost, wanted.time_cost),
            )
            if have > COST_BOUND * need
        ]
        if not weaker and not costlier:
            return None
        return Weakness(", ".join(weaker + costlier), replaced_on_login=bool(weaker))

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

    def renew_lock_after_fork(self) -> None:
        """In a forked child: a new lock (one held by another thread at the fork stays held)."""
        self._dummy_lock = threading.Lock()

    def _get_dummy_hash(self) -> str:
        # Built, not hashed: hashing a dummy password first would make the
        # unknown-user path of a one-shot CLI process measurably slower.
        with self._dummy_lock:
            if self._dummy_hash is None:
                self._dummy_hash = self.unusable_hash()
            return self._dummy_hash

    def unusable_hash(self) -> str:
        """A stored hash no password matches, at the profile's parameters, computed for free.

        A PHC string with this profile's parameters and a random salt and
        digest: verifying a password against it costs exactly one real verify
        (so a user holding it answers and costs as any other), and no
        password hashes to a random 32-byte digest.  What ``vutf apply``
        stores for a new user it gives no password (``users set-password``
        sets one); the unknown-user path verifies against one too.
        """
        params = self.parameters

        def b64(raw: bytes) -> str:
            return base64.b64encode(raw).decode("ascii").rstrip("=")

        return (
            f"$argon2id$v={params.version}$m={params.memory_cost},"
            f"t={params.time_cost},p={params.parallelism}"
            f"${b64(secrets.token_bytes(params.salt_len))}"
            f"${b64(secrets.token_bytes(params.hash_len))}"
        )

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
