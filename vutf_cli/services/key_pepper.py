"""Why an API key is unknown: it may have been made with another pepper.

A key's stored digest is ``HMAC-SHA256(VUTF_KEY_PEPPER, key)``, so with the
wrong pepper configured every key is "unknown".  Each key also stores the
fingerprint of the pepper it was made with (``api_keys.pepper_fingerprint``,
:func:`~vutf_cli.security.api_keys.pepper_fingerprint`).  When a key is
unknown, the keys carrying its prefix are looked at: one made with another
pepper is named in the failure row (reason ``other_pepper`` and both
fingerprints) and in the refusal's ``hint``, for the operator.

The refusal's message is not changed: whoever presents a key learns nothing
from it (``unknown API key``, exit 5, as for any unknown key).  The hint is
for the operator running ``vutf keys verify``; a service that relays
refusals to its clients relays the message, not the hint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vutf_cli.errors import Denied
from vutf_cli.security import api_keys as key_format

if TYPE_CHECKING:
    from vutf_cli.db.models import ApiKey
    from vutf_cli.db.uow import UnitOfWork

__all__ = ["OtherPepper", "other_pepper"]

# The start of the message of a key whose digest matches no row.
_UNKNOWN_KEY = "unknown API key"


@dataclass(frozen=True, slots=True)
class OtherPepper:
    """A key with the presented key's prefix, made with another pepper than this vutf's."""

    key: ApiKey
    theirs: str
    ours: str

    def refusal(self, refused: Denied) -> Denied:
        """``refused`` with the same message and a hint for the operator."""
        prefix = self.key.key_prefix
        ours = "no pepper" if self.ours == key_format.pepper_fingerprint(None) else self.ours
        theirs = "no pepper" if self.theirs == key_format.pepper_fingerprint(None) else self.theirs
        return Denied(
            refused.message,
            hint=f"key {prefix} was made with another VUTF_KEY_PEPPER (fingerprint {theirs}; "
            f"this vutf has {ours}): check the pepper setting",
        )

    def changes(self) -> dict[str, Any]:
        """What the failure row's ``changes`` say about it (fingerprints, never peppers)."""
        return {
            "reason": "other_pepper",
            "pepper_fingerprint": self.theirs,
            "our_pepper_fingerprint": self.ours,
        }


def other_pepper(uow: UnitOfWork, plaintext: str, refused: Denied) -> OtherPepper | None:
    """For an unknown (well-formed) key, the key with its prefix made with another pepper."""
    if not refused.message.startswith(_UNKNOWN_KEY):
        return None
    ours = key_format.pepper_fingerprint(uow.settings.key_pepper)
    prefix = key_format.key_prefix(plaintext)
    for key in uow.keys.get_by_prefix(prefix, include_deleted=True):
        # Exactly this prefix; an empty fingerprint: made before vutf recorded it.
        if key.key_prefix == prefix and key.pepper_fingerprint not in (None, ours):
            return OtherPepper(key, str(key.pepper_fingerprint), ours)
    return None
