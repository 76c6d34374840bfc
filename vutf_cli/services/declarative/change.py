"""One change of a declared identity, shown as the audit row applying it appends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from vutf_cli.errors import Conflict
from vutf_cli.services.declarative.format import (
    DesiredKey,
    DesiredMembership,
    DesiredRole,
    DesiredUser,
)

__all__ = ["AFTER_APPLY", "Change", "differs_from_plan"]

AFTER_APPLY: Final = "(known after apply)"


def differs_from_plan() -> Conflict:
    """The refusal when the database is not as the plan was computed against."""
    return Conflict("the database differs from the plan; nothing was applied")


@dataclass(frozen=True, slots=True)
class Change:
    """One change, shown as the audit row applying it appends (never a hash or a secret).

    ``resource`` names the object as the file does (``alice``, ``alice/ci``);
    ``resource_id`` is its id, :data:`AFTER_APPLY` for an object to create.
    ``target`` is what apply needs and the plan does not show.
    """

    action: str
    resource_type: str
    resource: str
    resource_id: str
    changes: dict[str, Any]
    target: DesiredUser | DesiredKey | DesiredRole | DesiredMembership | None = field(
        default=None, compare=False, repr=False
    )

    def audit_row(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "resource_type": self.resource_type,
            "resource": self.resource,
            "resource_id": self.resource_id,
            "changes": self.changes,
        }
